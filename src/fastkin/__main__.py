"""Command line: ``fastkin demo``, ``serve``, ``simulate`` and ``shards`` (also ``python -m fastkin ...``)."""
from __future__ import annotations

import argparse
import sys

TAGLINE = ("fastkin: AWS Kinesis Data Streams in your own process or as a local server - a boto3 drop-in, "
           "a KPL/KCL-style producer and consumer, and a capacity simulator")
HELP = argparse.ArgumentDefaultsHelpFormatter


def main(argv: list[str] | None = None) -> int:
    from . import __version__
    from ._core import CORE

    p = argparse.ArgumentParser(prog="fastkin", description=TAGLINE, formatter_class=HELP)
    p.add_argument("--version", action="version", version=f"fastkin {__version__}")
    sub = p.add_subparsers(dest="cmd", title="commands", metavar="COMMAND")
    d = sub.add_parser("demo", formatter_class=HELP, help="producers above the shard limits, replayed on the virtual "
                       "clock; prints what each shard accepted and throttled",
                       description="Four producers offer more than a stream's shards accept (one hammers a hot key); "
                                   "the per-shard quotas throttle the excess and a table shows it. Runs on the "
                                   "virtual clock, so N engine-seconds replay in a fraction of a second.")
    d.add_argument("--seconds", type=int, default=20, help="engine-seconds to simulate")
    d.add_argument("--shards", type=int, default=4, help="shard count of the demo stream")
    d.add_argument("--core", "--engine", dest="core", choices=["cy", "ref"], default=CORE,
                   help="data-plane core: cy (compiled) or ref (the pure-Python reference)")
    d.add_argument("--seed", type=int, default=0, help="seed of the record generator")
    # `serve` parses its own options (fastkin.wire.http), so botocore and the HTTP parsers load only when serving.
    sub.add_parser("serve", add_help=False, help="serve the Kinesis wire protocol over HTTP (JSON 1.1, CBOR, "
                   "HTTP/2, TLS) for any SDK and the AWS CLI; see fastkin serve --help")
    sm = sub.add_parser("simulate", formatter_class=HELP, help="run a capacity scenario (TOML) on the virtual clock: "
                        "summary, timeline CSV, PNG plot",
                        description="Run a scenario of streams, producers, consumers and timed actions through the "
                                    "engine on a virtual clock; print a summary and write NAME.csv and NAME.png.")
    sh = sub.add_parser("shards", formatter_class=HELP, help="provisioned shard count for a record size, rate and "
                        "number of consumers (AWS's formula)",
                        description="How many provisioned shards a workload needs, by the formula of the Kinesis "
                                    "developer guide, with the arithmetic shown.")
    from .sim.simulator import add_arguments as sim_args
    from .sim.sizing import add_arguments as shard_args

    sim_args(sm)
    shard_args(sh)
    args, rest = p.parse_known_args(argv)
    if args.cmd is None:
        p.print_help()
        return 2
    if args.cmd == "serve":
        try:
            from .wire.http import main as serve_main
        except ImportError as exc:              # a missing extra: one line naming it
            print(f"fastkin serve needs {exc.name or 'botocore'}: pip install 'fastkin[server]' (from a checkout: "
                  "pip install '.[server]')", file=sys.stderr)
            return 2
        return serve_main(rest)
    if rest:
        print(f"fastkin {args.cmd}: unrecognized arguments: {' '.join(rest)} (see fastkin {args.cmd} --help)",
              file=sys.stderr)
        return 2
    if args.cmd == "simulate":
        from .sim.simulator import main as simulate_main

        return simulate_main(args)
    if args.cmd == "shards":
        from .sim.sizing import main as shards_main

        return shards_main(args)
    from .sim.demo import run

    for name, value, lo in (("--seconds", args.seconds, 1), ("--shards", args.shards, 1)):
        if value < lo:
            print(f"fastkin demo: {name} must be at least {lo}, got {value}", file=sys.stderr)
            return 2
    if args.shards > 10_000:
        print(f"fastkin demo: --shards must be at most 10000 (a stream's shard maximum), got {args.shards}",
              file=sys.stderr)
        return 2
    run(seconds=args.seconds, shards=args.shards, core=args.core, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

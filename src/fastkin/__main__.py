"""Command line: `python -m fastkin demo`, `serve`, `simulate` and `shards`."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fastkin", description="fastkin: a fast local AWS Kinesis Data Streams")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="producers above the shard limits on the virtual clock; prints a table")
    d.add_argument("--seconds", type=int, default=20, help="engine-seconds to simulate (default 20)")
    d.add_argument("--shards", type=int, default=4, help="shard count (default 4)")
    d.add_argument("--core", "--engine", dest="core", choices=["cy", "ref"], default=None,
                   help="data-plane core: cy (compiled, default) or ref (pure-Python reference)")
    d.add_argument("--seed", type=int, default=0)
    # `serve` parses its own options (fastkin.server), so botocore and hypercorn load only when serving.
    sub.add_parser("serve", add_help=False, help="serve the Kinesis wire protocol over HTTP (JSON 1.1 and CBOR)")
    sm = sub.add_parser("simulate", help="run a capacity scenario (TOML) on the virtual clock: summary, CSV, PNG")
    sh = sub.add_parser("shards", help="provisioned shard count for a record size, rate and consumers (AWS formula)")
    from .sim.simulator import add_arguments as sim_args
    from .sim.sizing import add_arguments as shard_args

    sim_args(sm)
    shard_args(sh)
    args, rest = p.parse_known_args(argv)
    if args.cmd == "serve":
        from .wire.http import main as serve_main

        return serve_main(rest)
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.cmd == "simulate":
        from .sim.simulator import main as simulate_main

        return simulate_main(args)
    if args.cmd == "shards":
        from .sim.sizing import main as shards_main

        return shards_main(args)
    if args.cmd == "demo":
        from .sim.demo import run

        run(seconds=args.seconds, shards=args.shards, core=args.core, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

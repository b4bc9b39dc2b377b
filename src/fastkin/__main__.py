"""Command line: `python -m fastkin demo`."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fastkin", description="fastkin: a fast local AWS Kinesis Data Streams")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="producers above the shard limits on the virtual clock; prints a table")
    d.add_argument("--seconds", type=int, default=20, help="engine-seconds to simulate (default 20)")
    d.add_argument("--shards", type=int, default=4, help="shard count (default 4)")
    d.add_argument("--engine", choices=["cy", "ref"], default=None, help="core engine (default: compiled)")
    d.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.cmd == "demo":
        from .demo import run

        run(seconds=args.seconds, shards=args.shards, engine=args.engine, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

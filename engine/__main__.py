"""Command line: `engine info`."""
from __future__ import annotations

import argparse
import sys


def _info(args: argparse.Namespace) -> int:
    import engine

    print(f"engine {engine.__version__} on Python {sys.version.split()[0]}")
    print(f"poller backend: {engine.BACKEND}")
    print(f"debug build: {engine.DEBUG_BUILD}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="engine", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("info", help="show how this engine was built")
    p.set_defaults(func=_info)
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

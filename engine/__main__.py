"""Command line: `engine serve`, `engine info`, `engine bench`, `engine dashboard`."""
from __future__ import annotations

import argparse
import sys


def _info(args: argparse.Namespace) -> int:
    import engine

    print(f"engine {engine.__version__} on Python {sys.version.split()[0]}")
    print(f"poller backend: {engine.BACKEND}")
    print(f"io_uring: {_io_uring_state()}")
    print(f"debug build: {engine.DEBUG_BUILD}")
    return 0


def _io_uring_state() -> str:
    """Whether ENGINE_BACKEND=io_uring would give io_uring here, and if not, why."""
    from engine import _loop

    if not _loop.IO_URING_BUILT:
        return "not built (no usable linux/io_uring.h at build time)"
    try:
        got = _loop._probe_backend("io_uring")
    except OSError as exc:          # a failure that is not a refusal (e.g. ENOMEM)
        return f"built; opening a ring failed: {exc}"
    if got == "io_uring":
        return "available (ENGINE_BACKEND=io_uring selects it)"
    return "built, but this kernel refuses a ring (loops use epoll)"


def _bench(args: argparse.Namespace) -> int:
    from engine.bench import run as bench

    return bench.main(args, args.extra, args.argv)


def _dashboard(args: argparse.Namespace) -> int:
    from engine.bench import dashboard

    return dashboard.main(args)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `engine bench ... -- --rigorous`: everything after `--` goes to the suite script
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    parser = argparse.ArgumentParser(prog="engine", description=__doc__)
    import engine
    parser.add_argument("--version", action="version", version=f"engine {engine.__version__}")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("info", help="show how this engine was built")
    p.set_defaults(func=_info)

    p = sub.add_parser(
        "bench", help="run the benchmark suites (engine vs peers), print the table, write "
                      "a results file", description="Run benchmark suites: engine and its peers "
        "in the same run. The loop suite ships with engine; a checkout adds the suites of its "
        "perf/suites.toml. Needs the perf extra: pip install 'engine[perf]'.")
    from engine.bench import run as _bench_mod  # standard library only

    _bench_mod.add_arguments(p)
    p.set_defaults(func=_bench)

    p = sub.add_parser(
        "dashboard", help="render results/ into one self-contained HTML page",
        description="Render the results files of a directory into one offline HTML page "
        "(charts: engine vs peers per scenario, ratios, history across commits) and refresh "
        "the latest-results table of its README.md. Needs the dashboard extra: "
        "pip install '.[dashboard]'.")
    from engine.bench import dashboard as _dash_mod  # matplotlib only when rendering

    _dash_mod.add_arguments(p)
    p.set_defaults(func=_dashboard)

    from engine.serve import cli as _serve_cli  # the serving stack loads only to serve

    _serve_cli.add_parser(sub)

    args = parser.parse_args(argv)
    args.extra, args.argv = extra, argv + (["--", *extra] if extra else [])
    if extra and args.command != "bench":
        parser.error("arguments after `--` are only for `engine bench`")
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    from engine.bench.suites import HarnessError

    try:
        return int(args.func(args) or 0)
    except HarnessError as exc:
        print(f"engine {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

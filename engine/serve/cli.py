"""``engine serve [MODULE:APP]``: the command line of engine's ASGI server.

``engine serve`` (or ``python -m engine serve``) builds a :class:`~engine.serve.config.Config`
from its flags and hands it to :func:`engine.serve.runner.run_server`, which does the rest (see
there). Exit status: 0 after a clean SIGTERM/SIGINT drain; 1 when the server cannot start (bad
app or plugin, address in use, ...) or a worker had to be killed; 3 when the app's lifespan
startup failed (as uvicorn); 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .config import HTTP_VERSIONS, LIFESPAN_MODES, LOG_LEVELS, LOOPS, Config, ConfigError

__all__ = ["add_parser", "config_from_args", "run"]


def _header(value: str) -> tuple[str, str]:
    name, sep, rest = value.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME:VALUE, got {value!r}")
    return name.strip(), rest.strip()


def _positive_int(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _workers_default() -> int | None:
    env = os.environ.get("WEB_CONCURRENCY")
    return int(env) if env and env.isdigit() and int(env) >= 1 else None


def _engine_version() -> str:
    import engine
    return engine.__version__


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand to ``engine``'s subparsers."""
    p: argparse.ArgumentParser = sub.add_parser(
        "serve", help="serve an ASGI app (default: the embedded app) or another protocol",
        description="Serve an ASGI app over HTTP/1.1, HTTP/2 and WebSocket on engine's event "
        "loop. "
        "Without MODULE:APP it serves the embedded default app: a page saying what runs, "
        "/echo, a WebSocket echo at /ws, and the files of --static DIR. Stop it with "
        "SIGTERM or Ctrl-C (graceful drain); with --workers, SIGHUP restarts the workers one "
        "by one.")
    add = p.add_argument
    add("--version", action="version", version=f"engine {_engine_version()}",
        help="print the engine version and exit")
    add("app", nargs="?", metavar="MODULE:APP",
        help="the ASGI app, e.g. myproject.asgi:application (default: the embedded app)")
    g = p.add_argument_group("listening")
    g.add_argument("--host", default="127.0.0.1",
                   help="address to bind; '::' = IPv6 and IPv4, '' = every interface "
                        "(default: %(default)s)")
    g.add_argument("--port", type=int, default=8000,
                   help="port to bind; 0 = a free port, printed at startup (default: "
                        "%(default)s)")
    g.add_argument("--uds", metavar="PATH", help="listen on this Unix socket instead")
    g.add_argument("--fd", type=int, help="listen on this inherited socket instead")
    g.add_argument("--backlog", type=_positive_int, default=2048,
                   help="listen() backlog (default: %(default)s)")
    g.add_argument("--workers", type=_positive_int, default=_workers_default(),
                   help="worker processes (default: $WEB_CONCURRENCY or 1 = this process)")
    g.add_argument("--limit-max-requests", type=_positive_int, default=None, metavar="N",
                   help="replace a worker once it served N requests (no request lost)")
    g.add_argument("--max-requests-jitter", type=int, default=0, metavar="J",
                   help="add 0..J at random to each worker's --limit-max-requests")
    g.add_argument("--worker-max-rss", type=float, default=None, metavar="MIB",
                   help="replace a worker whose resident memory exceeds MIB mebibytes")
    g.add_argument("--worker-lifetime", type=float, default=None, metavar="S",
                   help="replace a worker after S seconds")
    g.add_argument("--loop", choices=LOOPS, default="engine",
                   help="event loop of each worker (default: %(default)s)")
    g.add_argument("--ssl-certfile", help="TLS certificate chain (PEM): serve https/wss")
    g.add_argument("--ssl-keyfile", help="TLS private key (PEM), if not in the certfile")
    g.add_argument("--ssl-keyfile-password", help="password of the TLS private key")
    g.add_argument("--ssl-ca-certs", metavar="PATH",
                   help="CA certificates (PEM file or hashed directory) that client "
                        "certificates are verified against (mTLS)")
    g.add_argument("--ssl-cert-reqs", default="none", metavar="{none,optional,required}",
                   help="ask clients for a certificate: none (default), optional (verified "
                        "when given) or required (mTLS; the handshake fails without one); "
                        "0/1/2 are accepted too")
    g.add_argument("--ssl-ciphers", metavar="LIST",
                   help="OpenSSL cipher list for TLS 1.2 and older (default: Python's)")
    g.add_argument("--http", choices=HTTP_VERSIONS, default="auto",
                   help="HTTP versions: 1 (HTTP/1.1 only), 2 (HTTP/2 only: h2c with prior "
                        "knowledge, h2 by TLS ALPN), auto (both on one port; default)")

    g = p.add_argument_group("application")
    g.add_argument("--factory", action="store_true",
                   help="MODULE:APP is a function returning the app: call it")
    g.add_argument("--app-dir", default=".",
                   help="put this directory first on sys.path (default: the current one)")
    g.add_argument("--root-path", default="", help="ASGI root_path (mounted below a prefix)")
    g.add_argument("--lifespan", choices=LIFESPAN_MODES, default="auto",
                   help="run the app's lifespan scope: auto (if it supports it), on, off "
                        "(default: %(default)s)")
    g.add_argument("--static", metavar="DIR",
                   help="the default app also serves the files of DIR")
    g.add_argument("--protocol", default="http", metavar="NAME",
                   help="protocol plugin: http, echo, an entry point of group "
                        "engine.protocols, or MODULE:ATTR (default: %(default)s)")
    g.add_argument("--proxy-headers", action=argparse.BooleanOptionalAction, default=True,
                   help="take the client address and scheme from X-Forwarded-For/-Proto when "
                        "the peer is trusted (default: on)")
    g.add_argument("--forwarded-allow-ips", default=None, metavar="IPS",
                   help="comma-separated trusted proxy IPs/networks, or '*' (default: "
                        "$FORWARDED_ALLOW_IPS or 127.0.0.1)")
    g.add_argument("--header", dest="headers", action="append", type=_header, default=[],
                   metavar="NAME:VALUE", help="add a header to every response (repeatable)")
    g.add_argument("--server-header", action=argparse.BooleanOptionalAction, default=True,
                   help="send 'server: engine' (default: on)")
    g.add_argument("--date-header", action=argparse.BooleanOptionalAction, default=True,
                   help="send a Date header (default: on)")

    g = p.add_argument_group("timeouts and limits")
    g.add_argument("--timeout-keep-alive", type=float, default=5.0, metavar="S",
                   help="close an idle keep-alive connection after S seconds (default: "
                        "%(default)s)")
    g.add_argument("--timeout-request-header", type=float, default=10.0, metavar="S",
                   help="a request's headers must arrive within S seconds, else 408 "
                        "(default: %(default)s)")
    g.add_argument("--timeout-request-body", type=float, default=30.0, metavar="S",
                   help="at most S seconds between two pieces of a request body (default: "
                        "%(default)s)")
    g.add_argument("--timeout-graceful-shutdown", type=float, default=30.0, metavar="S",
                   help="on SIGTERM, wait S seconds for open connections before closing "
                        "them (default: %(default)s)")
    g.add_argument("--limit-concurrency", type=_positive_int, default=None, metavar="N",
                   help="answer 503 above N open connections per worker")
    g.add_argument("--max-connections", type=_positive_int, default=None, metavar="N",
                   help="stop accepting above N open connections per worker (the rest wait "
                        "in the backlog)")
    g.add_argument("--max-request-line", type=_positive_int, default=8192, metavar="BYTES",
                   help="longest request line, else 414 (default: %(default)s)")
    g.add_argument("--max-header-count", type=_positive_int, default=100, metavar="N",
                   help="most request headers, else 431 (default: %(default)s)")
    g.add_argument("--max-header-bytes", type=_positive_int, default=65536, metavar="BYTES",
                   help="largest request head, else 431 (default: %(default)s)")
    g.add_argument("--max-body", type=_positive_int, default=None, metavar="BYTES",
                   help="largest request body, else 413 (default: no limit)")
    g.add_argument("--ws-max-size", type=_positive_int, default=16 * 1024 * 1024,
                   metavar="BYTES", help="largest WebSocket message (default: 16 MiB)")
    g.add_argument("--ws-per-message-deflate", action=argparse.BooleanOptionalAction,
                   default=True, help="negotiate WebSocket permessage-deflate compression "
                   "(RFC 7692) when the client offers it (default: on)")
    g.add_argument("--ws-ping-interval", type=float, default=20.0, metavar="S",
                   help="ping WebSocket clients every S seconds, 0 = never (default: "
                        "%(default)s)")
    g.add_argument("--ws-ping-timeout", type=float, default=20.0, metavar="S",
                   help="close a WebSocket whose pong is S seconds late (default: "
                        "%(default)s)")

    g = p.add_argument_group("logging and development")
    g.add_argument("--log-level", choices=list(LOG_LEVELS), default="info",
                   help="level of the engine.* loggers (default: %(default)s)")
    g.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=False,
                   help="log every request on engine.access (default: off)")
    g.add_argument("--access-log-format", metavar="FMT",
                   help="access log line in gunicorn's atoms (%%(h)s %%(r)s %%(s)s ...) or "
                        "'json' (default: engine's own format)")
    g.add_argument("--metrics", metavar="HOST:PORT",
                   help="serve Prometheus metrics of all workers at http://HOST:PORT/metrics "
                        "(a listener of its own, never the app's)")
    g.add_argument("--log-config", metavar="FILE",
                   help="logging config applied after engine's: dictConfig of .json/.yaml, "
                        "fileConfig of .ini/.conf")
    g.add_argument("--env-file", metavar="FILE",
                   help="load KEY=VALUE lines into the environment before importing the app "
                        "(variables already set win)")
    g.add_argument("--reload", action="store_true",
                   help="development only: restart the server when a .py file changes")
    g.add_argument("--reload-dir", dest="reload_dirs", action="append", default=[],
                   metavar="DIR", help="directory to watch with --reload (repeatable; "
                                       "default: --app-dir)")
    g.add_argument("--reload-interval", type=float, default=0.5, metavar="S",
                   help="how often --reload looks for changes (default: %(default)s)")
    p.set_defaults(func=run)
    return p


def config_from_args(args: argparse.Namespace) -> Config:
    """The :class:`Config` that parsed ``engine serve`` arguments describe."""
    return Config(
        app=args.app, host=args.host, port=args.port, uds=args.uds, fd=args.fd,
        workers=args.workers, factory=args.factory, app_dir=args.app_dir,
        root_path=args.root_path, proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        timeout_keep_alive=args.timeout_keep_alive,
        timeout_request_header=args.timeout_request_header,
        timeout_request_body=args.timeout_request_body,
        timeout_graceful_shutdown=args.timeout_graceful_shutdown,
        limit_concurrency=args.limit_concurrency, max_connections=args.max_connections,
        backlog=args.backlog, log_level=args.log_level,
        access_log=args.access_log or bool(getattr(args, "access_log_format", None)),
        log_config=getattr(args, "log_config", None), metrics=args.metrics,
        access_log_format=getattr(args, "access_log_format", None),
        ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile,
        ssl_keyfile_password=args.ssl_keyfile_password, ssl_ca_certs=args.ssl_ca_certs,
        ssl_cert_reqs=args.ssl_cert_reqs, ssl_ciphers=args.ssl_ciphers, reload=args.reload,
        reload_dirs=list(args.reload_dirs), reload_interval=args.reload_interval,
        protocol=args.protocol, http=args.http, static=args.static, lifespan=args.lifespan,
        loop=args.loop,
        ws_max_size=args.ws_max_size, ws_ping_interval=args.ws_ping_interval,
        ws_ping_timeout=args.ws_ping_timeout,
        ws_per_message_deflate=args.ws_per_message_deflate, max_request_line=args.max_request_line,
        max_header_count=args.max_header_count, max_header_bytes=args.max_header_bytes,
        max_body=args.max_body, server_header=args.server_header,
        date_header=args.date_header, headers=list(args.headers),
        limit_max_requests=args.limit_max_requests,
        max_requests_jitter=args.max_requests_jitter, worker_max_rss=args.worker_max_rss,
        worker_lifetime=args.worker_lifetime,
    )


def run(args: argparse.Namespace) -> int:
    """``engine serve``: the subcommand's entry point."""
    argv = getattr(args, "argv", None)
    try:
        env_file = getattr(args, "env_file", None)
        if env_file is not None:
            from .envfile import load_env_file
            load_env_file(env_file)
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"engine serve: error: {exc}", file=sys.stderr)
        return 2
    from .runner import run_server  # when serving: not for `engine --help`, `engine bench`

    return run_server(config, argv=argv)


def __getattr__(name: str) -> Any:
    # engine.serve.cli.run_server (the old engine.cli.run_server), loaded on first use
    if name == "run_server":
        from .runner import run_server
        return run_server
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


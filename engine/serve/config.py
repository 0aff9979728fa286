"""engine.serve.config: every setting of ``engine serve`` in one dataclass.

:class:`Config` is what the command line builds and what protocol plugins receive
(``create_protocol_factory(app, config, state)``): the app to serve, where to listen, the
worker count, timeouts and limits the protocol enforces, TLS, logging, the lifespan mode and
the reloader. Usable directly::

    from engine.serve.config import Config

    config = Config("myproject.asgi:application", port=8080, workers=4)
    app = config.load_app()              # imports and (with factory=True) calls it
    listeners = config.listeners()       # engine.server.Listener objects
    ctx = config.ssl_context()           # None without --ssl-certfile

Nothing here binds a socket or starts a loop; :mod:`engine.serve.runner` does that with
:mod:`engine.server`.
"""
from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
import os
import ssl
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .. import new_event_loop
from ..server import Listener
from .asgi_types import ASGIApp

__all__ = [
    "Config", "ConfigError", "AppLoadError", "import_from_string",
    "HTTP_VERSIONS", "LIFESPAN_MODES", "LOG_LEVELS", "LOOPS", "TRACE",
]

TRACE = 5                                   # log level below DEBUG, as uvicorn's "trace"
LOG_LEVELS: dict[str, int] = {
    "critical": logging.CRITICAL, "error": logging.ERROR, "warning": logging.WARNING,
    "info": logging.INFO, "debug": logging.DEBUG, "trace": TRACE,
}
LIFESPAN_MODES = ("auto", "on", "off")
LOOPS = ("engine", "asyncio")
# --http: "1" HTTP/1.1 only, "2" HTTP/2 only (h2c prior knowledge; TLS offers only h2), "auto"
# both on one port (cleartext: the HTTP/2 connection preface decides; TLS: ALPN)
HTTP_VERSIONS = ("auto", "1", "2")
_ALPN = {"auto": ["h2", "http/1.1"], "1": ["http/1.1"], "2": ["h2"]}
# --ssl-cert-reqs: whether a client certificate is asked for and must verify (mTLS), by name
# or by the ssl module's number (0/1/2, as uvicorn takes it)
CERT_REQS = ("none", "optional", "required")
_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL,
              "required": ssl.CERT_REQUIRED}

_log = logging.getLogger("engine.serve")

MIB = 1024 * 1024


class ConfigError(ValueError):
    """A setting that cannot work (reported by ``engine serve`` without a traceback)."""


class AppLoadError(ConfigError):
    """The app (or a plugin) named by a ``module:attribute`` string could not be loaded."""


def _cert_reqs_name(value: object) -> str:
    if isinstance(value, str) and value.strip().lower() in _CERT_REQS:
        return value.strip().lower()
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(CERT_REQS):
        return CERT_REQS[value]
    raise ConfigError(f"ssl_cert_reqs must be one of {', '.join(CERT_REQS)} (or 0, 1, 2), "
                      f"not {value!r}")


def import_from_string(spec: str, *, what: str = "app") -> Any:
    """Import ``"package.module:attribute.path"`` and return the attribute.

    Errors are :class:`AppLoadError` with a message that says which part failed; an
    ``ImportError`` raised *inside* the module being imported is not disguised as a missing
    module (it is chained).
    """
    module_name, sep, attrs = spec.partition(":")
    if not sep or not module_name or not attrs:
        raise AppLoadError(f"{what} {spec!r}: expected \"module:attribute\"")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name) and (
                module_name == exc.name or module_name[len(exc.name)] == "."):
            raise AppLoadError(f"{what} {spec!r}: no module named {exc.name!r}") from None
        raise AppLoadError(f"{what} {spec!r}: importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        raise AppLoadError(f"{what} {spec!r}: importing {module_name!r} failed: "
                           f"{type(exc).__name__}: {exc}") from exc
    for part in attrs.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(f"{what} {spec!r}: attribute {attrs!r} not found in module "
                               f"{module_name!r}") from None
    return obj


@dataclasses.dataclass
class Config:
    """The settings of one ``engine serve`` (defaults are uvicorn's where it has the setting).

    Listening: ``uds`` (a Unix socket path) or ``fd`` (an inherited listening socket) replace
    ``host``/``port``; ``host="::"`` is dual stack (IPv6 and IPv4), ``host=""`` every
    interface; ``port=0`` picks a free port. ``workers``: ``None`` or 1 serve in this process,
    N > 1 fork N workers under engine.server's supervisor.

    Timeouts are seconds; ``timeout_graceful_shutdown=None`` waits for open connections without
    a limit. Limits: ``limit_concurrency`` (the HTTP protocol answers 503 above it),
    ``max_connections`` (stop accepting above it; engine.server's ``max_connections``, per
    worker), request line / header / body limits for the HTTP parser (``max_body=None``: no
    limit). ``ws_ping_interval=0`` turns keepalive pings off.
    """

    app: str | ASGIApp | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    uds: str | None = None
    fd: int | None = None
    workers: int | None = None
    factory: bool = False
    app_dir: str | None = "."
    root_path: str = ""
    proxy_headers: bool = True
    forwarded_allow_ips: list[str] | str | None = None   # None: $FORWARDED_ALLOW_IPS or 127.0.0.1
    timeout_keep_alive: float = 5.0
    timeout_request_header: float = 10.0
    timeout_request_body: float = 30.0
    timeout_graceful_shutdown: float | None = 30.0
    limit_concurrency: int | None = None
    max_connections: int | None = None
    backlog: int = 2048
    log_level: str | int | None = "info"
    access_log: bool = False
    log_config: str | None = None
    access_log_format: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_keyfile_password: str | None = None
    ssl_ca_certs: str | None = None
    ssl_cert_reqs: str | int = "none"
    ssl_ciphers: str | None = None
    metrics: str | None = None                # HOST:PORT of the Prometheus /metrics listener
    reload: bool = False
    reload_dirs: list[str] = dataclasses.field(default_factory=list)
    reload_interval: float = 0.5
    protocol: str = "http"
    http: str = "auto"                        # HTTP versions of the http protocol: 1, 2, auto
    static: str | None = None
    lifespan: str = "auto"
    loop: str = "engine"
    ws_max_size: int = 16 * MIB
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0
    ws_per_message_deflate: bool = True
    max_request_line: int = 8192
    max_header_count: int = 100
    max_header_bytes: int = 65536
    max_body: int | None = None
    server_header: bool = True
    date_header: bool = True
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    # worker recycling (ops): a worker past one of these is replaced without losing a request
    limit_max_requests: int | None = None
    max_requests_jitter: int = 0
    worker_max_rss: float | None = None          # MiB
    worker_lifetime: float | None = None         # seconds

    _ssl_context: ssl.SSLContext | None = dataclasses.field(
        default=None, init=False, repr=False, compare=False)
    _ssl_stamp: tuple[object, ...] | None = dataclasses.field(
        default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.lifespan not in LIFESPAN_MODES:
            raise ConfigError(f"lifespan must be one of {', '.join(LIFESPAN_MODES)}, "
                              f"not {self.lifespan!r}")
        if str(self.http) not in HTTP_VERSIONS:
            raise ConfigError(f"http must be one of {', '.join(HTTP_VERSIONS)}, "
                              f"not {self.http!r}")
        self.http = str(self.http)
        if self.loop not in LOOPS:
            raise ConfigError(f"loop must be one of {', '.join(LOOPS)}, not {self.loop!r}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError("workers must be >= 1")
        if self.uds is not None and self.fd is not None:
            raise ConfigError("give either uds or fd, not both")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port out of range: {self.port}")
        if self.backlog < 1:
            raise ConfigError("backlog must be >= 1")
        for name in ("limit_concurrency", "max_connections"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1")
        for name in ("timeout_keep_alive", "timeout_request_header", "timeout_request_body",
                     "ws_ping_interval", "ws_ping_timeout", "reload_interval"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        if self.timeout_graceful_shutdown is not None and self.timeout_graceful_shutdown < 0:
            raise ConfigError("timeout_graceful_shutdown must be >= 0 or None")
        if self.limit_max_requests is not None and self.limit_max_requests < 1:
            raise ConfigError("limit_max_requests must be >= 1")
        if self.max_requests_jitter < 0:
            raise ConfigError("max_requests_jitter must be >= 0")
        for name in ("worker_max_rss", "worker_lifetime"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be > 0")
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ConfigError("ssl_keyfile needs ssl_certfile")
        self.ssl_cert_reqs = _cert_reqs_name(self.ssl_cert_reqs)
        if not self.ssl_certfile:
            for name in ("ssl_ca_certs", "ssl_ciphers"):
                if getattr(self, name):
                    raise ConfigError(f"{name} needs ssl_certfile")
            if self.ssl_cert_reqs != "none":
                raise ConfigError("ssl_cert_reqs needs ssl_certfile")
        if self.ssl_cert_reqs != "none" and not self.ssl_ca_certs:
            raise ConfigError(f"ssl_cert_reqs={self.ssl_cert_reqs!r} needs ssl_ca_certs (the "
                              "CA certificates that client certificates are checked against)")
        if self.access_log_format:
            from .accesslog import AccessFormatError, compile_access_format
            try:
                compile_access_format(self.access_log_format)    # unknown atom: error now
            except AccessFormatError as exc:
                raise ConfigError(str(exc)) from None
        if self.metrics is not None:
            from .metrics import parse_address
            try:
                m_host, m_port = parse_address(self.metrics)
            except ValueError as exc:
                raise ConfigError(f"metrics: {exc}") from None
            if (m_port and m_port == self.port and self.uds is None and self.fd is None
                    and m_host in (self.host, "0.0.0.0", "::", "") ):
                raise ConfigError(f"metrics {self.metrics!r}: the metrics listener must not "
                                  "be the app's address")
        self.log_level_number()                   # validates
        if self.static is not None and not os.path.isdir(self.static):
            raise ConfigError(f"static: {self.static!r} is not a directory")
        if self.forwarded_allow_ips is None:
            self.forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
        if isinstance(self.forwarded_allow_ips, str):
            self.forwarded_allow_ips = [
                item.strip() for item in self.forwarded_allow_ips.split(",") if item.strip()]
        for name, value in self.headers:
            if not name or any(c in name for c in " \t\r\n:") or any(c in value for c in "\r\n"):
                raise ConfigError(f"invalid header {name!r}: {value!r}")

    # --- derived values ---------------------------------------------------------------------

    @property
    def is_ssl(self) -> bool:
        return bool(self.ssl_certfile)

    def scheme(self, protocol: str | None = None) -> str:
        """What the listeners speak, for the startup line: ``http``/``https`` for the http
        protocol, ``tcp``/``tls`` for the others (``protocol``: the plugin's name, default
        ``self.protocol``). Loads the TLS certificate (ConfigError when it cannot)."""
        tls = self.ssl_context() is not None
        if (protocol or self.protocol) == "http":
            return "https" if tls else "http"
        return "tls" if tls else "tcp"

    @property
    def in_process(self) -> bool:
        """True when serving in this process (no supervisor): workers None or 1."""
        return self.workers is None or self.workers == 1

    def log_level_number(self) -> int | None:
        """The log level as a number (None: leave logging alone)."""
        if self.log_level is None or isinstance(self.log_level, int):
            return self.log_level
        try:
            return LOG_LEVELS[self.log_level.lower()]
        except KeyError:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, "
                              f"not {self.log_level!r}") from None

    def default_headers(self) -> list[tuple[bytes, bytes]]:
        """Headers added to every response: ``server: engine`` (unless ``server_header`` is
        off) and ``headers``, as latin-1 bytes with lower-case names. A ``server`` entry in
        ``headers`` replaces the default one."""
        extra = [(name.lower().encode("latin-1"), value.encode("latin-1"))
                 for name, value in self.headers]
        out: list[tuple[bytes, bytes]] = []
        if self.server_header and not any(name == b"server" for name, _ in extra):
            out.append((b"server", b"engine"))
        return out + extra

    def loop_factory(self) -> Callable[[], asyncio.AbstractEventLoop]:
        """What makes each worker's event loop: engine's (default) or asyncio's own."""
        if self.loop == "asyncio":
            return asyncio.new_event_loop
        return new_event_loop

    # --- the app ----------------------------------------------------------------------------

    def load_app(self) -> ASGIApp:
        """The ASGI app to serve.

        ``app`` None: the embedded default app (:mod:`engine.serve.default_app`, with
        ``static``). A
        ``"module:attribute"`` string is imported (``app_dir`` is put first on ``sys.path``);
        an object is used as is. With ``factory=True`` the result is called without
        arguments and what it returns is the app. Raises :class:`AppLoadError`.
        """
        if self.app is None:
            # imported when it is served (its mimetypes/html/json imports are most of what
            # loading engine serve's settings would cost otherwise)
            from .default_app import DefaultApp
            return DefaultApp(static=self.static, workers=self.workers)
        if self.static is not None:
            raise ConfigError("static is served by the default app only (no MODULE:APP)")
        obj: Any = self.app
        if isinstance(obj, str):
            self.prepare_import_path()
            obj = import_from_string(obj, what="app")
        if self.factory:
            if not callable(obj):
                raise AppLoadError(f"app factory {self.app!r} is not callable")
            try:
                obj = obj()
            except Exception as exc:
                raise AppLoadError(f"app factory {self.app!r} raised "
                                   f"{type(exc).__name__}: {exc}") from exc
        if not callable(obj):
            raise AppLoadError(f"app {self.app!r} is not callable"
                               + ("" if self.factory else " (an app factory needs --factory)"))
        return obj  # type: ignore[no-any-return]

    def prepare_import_path(self) -> None:
        """Put ``app_dir`` first on ``sys.path`` (once), so that ``module:attribute`` strings
        for the app and for ``--protocol`` import from there."""
        if self.app_dir is not None:
            path = os.path.abspath(self.app_dir)
            if path not in sys.path:
                sys.path.insert(0, path)

    # --- TLS --------------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext | None:
        """A server-side SSLContext from the ``ssl_*`` settings, or None without a certificate.

        It is made once and kept while the files it was made from (certificate, key, CA
        certificates) are unchanged; when one changed (a renewed certificate), the next call
        makes a new context from them, so a worker started after the change (``SIGHUP``'s
        rolling restart) serves the new certificate. If the changed files cannot be loaded
        and a context was made before, that one is kept and the error logged (a broken
        renewal does not stop a running server); the first load raises ConfigError."""
        if not self.ssl_certfile:
            return None
        stamp = self._ssl_files_stamp()
        if self._ssl_context is None or stamp != self._ssl_stamp:
            try:
                ctx = self._make_ssl_context()
            except ConfigError:
                if self._ssl_context is None:
                    raise
                _log.exception("TLS files changed but cannot be loaded; serving the "
                               "certificate loaded before")
                self._ssl_stamp = stamp             # log once per change, not per call
                return self._ssl_context
            if self._ssl_context is not None:
                _log.info("TLS certificate reloaded from %s", self.ssl_certfile)
            self._ssl_context, self._ssl_stamp = ctx, stamp
        return self._ssl_context

    def _ssl_files_stamp(self) -> tuple[object, ...]:
        stamp: list[object] = []
        for path in (self.ssl_certfile, self.ssl_keyfile, self.ssl_ca_certs):
            if not path:
                stamp.append(None)
                continue
            try:
                st = os.stat(path)
            except OSError:
                stamp.append(None)
            else:
                stamp.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(stamp)

    def _make_ssl_context(self) -> ssl.SSLContext:
        assert self.ssl_certfile
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ctx.load_cert_chain(self.ssl_certfile, self.ssl_keyfile, self.ssl_keyfile_password)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the TLS certificate {self.ssl_certfile!r}: "
                              f"{exc}") from None
        if self.ssl_ca_certs:
            try:
                if os.path.isdir(self.ssl_ca_certs):
                    ctx.load_verify_locations(capath=self.ssl_ca_certs)
                else:
                    ctx.load_verify_locations(cafile=self.ssl_ca_certs)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"cannot load the CA certificates {self.ssl_ca_certs!r}: "
                                  f"{exc}") from None
        ctx.verify_mode = _CERT_REQS[str(self.ssl_cert_reqs)]
        if self.ssl_ciphers:
            try:
                ctx.set_ciphers(self.ssl_ciphers)
            except ssl.SSLError as exc:
                raise ConfigError(f"ssl_ciphers {self.ssl_ciphers!r}: {exc}") from None
        if self.protocol == "http":
            # TLS ALPN (RFC 7301): what --http allows, h2 first (the server's preference)
            ctx.set_alpn_protocols(_ALPN[self.http])
        return ctx

    # --- listening --------------------------------------------------------------------------

    def listeners(self) -> list[Listener]:
        """engine.server listeners: the Unix socket ``uds``, the inherited socket ``fd``, or a
        TCP listener on ``host``:``port`` (dual stack when ``host`` is ``::``, every
        interface when it is empty)."""
        if self.uds is not None:
            return [Listener.unix(self.uds, backlog=self.backlog)]
        if self.fd is not None:
            return [Listener.fd(self.fd, backlog=self.backlog)]
        host = self.host.strip("[]") if self.host else None
        return [Listener.tcp(host, self.port, backlog=self.backlog,
                             dualstack=True if host == "::" else None)]

    # --- copies -----------------------------------------------------------------------------

    def replace(self, **changes: Any) -> Config:
        """A copy with some settings changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def field_names(cls) -> Sequence[str]:
        return [f.name for f in dataclasses.fields(cls) if f.init]

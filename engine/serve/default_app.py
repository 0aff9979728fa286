"""The embedded default app of ``engine serve`` (what runs when no ``MODULE:APP`` is given).

Routes:

* ``/`` -- an HTML page saying what is running (engine version, event loop and poller, Python,
  process and worker), with links and a small WebSocket demo;
* ``/echo`` -- GET/HEAD: the request as JSON (method, path, query, headers, client, ...); any
  other method: the request body back, with the request's content type (at most
  :data:`ECHO_MAX_BODY` bytes, else 413);
* ``/ws`` -- a WebSocket echo (text frames back as text, binary as binary);
* with ``static`` (``engine serve --static DIR``) and only then: the files under DIR, GET and
  HEAD. Paths are resolved inside DIR: ``..`` segments, names starting with a dot and symlinks
  that lead outside DIR are 404s; a directory serves its ``index.html`` (a path without the
  trailing slash is redirected to it), never a listing. Responses carry Content-Type (from the
  file name), Content-Length, Last-Modified and an ETag, and honour If-None-Match /
  If-Modified-Since with 304. The body goes out with the ``http.response.pathsend`` extension
  when the server offers it (engine's HTTP protocol does: sendfile(2)), else in chunks.
  Single byte ranges (RFC 9110 14: ``Range: bytes=a-b``, ``a-``, ``-n``, with ``If-Range``) get
  206 with Content-Range, the part sent with ``http.response.zerocopysend`` (offset/count,
  sendfile(2)); an unsatisfiable range gets 416 with ``Content-Range: bytes */LEN``; a malformed
  Range header, or one with several ranges, is ignored (200, the whole file: no
  multipart/byteranges).

Other methods on ``/`` and on files get 405 with an ``Allow`` header; unknown paths 404. The app
also answers the lifespan scope. ``app`` is an instance without static files;
``engine serve`` builds one with its settings (``DefaultApp(static=..., workers=...)``).
"""
from __future__ import annotations

import asyncio
import email.utils
import html
import json
import mimetypes
import os
import platform
import sys
import time
from typing import Any

import engine

from .asgi_types import Message, Receive, Scope, Send

__all__ = ["DefaultApp", "app", "ECHO_MAX_BODY", "CHUNK_SIZE"]

ECHO_MAX_BODY = 8 * 1024 * 1024      # /echo buffers the body it sends back: at most this much
CHUNK_SIZE = 256 * 1024              # static files without pathsend go out in pieces this big

_GET_HEAD = (b"allow", b"GET, HEAD")
_TEXT = b"text/plain; charset=utf-8"


class DefaultApp:
    """The default ASGI app; ``static``: a directory to serve files from (None: no files)."""

    def __init__(self, static: str | os.PathLike[str] | None = None, *,
                 workers: int | None = None) -> None:
        self.static_root = os.path.realpath(static) if static is not None else None
        self.workers = workers
        self.started = time.time()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            raise ValueError(f"unsupported scope type {kind!r}")

    # --- lifespan ---------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- HTTP -------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = _app_path(scope)
        method = scope["method"]
        head = method == "HEAD"
        if path == "/echo":
            await self._echo(scope, receive, send)
        elif path == "/":
            if method not in ("GET", "HEAD"):
                await _plain(send, 405, "method not allowed\n", [_GET_HEAD])
            else:
                page = self._page(scope).encode()
                await _respond(send, 200, b"text/html; charset=utf-8", page, head=head)
        elif self.static_root is not None:
            await self._static(scope, send, path)
        else:
            await _plain(send, 404, "not found\n", head=head)

    async def _echo(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method in ("GET", "HEAD"):
            client = scope.get("client")
            info = {
                "method": method,
                "path": scope["path"],
                "raw_path": _latin1(scope.get("raw_path")),
                "root_path": scope.get("root_path", ""),
                "query_string": _latin1(scope.get("query_string", b"")),
                "http_version": scope.get("http_version"),
                "scheme": scope.get("scheme"),
                "client": list(client) if client else None,
                "headers": [[_latin1(k), _latin1(v)] for k, v in scope.get("headers", [])],
            }
            body = json.dumps(info, indent=1).encode() + b"\n"
            await _respond(send, 200, b"application/json", body, head=method == "HEAD")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > ECHO_MAX_BODY:
                await _plain(send, 413, f"/echo sends back at most {ECHO_MAX_BODY} bytes\n")
                return
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        ctype = _header(scope, b"content-type") or b"application/octet-stream"
        await _respond(send, 200, ctype, b"".join(chunks))

    def _page(self, scope: Scope) -> str:
        loop = asyncio.get_running_loop()
        if isinstance(loop, engine.Loop):
            loop_name = f"engine's loop on {engine.BACKEND}"
        else:
            loop_name = f"{type(loop).__module__}.{type(loop).__qualname__}"
        workers = self.workers if self.workers and self.workers > 1 else 1
        worker = (f"one of {workers} worker processes (supervisor pid {os.getppid()})"
                  if workers > 1 else "a single process")
        server = scope.get("server")
        where = f"{server[0]}:{server[1]}" if server and server[1] is not None else (
            str(server[0]) if server else "?")
        rows = [
            ("engine", f"{engine.__version__}" + (" (debug build)" if engine.DEBUG_BUILD else "")),
            ("event loop", loop_name),
            ("Python", f"{platform.python_implementation()} {platform.python_version()} "
                       f"on {sys.platform}"),
            ("process", f"pid {os.getpid()}, {worker}"),
            ("listening on", f"{scope.get('scheme', 'http')}://{where}"),
            ("up", f"{time.time() - self.started:.0f} s"),
        ]
        if self.static_root is not None:
            rows.append(("static files", self.static_root))
        table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                        for k, v in rows)
        root_path = scope.get("root_path", "")
        ws_scheme = "wss" if scope.get("scheme") == "https" else "ws"
        return _PAGE.format(table=table, root=html.escape(root_path), ws_scheme=ws_scheme,
                            root_js=json.dumps(root_path).replace("</", "<\\/"),
                            static=("<li>any other path: a file from the static directory</li>"
                                    if self.static_root is not None else ""))

    # --- static files -----------------------------------------------------------------------

    def resolve(self, path: str) -> tuple[str, bool] | None:
        """The real file path that URL ``path`` names inside the static root, with whether it
        is a directory reached without its trailing slash; None if there is no such file or the
        path tries to leave the root."""
        root = self.static_root
        if root is None or "\0" in path or "\\" in path:
            return None
        parts = [part for part in path.split("/") if part and part != "."]
        if any(part.startswith(".") for part in parts):      # "..", ".git", ".env", ...
            return None
        real = os.path.realpath(os.path.join(root, *parts))
        if not _inside(real, root):
            return None                                       # a symlink out of the root
        if os.path.isdir(real):
            if parts and not path.endswith("/"):
                return real, True
            real = os.path.realpath(os.path.join(real, "index.html"))
            if not _inside(real, root):
                return None
        elif path.endswith("/"):
            return None                                       # "/file.txt/" is not a file
        if not os.path.isfile(real):
            return None
        return real, False

    async def _static(self, scope: Scope, send: Send, path: str) -> None:
        method = scope["method"]
        found = self.resolve(path)
        if found is None:
            await _plain(send, 404, "not found\n", head=method == "HEAD")
            return
        if method not in ("GET", "HEAD"):
            await _plain(send, 405, "method not allowed\n", [_GET_HEAD])
            return
        real, redirect = found
        if redirect:
            location = scope.get("root_path", "") + path + "/"
            query = scope.get("query_string", b"")
            target = location.encode("utf-8") + (b"?" + query if query else b"")
            await send({"type": "http.response.start", "status": 301,
                        "headers": [(b"location", target), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        try:
            fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
                         | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            await _plain(send, 404, "not found\n", head=method == "HEAD")
            return
        try:
            st = os.fstat(fd)
            etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'.encode()
            headers = [
                (b"last-modified", email.utils.formatdate(st.st_mtime, usegmt=True).encode()),
                (b"etag", etag),
            ]
            if _not_modified(scope, etag, st.st_mtime):
                await send({"type": "http.response.start", "status": 304, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return
            headers += [(b"content-type", _content_type(real)), (b"accept-ranges", b"bytes")]
            size = st.st_size
            span = _range(scope, size, etag, headers[0][1])
            if isinstance(span, str):                  # "unsatisfiable"
                await _respond(send, 416, _TEXT, b"range not satisfiable\n", head=method == "HEAD",
                               extra=[(b"content-range", f"bytes */{size}".encode()),
                                      (b"accept-ranges", b"bytes")])
                return
            if span is not None:
                first, last = span
                count = last - first + 1
                headers += [(b"content-range", f"bytes {first}-{last}/{size}".encode()),
                            (b"content-length", str(count).encode())]
                await send({"type": "http.response.start", "status": 206, "headers": headers})
                await self._send_part(scope, send, fd, first, count, method == "HEAD", real)
                return
            headers.append((b"content-length", str(size).encode()))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            if method == "HEAD" or st.st_size == 0:
                await send({"type": "http.response.body", "body": b""})
                return
            if "http.response.pathsend" in (scope.get("extensions") or {}):
                os.close(fd)
                fd = -1
                await send({"type": "http.response.pathsend", "path": real})
                return
            left = st.st_size
            while left > 0:
                chunk = os.read(fd, min(CHUNK_SIZE, left))
                if not chunk:                          # truncated while we read: stop short
                    break
                left -= len(chunk)
                await send({"type": "http.response.body", "body": chunk,
                            "more_body": left > 0})
            if left > 0:
                raise RuntimeError(f"{real} shrank while it was being sent")
        finally:
            if fd >= 0:
                os.close(fd)

    async def _send_part(self, scope: Scope, send: Send, fd: int, offset: int, count: int,
                         head: bool, real: str) -> None:
        """``count`` bytes of the open file ``fd`` from ``offset`` (a 206's body)."""
        if head:
            await send({"type": "http.response.body", "body": b""})
            return
        if "http.response.zerocopysend" in (scope.get("extensions") or {}):
            with open(fd, "rb", buffering=0, closefd=False) as f:
                await send({"type": "http.response.zerocopysend", "file": f,
                            "offset": offset, "count": count})
            return
        left = count
        while left > 0:
            chunk = os.pread(fd, min(CHUNK_SIZE, left), offset)
            if not chunk:
                raise RuntimeError(f"{real} shrank while it was being sent")
            left -= len(chunk)
            offset += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})

    # --- WebSocket --------------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if _app_path(scope) != "/ws":
            await send({"type": "websocket.close", "code": 1008})     # before accept: 403
            return
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message["type"] != "websocket.receive":
                continue
            text = message.get("text")
            if text is not None:
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


app = DefaultApp()


# --- helpers ----------------------------------------------------------------------------------

def _app_path(scope: Scope) -> str:
    """The path below ``root_path`` (ASGI puts ``root_path`` in front of ``path``)."""
    path: str = scope["path"]
    root = scope.get("root_path") or ""
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        path = path[len(root):] or "/"
    return path


def _inside(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _latin1(value: Any) -> Any:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value  # type: ignore[no-any-return]
    return None


def _content_type(path: str) -> bytes:
    ctype, encoding = mimetypes.guess_type(path)
    if ctype is None or encoding is not None:      # .gz etc: the bytes as they are
        return b"application/octet-stream"
    if ctype.startswith("text/") or ctype in ("application/javascript", "application/json"):
        ctype += "; charset=utf-8"
    return ctype.encode("latin-1")


def _not_modified(scope: Scope, etag: bytes, mtime: float) -> bool:
    inm = _header(scope, b"if-none-match")
    if inm is not None:                  # RFC 9110 13.1.2: If-None-Match wins over the date
        tags = [t.strip() for t in inm.split(b",")]
        return b"*" in tags or etag in tags or b"W/" + etag in tags
    ims = _header(scope, b"if-modified-since")
    if ims is None:
        return False
    try:
        since = email.utils.parsedate_to_datetime(ims.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return False
    if since is None or since.tzinfo is None:
        return False
    return int(mtime) <= since.timestamp()


def _range(scope: Scope, size: int, etag: bytes,
           last_modified: bytes) -> tuple[int, int] | str | None:
    """The byte range (first, last) a GET/HEAD asks for (RFC 9110 14.2), "unsatisfiable", or
    None for the whole file: no Range header, a malformed one, several ranges (not served as
    multipart/byteranges), or an If-Range that does not match the file."""
    value = _header(scope, b"range")
    if value is None:
        return None
    if_range = _header(scope, b"if-range")
    if if_range is not None:
        if_range = if_range.strip()
        # an entity tag must match strongly; a date must be the exact Last-Modified
        if if_range != (etag if if_range.startswith((b'"', b"W/")) else last_modified):
            return None
    unit, eq, spec = value.partition(b"=")
    if not eq or unit.strip().lower() != b"bytes":
        return None
    spec = spec.strip(b" \t")
    if b"," in spec:
        return None                     # several ranges: the whole file (documented)
    first_s, dash, last_s = spec.partition(b"-")
    first_s, last_s = first_s.strip(b" \t"), last_s.strip(b" \t")
    if not dash or (first_s and not first_s.isdigit()) or (last_s and not last_s.isdigit()):
        return None
    # at most 18 digits are read: a longer number is beyond any file (and int() of thousands
    # of digits is slow or refused)
    first_s, last_s = first_s.lstrip(b"0") or first_s[:1], last_s.lstrip(b"0") or last_s[:1]
    if len(first_s) > 18:
        return "unsatisfiable"
    if len(last_s) > 18:
        last_s = b"999999999999999999"
    if not first_s:
        if not last_s:
            return None                 # "bytes=-": malformed
        suffix = int(last_s)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if last_s and last < first:
        return None                     # "bytes=5-2": invalid, ignored (RFC 9110 14.1.1)
    if first >= size:
        return "unsatisfiable"
    return first, min(last, size - 1)


async def _respond(send: Send, status: int, ctype: bytes, body: bytes, *,
                   head: bool = False, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    if extra:
        headers += extra
    start: Message = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _plain(send: Send, status: int, text: str,
                 extra: list[tuple[bytes, bytes]] | None = None, *, head: bool = False) -> None:
    await _respond(send, status, _TEXT, text.encode(), head=head, extra=extra)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>engine serve</title>
<style>body{{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:46em;padding:0 1em}}
th{{text-align:left;padding-right:1.5em;font-weight:600}}code{{background:#eee;padding:0 .2em}}
#log{{white-space:pre-wrap;background:#f6f6f6;padding:.5em;min-height:3em}}</style></head>
<body><h1>engine serve</h1>
<p>This is engine's embedded default app: the ASGI server is running. Serve your own app with
<code>engine serve MODULE:APP</code>.</p>
<table>{table}</table>
<h2>Try</h2><ul>
<li><a href="{root}/echo">{root}/echo</a>: your request as JSON (POST/PUT: the body back)</li>
<li><code>{root}/ws</code>: a WebSocket echo</li>{static}</ul>
<form id="f"><input id="msg" value="hello" size="30"> <button>send over WebSocket</button></form>
<div id="log"></div>
<script>
const log = t => document.getElementById("log").textContent += t + "\\n";
const ws = new WebSocket("{ws_scheme}://" + location.host + {root_js} + "/ws");
ws.onopen = () => log("connected");
ws.onmessage = e => log("echo: " + e.data);
ws.onclose = () => log("closed");
document.getElementById("f").onsubmit = e => {{
  e.preventDefault(); ws.send(document.getElementById("msg").value);
}};
</script></body></html>
"""

"""engine.serve.default_app driven as an ASGI callable with fake receive/send: routes, HEAD, 405,
/echo, the WebSocket echo, and static files (traversal, symlinks, dotfiles, pathsend,
streaming, conditional requests)."""
import asyncio
import email.utils
import json
import os

import pytest

import engine
from engine.serve import default_app as default_app_module
from engine.serve.default_app import DefaultApp
from engine.serve.default_app import app as module_app

BOUND = 30.0


def http_scope(path, method="GET", headers=(), *, root_path="", extensions=None, query=b""):
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": root_path + path, "raw_path": (root_path + path).encode(),
        "root_path": root_path, "query_string": query,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
        "extensions": extensions if extensions is not None else {},
    }


class Response:
    def __init__(self, messages):
        self.messages = messages
        start = messages[0]
        assert start["type"] == "http.response.start"
        self.status = start["status"]
        self.headers = {k.decode(): v.decode() for k, v in start["headers"]}
        self.body = b"".join(m.get("body", b"") for m in messages[1:]
                             if m["type"] == "http.response.body")
        last = messages[-1]
        assert last["type"] == "http.response.pathsend" or not last.get("more_body", False)


def call(app, scope, body_chunks=(b"",)):
    """Run one HTTP request through the app; returns the Response."""
    incoming = [{"type": "http.request", "body": c, "more_body": i < len(body_chunks) - 1}
                for i, c in enumerate(body_chunks)]
    sent = []

    async def receive():
        if incoming:
            return incoming.pop(0)
        await asyncio.Event().wait()            # nothing more: like a live connection

    async def send(message):
        sent.append(message)

    engine.run(asyncio.wait_for(app(scope, receive, send), BOUND))
    return Response(sent)


# --------------------------------------------------------------------------- page, echo

def test_page():
    r = call(DefaultApp(workers=3), http_scope("/"))
    assert r.status == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    page = r.body.decode()
    assert f"<td>{engine.__version__}" in page and engine.BACKEND in page
    assert f"pid {os.getpid()}" in page and "one of 3 worker processes" in page
    assert 'href="/echo"' in page and "/ws" in page
    assert "static" not in page.lower().split("<table>")[1].split("</table>")[0]
    assert int(r.headers["content-length"]) == len(r.body)


def test_head_has_headers_and_no_body():
    get = call(module_app, http_scope("/"))
    head = call(module_app, http_scope("/", "HEAD"))
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == str(len(get.body))


def test_method_not_allowed_on_the_page():
    r = call(module_app, http_scope("/", "DELETE"))
    assert r.status == 405 and r.headers["allow"] == "GET, HEAD"


def test_unknown_path_is_404_without_static():
    for path in ("/nothing", "/etc/passwd", "/../etc/passwd"):
        assert call(module_app, http_scope(path)).status == 404


def test_echo_get_describes_the_request():
    scope = http_scope("/echo", headers=[("X-Test", "1")], query=b"a=b")
    r = call(module_app, scope)
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    info = json.loads(r.body)
    assert info["method"] == "GET" and info["query_string"] == "a=b"
    assert ["x-test", "1"] in info["headers"] and info["client"] == ["127.0.0.1", 5000]
    head = call(module_app, http_scope("/echo", "HEAD"))
    assert head.status == 200 and head.body == b"" and int(head.headers["content-length"]) > 0


def test_echo_post_returns_the_body_in_pieces():
    scope = http_scope("/echo", "POST", headers=[("content-type", "text/x-thing")])
    r = call(module_app, scope, [b"hello ", b"", b"world"])
    assert (r.status, r.body) == (200, b"hello world")
    assert r.headers["content-type"] == "text/x-thing"
    r = call(module_app, http_scope("/echo", "PUT"), [b"\x00\xff"])
    assert r.body == b"\x00\xff" and r.headers["content-type"] == "application/octet-stream"


def test_echo_limit(monkeypatch):
    monkeypatch.setattr(default_app_module, "ECHO_MAX_BODY", 10)
    assert call(module_app, http_scope("/echo", "POST"), [b"x" * 10]).status == 200
    assert call(module_app, http_scope("/echo", "POST"), [b"x" * 6, b"y" * 6]).status == 413


def test_echo_client_gone():
    sent = []
    messages = [{"type": "http.request", "body": b"a", "more_body": True},
                {"type": "http.disconnect"}]

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    engine.run(asyncio.wait_for(module_app(http_scope("/echo", "POST"), receive, send), BOUND))
    assert sent == []


def test_root_path():
    r = call(module_app, http_scope("/echo", root_path="/api"))
    assert r.status == 200 and json.loads(r.body)["root_path"] == "/api"
    r = call(module_app, http_scope("/", root_path="/api"))
    assert r.status == 200 and b'href="/api/echo"' in r.body


# --------------------------------------------------------------------------- WebSocket, lifespan

def run_ws(path, client_messages):
    incoming = [{"type": "websocket.connect"}, *client_messages,
                {"type": "websocket.disconnect", "code": 1000}]
    sent = []

    async def receive():
        return incoming.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "websocket", "path": path, "root_path": "", "headers": [],
             "query_string": b"", "subprotocols": [], "asgi": {"version": "3.0"}}
    engine.run(asyncio.wait_for(module_app(scope, receive, send), BOUND))
    return sent


def test_websocket_echo_text_and_bytes():
    sent = run_ws("/ws", [{"type": "websocket.receive", "text": "hi"},
                          {"type": "websocket.receive", "bytes": b"\x01\x02"},
                          {"type": "websocket.receive", "text": ""}])
    assert sent == [{"type": "websocket.accept"},
                    {"type": "websocket.send", "text": "hi"},
                    {"type": "websocket.send", "bytes": b"\x01\x02"},
                    {"type": "websocket.send", "text": ""}]


def test_websocket_elsewhere_is_refused_before_accept():
    sent = run_ws("/other", [])
    assert len(sent) == 1 and sent[0]["type"] == "websocket.close"


def test_lifespan():
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent = []

    async def receive():
        return incoming.pop(0)

    async def send(message):
        sent.append(message["type"])

    engine.run(asyncio.wait_for(module_app({"type": "lifespan", "state": {}}, receive, send),
                                BOUND))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


# --------------------------------------------------------------------------- static files

@pytest.fixture
def site(tmp_path):
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "a.txt").write_text("file a")
    (root / "data.json").write_text("{}")
    (root / "blob.bin").write_bytes(os.urandom(default_app_module.CHUNK_SIZE * 2 + 123))
    (root / "sub" / "index.html").write_text("sub index")
    (root / "sub" / "b.css").write_text("b{}")
    (root / ".env").write_text("SECRET=1")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", root / "escape.txt")          # out of the root
    os.symlink(tmp_path, root / "up")                                  # a directory out
    os.symlink(root / "a.txt", root / "alias.txt")                     # inside: fine
    return root


@pytest.fixture
def static_app(site):
    return DefaultApp(static=site)


def test_static_file_streamed_without_pathsend(static_app, site):
    r = call(static_app, http_scope("/a.txt"))
    assert (r.status, r.body) == (200, b"file a")
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["content-length"] == "6"
    mtime = os.stat(site / "a.txt").st_mtime
    assert r.headers["last-modified"] == email.utils.formatdate(mtime, usegmt=True)
    big = call(static_app, http_scope("/blob.bin"))
    assert big.body == (site / "blob.bin").read_bytes()
    assert len([m for m in big.messages if m["type"] == "http.response.body"]) == 3
    assert big.headers["content-type"] == "application/octet-stream"
    assert call(static_app, http_scope("/data.json")).headers["content-type"] == (
        "application/json; charset=utf-8")


def test_static_file_with_pathsend(static_app, site):
    r = call(static_app, http_scope("/sub/b.css", extensions={"http.response.pathsend": {}}))
    assert r.status == 200 and r.headers["content-length"] == "3"
    assert r.messages[-1] == {"type": "http.response.pathsend",
                              "path": os.path.realpath(site / "sub" / "b.css")}
    head = call(static_app, http_scope("/sub/b.css", "HEAD",
                                       extensions={"http.response.pathsend": {}}))
    assert head.messages[-1] == {"type": "http.response.body", "body": b""}
    assert head.headers["content-length"] == "3"


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/sub/../../secret.txt", "/./../secret.txt", "/..", "/../",
    "/escape.txt", "/up/secret.txt", "/.env", "/sub/.hidden",
    "/a.txt\0.png", "/..\\secret.txt", "//etc/passwd", "/nonexistent", "/empty/",
    "/a.txt/",
])
def test_static_paths_that_must_404(static_app, path):
    r = call(static_app, http_scope(path))
    assert r.status == 404 and b"secret" not in r.body
    assert call(static_app, http_scope(path, "HEAD")).body == b""


def test_static_symlink_inside_the_root_is_served(static_app):
    assert call(static_app, http_scope("/alias.txt")).body == b"file a"


def test_static_directories(static_app):
    assert call(static_app, http_scope("/sub/")).body == b"sub index"
    r = call(static_app, http_scope("/sub", query=b"x=1"))
    assert r.status == 301 and r.headers["location"] == "/sub/?x=1"
    r = call(static_app, http_scope("/sub", root_path="/mnt"))
    assert r.headers["location"] == "/mnt/sub/"
    # "/" stays the page that says what runs, even with an index.html
    assert b"engine serve" in call(static_app, http_scope("/")).body


def test_static_methods(static_app):
    r = call(static_app, http_scope("/a.txt", "POST"), [b"x"])
    assert r.status == 405 and r.headers["allow"] == "GET, HEAD"
    head = call(static_app, http_scope("/a.txt", "HEAD"))
    assert head.status == 200 and head.body == b"" and head.headers["content-length"] == "6"


def test_static_conditional_requests(static_app, site):
    first = call(static_app, http_scope("/a.txt"))
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    r = call(static_app, http_scope("/a.txt", headers=[("if-none-match", etag)]))
    assert r.status == 304 and r.body == b"" and r.headers["etag"] == etag
    r = call(static_app, http_scope("/a.txt", headers=[("if-none-match", '"other", ' + etag)]))
    assert r.status == 304
    r = call(static_app, http_scope("/a.txt", headers=[("if-none-match", '"other"'),
                                                       ("if-modified-since", modified)]))
    assert r.status == 200                       # If-None-Match decides when present
    assert call(static_app, http_scope("/a.txt", headers=[
        ("if-modified-since", modified)])).status == 304
    assert call(static_app, http_scope("/a.txt", headers=[
        ("if-modified-since", "Mon, 01 Jan 1990 00:00:00 GMT")])).status == 200
    assert call(static_app, http_scope("/a.txt", headers=[
        ("if-modified-since", "garbage")])).status == 200
    os.utime(site / "a.txt", (0, os.stat(site / "a.txt").st_mtime + 10))
    r = call(static_app, http_scope("/a.txt", headers=[("if-none-match", etag)]))
    assert r.status == 200 and r.headers["etag"] != etag     # changed file, new tag


def test_resolve_api(static_app, site):
    assert static_app.resolve("/a.txt") == (os.path.realpath(site / "a.txt"), False)
    assert static_app.resolve("/sub") == (os.path.realpath(site / "sub"), True)
    assert static_app.resolve("/../secret.txt") is None
    assert DefaultApp().resolve("/a.txt") is None                     # no static root

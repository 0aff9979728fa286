"""Range / If-Range on `engine serve --static DIR` (RFC 9110 14, 13.1.5): single ranges get 206
with Content-Range (the part goes out with http.response.zerocopysend: sendfile(2)),
unsatisfiable ones 416, malformed or multi-range requests the whole file (200)."""
import asyncio
import email.utils
import http.client
import os
import shutil
import subprocess

import pytest
from serve_util import Served

import engine
from engine.serve.default_app import DefaultApp

DATA = bytes(range(256)) * 4 + b"tail"           # 1028 bytes
BIG = os.urandom(3 * 1024 * 1024 + 7)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("site")
    (d / "f.bin").write_bytes(DATA)
    (d / "big.bin").write_bytes(BIG)
    (d / "empty.txt").write_bytes(b"")
    return d


@pytest.fixture(scope="module")
def server(site):
    s = Served("--static", str(site), "--host", "127.0.0.1")
    try:
        yield s
    finally:
        s.stop()


def get(server, path, headers=None, method="GET"):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def validators(server):
    _, h, _ = get(server, "/f.bin", method="HEAD")
    return h["etag"], h["last-modified"]


N = len(DATA)


@pytest.mark.parametrize("spec, first, last", [
    ("bytes=0-9", 0, 9),
    ("bytes=1000-", 1000, N - 1),
    ("bytes=-4", N - 4, N - 1),
    ("bytes=-5000", 0, N - 1),                       # a suffix longer than the file: all of it
    ("bytes=10-99999", 10, N - 1),                   # last beyond the end: clamped
    ("bytes=5-5", 5, 5),
    ("BYTES = 3-4", 3, 4),                           # unit case-insensitive, spaces allowed
    ("bytes=0-" + "9" * 40, 0, N - 1),               # a huge number is just "beyond the end"
])
def test_single_range_206(server, spec, first, last):
    status, h, body = get(server, "/f.bin", {"Range": spec})
    assert status == 206
    assert h["content-range"] == f"bytes {first}-{last}/{N}"
    assert int(h["content-length"]) == last - first + 1
    assert body == DATA[first:last + 1]
    assert h["accept-ranges"] == "bytes" and "etag" in h and "last-modified" in h


@pytest.mark.parametrize("spec", ["bytes=1028-", "bytes=5000-6000", "bytes=-0",
                                  "bytes=" + "9" * 40 + "-"])
def test_unsatisfiable_416(server, spec):
    status, h, body = get(server, "/f.bin", {"Range": spec})
    assert status == 416
    assert h["content-range"] == f"bytes */{N}"
    assert body == b"range not satisfiable\n"


def test_empty_file_range_416(server):
    status, h, _ = get(server, "/empty.txt", {"Range": "bytes=-1"})
    assert status == 416 and h["content-range"] == "bytes */0"


@pytest.mark.parametrize("spec", ["bytes=abc", "bytes=5-2", "bytes=-", "items=0-5", "bytes",
                                  "bytes=1-2-3", "bytes=+1-2", "bytes=0x1-2", ""])
def test_malformed_range_ignored(server, spec):
    status, h, body = get(server, "/f.bin", {"Range": spec})
    assert status == 200 and body == DATA and "content-range" not in h
    assert h["accept-ranges"] == "bytes"


def test_multiple_ranges_get_whole_file(server):
    status, h, body = get(server, "/f.bin", {"Range": "bytes=0-1,5-6"})
    assert status == 200 and body == DATA and "content-range" not in h


def test_if_range(server):
    etag, lm = validators(server)
    assert get(server, "/f.bin", {"Range": "bytes=0-1", "If-Range": etag})[0] == 206
    assert get(server, "/f.bin", {"Range": "bytes=0-1", "If-Range": lm})[0] == 206
    for stale in ('"other"', "W/" + etag, "Mon, 01 Jan 2001 00:00:00 GMT"):
        status, h, body = get(server, "/f.bin", {"Range": "bytes=0-1", "If-Range": stale})
        assert status == 200 and body == DATA, stale


def test_head_with_range(server):
    status, h, body = get(server, "/f.bin", {"Range": "bytes=2-5"}, method="HEAD")
    assert status == 206 and h["content-range"] == f"bytes 2-5/{N}"
    assert h["content-length"] == "4" and body == b""


def test_not_modified_wins_over_range(server):
    etag, _ = validators(server)
    status, _, body = get(server, "/f.bin", {"Range": "bytes=0-1", "If-None-Match": etag})
    assert status == 304 and body == b""


def test_big_range_and_keep_alive(server):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        for first, last in ((1, 2 * 1024 * 1024), (len(BIG) - 100, len(BIG) - 1), (0, 0)):
            conn.request("GET", "/big.bin", headers={"Range": f"bytes={first}-{last}"})
            r = conn.getresponse()
            assert r.status == 206 and r.read() == BIG[first:last + 1]
    finally:
        conn.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_range_and_resume(server, tmp_path):
    url = f"http://127.0.0.1:{server.port}/big.bin"
    out = tmp_path / "part"
    out.write_bytes(BIG[:12345])                         # an interrupted download
    subprocess.run(["curl", "-sf", "-C", "-", "-o", str(out), url], check=True, timeout=60)
    assert out.read_bytes() == BIG
    r = subprocess.run(["curl", "-sf", "-r", "100-199", url], capture_output=True,
                       check=True, timeout=60)
    assert r.stdout == BIG[100:200]


def _call(app, headers, extensions):
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/f.bin", "raw_path": b"/f.bin",
             "root_path": "", "query_string": b"", "client": None, "server": None,
             "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
             "extensions": extensions}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.zerocopysend":
            f = message["file"]
            sent.append((message["offset"], message["count"], os.pread(
                f.fileno(), message["count"], message["offset"])))
        else:
            sent.append(message)

    engine.run(asyncio.wait_for(app(scope, receive, send), 30))
    return sent


def test_range_uses_zerocopysend_offset_count(site):
    sent = _call(DefaultApp(static=site), {"range": "bytes=100-199"},
                 {"http.response.zerocopysend": {}, "http.response.pathsend": {}})
    assert sent[0]["status"] == 206
    assert sent[1] == (100, 100, DATA[100:200])


def test_range_without_extensions_reads_the_part(site):
    sent = _call(DefaultApp(static=site), {"range": "bytes=-10"}, {})
    assert sent[0]["status"] == 206
    assert b"".join(m["body"] for m in sent[1:]) == DATA[-10:]
    assert not sent[-1]["more_body"]


def test_if_range_date_must_match_exactly(site):
    mtime = os.stat(site / "f.bin").st_mtime
    later = email.utils.formatdate(mtime + 3600, usegmt=True)
    sent = _call(DefaultApp(static=site), {"range": "bytes=0-0", "if-range": later}, {})
    assert sent[0]["status"] == 200

"""The ASGI http.response.early_hint and http.response.trailers extensions, end to end:
`engine serve` in a subprocess, read by h11 over a raw socket and by curl."""
import json
import os
import shutil
import socket
import subprocess

import h11
import pytest
from serve_util import Served

HERE = os.path.dirname(__file__)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("ext")
    f = d / "file.txt"
    f.write_bytes(b"0123456789")
    s = Served("asgi_ext_app:app", "--host", "127.0.0.1", cwd=HERE,
               env={"TRAILER_FILE": str(f)})
    try:
        yield s
    finally:
        s.stop()


def h11_get(server, path, http_version=b"1.1"):
    """Events h11 parses for a GET of ``path`` (InformationalResponse, Response, Data...,
    EndOfMessage with its trailers)."""
    conn = h11.Connection(h11.CLIENT)
    sock = socket.create_connection((server.host, server.port), timeout=30)
    try:
        data = conn.send(h11.Request(method="GET", target=path,
                                     headers=[("Host", "x"), ("Connection", "close")]))
        data += conn.send(h11.EndOfMessage())
        if http_version == b"1.0":      # h11 only writes HTTP/1.1 requests; it reads any reply
            data = b"GET %s HTTP/1.0\r\nHost: x\r\n\r\n" % path.encode()
        sock.sendall(data)
        events = []
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
                continue
            events.append(ev)
            if isinstance(ev, (h11.EndOfMessage, h11.ConnectionClosed)):
                return events
    finally:
        sock.close()


def body_of(events):
    return b"".join(bytes(e.data) for e in events if isinstance(e, h11.Data))


def test_extensions_advertised(server):
    ev = h11_get(server, "/ext")
    names = json.loads(body_of(ev))
    assert {"http.response.early_hint", "http.response.trailers", "http.response.pathsend",
            "http.response.zerocopysend"} <= set(names)


def test_early_hint_before_final_response(server):
    ev = h11_get(server, "/hint")
    info = ev[0]
    assert isinstance(info, h11.InformationalResponse) and info.status_code == 103
    assert [v for k, v in info.headers if k == b"link"] == [
        b"</style.css>; rel=preload; as=style", b"</app.js>; rel=preload"]
    assert isinstance(ev[1], h11.Response) and ev[1].status_code == 200
    assert body_of(ev) == b"final"


def test_early_hint_not_sent_to_http10(server):
    ev = h11_get(server, "/hint", http_version=b"1.0")
    assert isinstance(ev[0], h11.Response) and ev[0].status_code == 200
    assert body_of(ev) == b"final"


def test_early_hint_after_start_is_an_error(server):
    ev = h11_get(server, "/hint-late")
    assert ev[0].status_code == 200
    assert b"must come before 'http.response.start'" in body_of(ev)


def test_early_hint_value_injection_refused(server):
    ev = h11_get(server, "/hint-bad")
    assert isinstance(ev[0], h11.Response)            # no 103 went out
    assert body_of(ev).startswith(b"ValueError: invalid byte 0x0d")


def test_trailers_after_last_chunk(server):
    ev = h11_get(server, "/trailers")
    resp = ev[0]
    hdrs = dict(resp.headers)
    assert hdrs[b"transfer-encoding"] == b"chunked"
    assert b"content-length" not in hdrs                # the app's Content-Length is dropped
    assert body_of(ev) == b"hello world"
    assert ev[-1].headers == [(b"x-checksum", b"abc"), (b"x-count", b"2")]


def test_trailers_http10_body_without_trailers(server):
    ev = h11_get(server, "/trailers", http_version=b"1.0")
    assert body_of(ev) == b"hello world"
    assert not ev[-1].headers


def test_trailers_after_zerocopysend(server):
    ev = h11_get(server, "/trailers-file")
    assert body_of(ev) == b"23456"
    assert ev[-1].headers == [(b"x-done", b"yes")]


@pytest.mark.parametrize("path, text", [
    ("/trailers-unannounced", b"did not announce trailers"),
    ("/trailers-early", b"before the body ended"),
])
def test_trailers_misuse_is_an_error(server, path, text):
    ev = h11_get(server, path)
    assert text in body_of(ev)
    assert isinstance(ev[-1], h11.EndOfMessage)       # the response still ended well


def test_body_after_trailers_body_is_an_error(server):
    ev = h11_get(server, "/body-after-trailers")
    assert body_of(ev) == b"x"
    assert ev[-1].headers == [(b"x-err", b"Unexpected ASGI message 'http.response.b")]


def test_trailer_injection_refused(server):
    ev = h11_get(server, "/trailers-bad")
    assert body_of(ev) == b"x"
    assert ev[-1].headers == [(b"x-result", b"ValueError")]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_sees_103_and_trailers(server):
    base = f"http://127.0.0.1:{server.port}"
    out = subprocess.run(["curl", "-s", "-i", base + "/hint"], capture_output=True,
                         timeout=30).stdout
    assert out.startswith(b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>")
    assert b"HTTP/1.1 200 OK" in out and out.endswith(b"final")
    raw = subprocess.run(["curl", "-s", "--raw", base + "/trailers"], capture_output=True,
                         timeout=30).stdout
    assert raw == b"6\r\nhello \r\n5\r\nworld\r\n0\r\nx-checksum: abc\r\nx-count: 2\r\n\r\n"


def test_early_hint_links_must_be_bytes(server):
    ev = h11_get(server, "/hint-type")
    assert isinstance(ev[0], h11.Response)            # no 103 went out
    lines = body_of(ev).decode().split("\n")
    assert lines[0].startswith("http.response.early_hint: 'links' must be an iterable of bytes")
    assert lines[1] == "http.response.early_hint: a link must be bytes, not str"
    assert lines[2].startswith("http.response.early_hint: 'links' must be an iterable")


def test_trailers_on_head_keep_the_connection(server):
    sock = socket.create_connection((server.host, server.port), timeout=30)
    try:
        sock.sendall(b"HEAD /trailers HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /ext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    finally:
        sock.close()
    head, rest = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK") and b"x-checksum: abc" not in data
    assert rest.startswith(b"HTTP/1.1 200 OK")         # nothing of the HEAD's body or trailers

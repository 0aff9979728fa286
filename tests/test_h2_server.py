"""ASGI over HTTP/2 end to end: `engine serve` (tests/h2_app.py) driven by real HTTP/2 clients --
curl (--http2-prior-knowledge, --http2 over TLS), nghttp, httpx (http2=True), h2load -- and by a
frame-level client built on the `h2` library where a test needs to see frames (flow control,
RST_STREAM, GOAWAY, interim responses). HTTP/1.1 on the same port, and --http 1|2."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
import trustme
from serve_util import WAIT, Served

HERE = os.path.dirname(os.path.abspath(__file__))
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _need(tool):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (Debian: apt-get install nghttp2-client curl)")


def _serve(*args, cwd=None, env=None):
    return Served("h2_app:app", "--app-dir", HERE, "--lifespan", "off", *args, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def srv():
    with _serve() as s:
        yield s


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, timeout=WAIT, check=False, **kw)


class H2Client:
    """A frame-level HTTP/2 client (the `h2` library) on a blocking socket with timeouts."""

    def __init__(self, host, port, *, window=None, sock=None, preface_sent=False):
        self.sock = sock or socket.create_connection((host, port), timeout=WAIT)
        self.sock.settimeout(WAIT)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.authority = f"{host}:{port}".encode()
        self.conn.initiate_connection()
        if window is not None:
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        if preface_sent:
            assert self.conn.data_to_send(len(PREFACE)) == PREFACE
        self.flush()
        self.events = []

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path, method="GET", body=None, headers=(), end=True):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(b":method", method.encode()), (b":scheme", b"http"),
                                     (b":authority", self.authority), (b":path", path.encode()),
                                     *headers],
                               end_stream=end and body is None)
        if body is not None:
            self.conn.send_data(sid, body, end_stream=end)
        self.flush()
        return sid

    def read_events(self, *, ack=True):
        """One socket read's events; [] at EOF. Received DATA is acknowledged (ack=True)."""
        data = self.sock.recv(65536)
        if not data:
            return None
        events = self.conn.receive_data(data)
        for ev in events:
            if ack and isinstance(ev, h2.events.DataReceived):
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        self.flush()
        self.events.extend(events)
        return events

    def until(self, pred, *, ack=True):
        """Read until pred(event) holds for one; returns it."""
        deadline = time.monotonic() + WAIT
        for ev in self.events:
            if pred(ev):
                return ev
        while time.monotonic() < deadline:
            try:
                events = self.read_events(ack=ack)
            except TimeoutError:
                raise AssertionError(f"nothing more came; events: {self.events}") from None
            if events is None:
                raise AssertionError(f"connection closed; events: {self.events}")
            for ev in events:
                if pred(ev):
                    return ev
        raise AssertionError(f"not seen; events: {self.events}")  # pragma: no cover

    def response(self, sid, *, ack=True):
        """(headers dict, body, trailers dict) of stream sid."""
        self.until(lambda e: isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset))
                   and e.stream_id == sid, ack=ack)
        headers, body, trailers = {}, b"", {}
        for ev in self.events:
            if getattr(ev, "stream_id", None) != sid:
                continue
            if isinstance(ev, h2.events.ResponseReceived):
                headers = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                body += ev.data
            elif isinstance(ev, h2.events.TrailersReceived):
                trailers = dict(ev.headers)
        return headers, body, trailers

    def close(self):
        self.sock.close()


def _wait_file(path):
    deadline = time.monotonic() + WAIT
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


# --- real clients -----------------------------------------------------------------------------

def test_curl_prior_knowledge_get_and_large_post(srv, tmp_path):
    _need("curl")
    r = _run(["curl", "-sS", "--http2-prior-knowledge", "-w", "\n%{http_version}",
              f"http://127.0.0.1:{srv.port}/echo?a=1&b=%20"])
    body, version = r.stdout.rsplit(b"\n", 1)
    assert r.returncode == 0 and version == b"2", r
    info = json.loads(body)
    assert info["http_version"] == "2" and info["method"] == "GET"
    assert info["path"] == "/echo" and info["query"] == "a=1&b=%20"
    assert info["headers"]["host"] == f"127.0.0.1:{srv.port}"        # from :authority
    assert "http.response.pathsend" in info["extensions"]
    payload = os.urandom(1024 * 1024 + 17)       # far more than the 65,535-byte stream window
    f = tmp_path / "payload"
    f.write_bytes(payload)
    r = _run(["curl", "-sS", "--http2-prior-knowledge", "--data-binary", f"@{f}",
              f"http://127.0.0.1:{srv.port}/echo"])
    info = json.loads(r.stdout)
    assert info["method"] == "POST" and info["len"] == len(payload)
    assert info["sha256"] == hashlib.sha256(payload).hexdigest()


def test_curl_http2_over_tls_by_alpn_and_http11_on_the_same_port(tmp_path):
    _need("curl")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "cert.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    with _serve("--ssl-certfile", str(tmp_path / "cert.pem")) as s:
        url = f"https://localhost:{s.port}/echo"
        for flag, version in (("--http2", "2"), ("--http1.1", "1.1")):
            r = _run(["curl", "-sS", flag, "--cacert", str(tmp_path / "ca.pem"), "--resolve",
                      f"localhost:{s.port}:127.0.0.1", "-w", "\n%{http_version}", url])
            body, got = r.stdout.rsplit(b"\n", 1)
            assert r.returncode == 0, r
            assert got.decode() == version                # curl's %{http_version}
            info = json.loads(body)
            assert info["http_version"] == version and info["scheme"] == "https"
            assert "tls" in info["extensions"]


def test_curl_upgrade_h2c_switches_to_http2(srv):
    # curl --http2 on cleartext sends `Upgrade: h2c` + HTTP2-Settings (RFC 7540 §3.2): the
    # server answers 101 and the request is answered on stream 1 over HTTP/2
    _need("curl")
    r = _run(["curl", "-sS", "--http2", "-v", "-w", "\n%{http_version}",
              f"http://127.0.0.1:{srv.port}/echo?via=upgrade"])
    body, version = r.stdout.rsplit(b"\n", 1)
    assert r.returncode == 0 and version == b"2", r
    assert b"101 Switching Protocols" in r.stderr
    info = json.loads(body)
    assert info["http_version"] == "2" and info["query"] == "via=upgrade"
    assert info["headers"]["host"] == f"127.0.0.1:{srv.port}"
    assert "http2-settings" not in info["headers"] and "upgrade" not in info["headers"]


def _http11_exchange(port, request):
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    try:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data
    finally:
        sock.close()


def test_upgrade_h2c_declined_with_a_body_bad_settings_or_http_1(srv):
    up = (b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
          b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n")
    # a request with a body stays HTTP/1.1 (its body would come over HTTP/1.1 for stream 1)
    data = _http11_exchange(srv.port, b"POST /echo HTTP/1.1\r\nHost: x\r\n" + up +
                            b"Content-Length: 3\r\nConnection: close\r\n\r\nabc")
    assert data.startswith(b"HTTP/1.1 200"), data
    assert json.loads(data.split(b"\r\n\r\n", 1)[1])["http_version"] == "1.1"
    # HTTP2-Settings that is not a SETTINGS payload: 400
    bad = up.replace(b"AAMAAABkAARAAAAAAAIAAAAA", b"AAMAAABkAAR")
    data = _http11_exchange(srv.port, b"GET /echo HTTP/1.1\r\nHost: x\r\n" + bad + b"\r\n")
    assert data.startswith(b"HTTP/1.1 400"), data
    with _serve("--http", "1") as s:
        data = _http11_exchange(s.port, b"GET /echo HTTP/1.1\r\nHost: x\r\n" + up +
                                b"Connection: close\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 200"), data
        assert json.loads(data.split(b"\r\n\r\n", 1)[1])["http_version"] == "1.1"


def test_nghttp_trailers_and_several_streams(srv):
    _need("nghttp")
    r = _run(["nghttp", "-v", f"http://127.0.0.1:{srv.port}/trailers"])
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert "payload" in out
    assert "x-checksum: abc" in out                      # the trailer field
    r = _run(["nghttp", "-n", "-s", "-m", "20", f"http://127.0.0.1:{srv.port}/stream?n=100000"])
    assert r.returncode == 0, r
    # nghttp -s prints one line per stream with its status
    assert r.stdout.decode().count(" 200 ") == 20, r.stdout.decode()


def test_httpx_http2_many_concurrent_streams_on_one_connection(srv):
    import httpx

    async def main():
        async with httpx.AsyncClient(http1=False, http2=True, base_url=f"http://127.0.0.1:{srv.port}",
                                     timeout=WAIT) as client:
            rs = await asyncio.gather(*(client.post(f"/echo?i={i}", content=b"x" * i * 100)
                                        for i in range(60)))
            return rs

    rs = asyncio.run(main())
    for i, r in enumerate(rs):
        assert r.status_code == 200 and r.http_version == "HTTP/2"
        info = r.json()
        assert info["query"] == f"i={i}" and info["len"] == i * 100


def test_h2load_smoke(srv):
    _need("h2load")
    r = _run(["h2load", "-n", "2000", "-c", "4", "-m", "10", f"http://127.0.0.1:{srv.port}/echo"])
    out = r.stdout.decode()
    assert r.returncode == 0, out
    assert "2000 succeeded, 0 failed, 0 errored" in out, out


def test_pathsend_1mib_file(srv, tmp_path):
    _need("curl")
    data = os.urandom(1024 * 1024)
    f = tmp_path / "blob.bin"
    f.write_bytes(data)
    out = tmp_path / "got.bin"
    r = _run(["curl", "-sS", "--http2-prior-knowledge", "-o", str(out), "-D", "-",
              f"http://127.0.0.1:{srv.port}/file?path={f}"])
    assert r.returncode == 0, r
    assert b"content-length: 1048576" in r.stdout.lower()
    assert out.read_bytes() == data


@pytest.mark.parametrize("sendfile", ["1", "0"])
def test_pathsend_frames_with_a_slow_reader_and_large_frames(tmp_path, sendfile):
    # ENGINE_H2_SENDFILE=1 (the default): each DATA frame's header goes with MSG_MORE and its
    # payload by sendfile(2); a client that reads late (its socket buffer small) makes sendfile
    # stop inside a frame, and the rest of that frame must follow in order. =0: pread + writev.
    # Large frames (the client allows 1 MiB) and a stream answered meanwhile check the framing
    # as the h2 library parses it.
    data = os.urandom(4 * 1024 * 1024 + 123)
    f = tmp_path / "blob.bin"
    f.write_bytes(data)
    with _serve(env={"ENGINE_H2_SENDFILE": sendfile}) as s:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.settimeout(WAIT)
        sock.connect(("127.0.0.1", s.port))
        c = H2Client("127.0.0.1", s.port, sock=sock)
        try:
            c.conn.update_settings({h2.settings.SettingCodes.MAX_FRAME_SIZE: 1 << 20,
                                    h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
            c.conn.increment_flow_control_window(2**31 - 1 - 65535)
            c.flush()
            c.until(lambda e: isinstance(e, h2.events.SettingsAcknowledged))
            sid = c.request(f"/file?path={f}")
            other = c.request("/echo", method="POST", body=b"meanwhile")
            time.sleep(0.3)                   # the server's socket buffer fills meanwhile
            headers, body, _ = c.response(sid)
            assert headers[b":status"] == b"200"
            assert headers[b"content-length"] == str(len(data)).encode()
            assert body == data
            sizes = [len(e.data) for e in c.events
                     if isinstance(e, h2.events.DataReceived) and e.stream_id == sid]
            assert max(sizes) > 16384         # the client's larger frame size was used
            assert json.loads(c.response(other)[1])["len"] == len(b"meanwhile")
            sid = c.request(f"/file?path={f}")     # the connection is still in step
            assert c.response(sid)[1] == data
        finally:
            c.close()
        _need("curl")
        out = tmp_path / "got.bin"
        r = _run(["curl", "-sS", "--http2-prior-knowledge", "-o", str(out),
                  f"http://127.0.0.1:{s.port}/file?path={f}"])
        assert r.returncode == 0, r
        assert out.read_bytes() == data


# --- frames -----------------------------------------------------------------------------------

def test_response_larger_than_the_client_window_arrives_whole(srv):
    c = H2Client("127.0.0.1", srv.port, window=1000)
    try:
        sid = c.request("/stream?n=300000")
        headers, body, _ = c.response(sid)
        assert headers[b":status"] == b"200"
        assert body == (b"0123456789" * 30000)
    finally:
        c.close()


def test_request_body_is_held_by_flow_control_until_the_app_reads(srv, tmp_path):
    flag = tmp_path / "go"
    c = H2Client("127.0.0.1", srv.port)
    try:
        sid = c.request(f"/hold?flag={flag}", "POST", end=False)
        total = 300000

        def send_window_full(sent):
            while sent < total:
                room = min(c.conn.local_flow_control_window(sid),
                           c.conn.max_outbound_frame_size, total - sent)
                if room == 0:
                    break
                c.conn.send_data(sid, b"b" * room)
                sent += room
            c.flush()
            return sent

        # send what the windows allow; the app reads nothing yet, so no WINDOW_UPDATE comes
        # for the stream and the client is stopped at the stream's initial window
        sent = send_window_full(0)
        assert 0 < sent < total
        c.sock.settimeout(0.3)
        try:
            c.read_events()                      # the server's SETTINGS/acks, nothing for sid
        except TimeoutError:
            pass
        assert c.conn.local_flow_control_window(sid) == 0
        c.sock.settimeout(WAIT)
        flag.touch()                             # the app reads: the window reopens
        while sent < total:
            c.until(lambda e: isinstance(e, h2.events.WindowUpdated)
                    and e.stream_id in (0, sid) and c.conn.local_flow_control_window(sid) > 0)
            c.events.clear()
            sent = send_window_full(sent)
        c.conn.end_stream(sid)
        c.flush()
        headers, body, _ = c.response(sid)
        assert headers[b":status"] == b"200" and body == str(total).encode()
    finally:
        c.close()


def test_rst_stream_gives_the_app_http_disconnect(srv, tmp_path):
    flag = tmp_path / "disconnected"
    c = H2Client("127.0.0.1", srv.port)
    try:
        sid = c.request(f"/wait-disconnect?flag={flag}", "POST", end=False)
        c.conn.send_data(sid, b"some")
        c.flush()
        c.conn.reset_stream(sid, 0x8)            # CANCEL
        c.flush()
        _wait_file(flag)
        # the connection still serves
        sid2 = c.request("/echo")
        headers, _, _ = c.response(sid2)
        assert headers[b":status"] == b"200"
    finally:
        c.close()


def test_trailers_early_hints_and_100_continue(srv):
    c = H2Client("127.0.0.1", srv.port)
    try:
        sid = c.request("/trailers")
        headers, body, trailers = c.response(sid)
        assert body == b"payload" and trailers == {b"x-checksum": b"abc"}
        sid = c.request("/hint")
        headers, body, _ = c.response(sid)
        interim = [ev for ev in c.events if isinstance(ev, h2.events.InformationalResponseReceived)
                   and ev.stream_id == sid]
        assert [dict(ev.headers)[b":status"] for ev in interim] == [b"103"]
        assert dict(interim[0].headers)[b"link"] == b"</style.css>; rel=preload; as=style"
        assert headers[b":status"] == b"200" and body == b"hinted"
        # expect: 100-continue: a 100 interim response once the app waits for the body
        sid = c.request("/echo", "POST", end=False, headers=[(b"expect", b"100-continue")])
        ev = c.until(lambda e: isinstance(e, h2.events.InformationalResponseReceived)
                     and e.stream_id == sid)
        assert dict(ev.headers)[b":status"] == b"100"
        c.conn.send_data(sid, b"after-continue", end_stream=True)
        c.flush()
        headers, body, _ = c.response(sid)
        assert json.loads(body)["len"] == len(b"after-continue")
    finally:
        c.close()


def test_app_errors_become_500_or_rst_stream(srv):
    c = H2Client("127.0.0.1", srv.port)
    try:
        sid = c.request("/error")
        headers, body, _ = c.response(sid)
        assert headers[b":status"] == b"500" and body == b"Internal Server Error\n"
        sid = c.request("/error-late")
        ev = c.until(lambda e: isinstance(e, h2.events.StreamReset) and e.stream_id == sid)
        assert ev.error_code == 0x2                 # INTERNAL_ERROR: the response had started
        sid = c.request("/echo")                    # the connection is still good
        assert c.response(sid)[0][b":status"] == b"200"
    finally:
        c.close()


def test_goaway_on_shutdown_lets_the_request_in_flight_finish(tmp_path):
    # nghttp (nghttp2) stays on the connection after a graceful GOAWAY for the streams it
    # covers; -v prints the frames it receives
    _need("nghttp")
    flag, started = tmp_path / "finish", tmp_path / "started"
    with _serve() as s:
        client = subprocess.Popen(
            ["nghttp", "-v", f"http://127.0.0.1:{s.port}/slow?flag={flag}&started={started}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            _wait_file(started)                      # the app has the request
            s.proc.send_signal(15)                   # SIGTERM: graceful drain
            s.wait_for(r"SIGTERM, draining", stream="err")
            time.sleep(0.2)                          # (the GOAWAY is on its way; not required)
            flag.touch()                             # the app answers now
            out, _ = client.communicate(timeout=WAIT)
        finally:
            if client.poll() is None:
                client.kill()
        text = out.decode()
        assert client.returncode == 0, text
        goaway = re.search(r"recv GOAWAY frame .*\n\s*\(last_stream_id=13, "
                           r"error_code=NO_ERROR", text)
        assert goaway, text
        # the response (its DATA, "done") came after the GOAWAY, on the same connection
        data = text.find("recv DATA frame", goaway.end())
        assert data > 0 and "done" in text[goaway.end():], text
        assert s.wait() == 0


def test_preface_in_pieces_and_http11_byte_by_byte(srv):
    # the preface split into 3-byte writes is still HTTP/2
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for i in range(0, len(PREFACE), 3):
            sock.sendall(PREFACE[i:i + 3])
            time.sleep(0.005)
        c = H2Client("127.0.0.1", srv.port, sock=sock, preface_sent=True)   # SETTINGS only
        sid = c.request("/echo")
        headers, body, _ = c.response(sid)
        assert json.loads(body)["http_version"] == "2"
    finally:
        sock.close()
    # an HTTP/1.1 request that starts like the preface ("P") sent byte by byte is HTTP/1.1
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        req = b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
        for b in req:
            sock.sendall(bytes([b]))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.1 200")
        info = json.loads(data.split(b"\r\n\r\n", 1)[1])
        assert info["http_version"] == "1.1" and info["len"] == 3
    finally:
        sock.close()


def test_http11_clients_are_unaffected(srv):
    status, headers, body = srv.request("POST", "/echo", body=b"hello")
    assert status == 200 and json.loads(body)["http_version"] == "1.1"
    assert json.loads(body)["len"] == 5


def test_http_1_refuses_the_preface():
    with _serve("--http", "1") as s:
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=WAIT)
        try:
            sock.sendall(PREFACE)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            # an HTTP/1.1 error answer, not a SETTINGS frame
            assert data.startswith(b"HTTP/1.1 4") or data.startswith(b"HTTP/1.1 5"), data
        finally:
            sock.close()
        status, _, body = s.request("GET", "/echo")
        assert status == 200


def test_http_2_only_answers_http11_with_505_and_offers_only_h2_on_tls(tmp_path):
    with _serve("--http", "2") as s:
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=WAIT)
        try:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            assert data.startswith(b"HTTP/1.1 505 ")
            assert b"HTTP/2 only" in data
        finally:
            sock.close()
        c = H2Client("127.0.0.1", s.port)
        try:
            sid = c.request("/echo")
            assert json.loads(c.response(sid)[1])["http_version"] == "2"
        finally:
            c.close()
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "cert.pem"))
    with _serve("--http", "2", "--ssl-certfile", str(tmp_path / "cert.pem")) as s:
        for alpn, speaks_h2 in ((["http/1.1"], False), (["h2", "http/1.1"], True)):
            ctx = ssl.create_default_context()
            ca.configure_trust(ctx)
            ctx.set_alpn_protocols(alpn)
            raw = socket.create_connection(("127.0.0.1", s.port), timeout=WAIT)
            try:
                try:
                    tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
                except (ssl.SSLError, ConnectionResetError):
                    assert not speaks_h2                  # no protocol in common: refused
                    continue
                if not speaks_h2:
                    tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert tls.recv(100) == b""           # closed without an HTTP/1.1 answer
                    continue
                assert tls.selected_alpn_protocol() == "h2"
                c = H2Client("127.0.0.1", s.port, sock=tls)
                sid = c.request("/echo")
                assert json.loads(c.response(sid)[1])["http_version"] == "2"
            finally:
                raw.close()


def test_access_log_counts_each_stream():
    with _serve("--access-log") as s:
        c = H2Client("127.0.0.1", s.port)
        try:
            sids = [c.request(f"/echo?n={i}") for i in range(3)]
            for sid in sids:
                c.response(sid)
        finally:
            c.close()
        for i in range(3):
            s.wait_for(rf'"GET /echo\?n={i} HTTP/2" 200', stream="err")


def test_idle_connection_gets_goaway_then_closes():
    with _serve("--timeout-keep-alive", "0.3") as s:
        c = H2Client("127.0.0.1", s.port)
        try:
            sid = c.request("/echo")
            c.response(sid)
            ev = c.until(lambda e: isinstance(e, h2.events.ConnectionTerminated))
            assert ev.error_code == 0 and ev.last_stream_id == sid
            assert c.sock.recv(100) == b""
        finally:
            c.close()


def test_limit_concurrency_counts_streams(tmp_path):
    flag = tmp_path / "go"
    with _serve("--limit-concurrency", "2") as s:
        c = H2Client("127.0.0.1", s.port)
        try:
            held = [c.request(f"/slow?flag={flag}") for _ in range(2)]
            sid = c.request("/echo")                 # a third stream at once: over the limit
            headers, body, _ = c.response(sid)
            assert headers[b":status"] == b"503" and body == b"Service Unavailable\n"
            flag.touch()
            for h in held:
                headers, body, _ = c.response(h)
                assert headers[b":status"] == b"200" and body == b"done"
            sid = c.request("/echo")                 # under the limit again
            assert c.response(sid)[0][b":status"] == b"200"
        finally:
            c.close()


@pytest.mark.parametrize("value", ["3", "h2", ""])
def test_http_setting_is_validated(value):
    from engine.serve.config import Config, ConfigError

    with pytest.raises(ConfigError, match="http must be one of"):
        Config(http=value)
    r = _run([os.path.join(os.path.dirname(sys.executable), "engine"), "serve", "--http",
              value])
    assert r.returncode == 2 and b"--http" in r.stderr


def test_a_client_that_never_opens_its_window_gets_the_stream_reset():
    # the stall timeout is --timeout-request-body: no window for that long -> RST_STREAM CANCEL
    with _serve("--timeout-request-body", "0.3") as s:
        c = H2Client("127.0.0.1", s.port, window=0)
        try:
            c.until(lambda e: isinstance(e, h2.events.SettingsAcknowledged))
            sid = c.request("/stream?n=100000")
            ev = c.until(lambda e: isinstance(e, h2.events.StreamReset) and e.stream_id == sid,
                         ack=False)
            assert ev.error_code == 0x8                  # CANCEL
            assert not [e for e in c.events if isinstance(e, h2.events.DataReceived)]
            # the server's own answers wait for the window too (a 500 here), then the same
            sid = c.request("/error")
            ev = c.until(lambda e: isinstance(e, h2.events.StreamReset) and e.stream_id == sid,
                         ack=False)
            assert ev.error_code == 0x8
            head = [e for e in c.events if isinstance(e, h2.events.ResponseReceived)
                    and e.stream_id == sid]
            assert dict(head[0].headers)[b":status"] == b"500"
            # the connection serves on (a small response fits a window the client opens)
            c.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 65535})
            c.flush()
            sid = c.request("/echo")
            assert c.response(sid)[0][b":status"] == b"200"
        finally:
            c.close()


def test_metrics_count_each_stream():
    from test_metrics import metrics_port, scrape, until

    with _serve("--metrics", "127.0.0.1:0") as s:
        port = metrics_port(s)
        c = H2Client("127.0.0.1", s.port)
        try:
            sids = [c.request("/echo") for _ in range(5)] + [c.request("/nope")]
            sids.append(c.request("/error"))
            bodies = [c.response(sid)[1] for sid in sids]
            assert until(lambda: scrape(port)["engine_connections_open"] == 1, "open")
        finally:
            c.close()
        m = until(lambda: (lambda m: m if m["engine_connections_open"] == 0 else None)(
            scrape(port)), "connection closed")
        assert m['engine_http_responses_total{status_class="2xx"}'] == 5
        assert m['engine_http_responses_total{status_class="4xx"}'] == 1
        assert m['engine_http_responses_total{status_class="5xx"}'] == 1
        assert m["engine_http_request_duration_seconds_count"] == 7
        assert m["engine_connections_total"] == 1
        assert m["engine_response_body_bytes_total"] == sum(len(b) for b in bodies)


@pytest.mark.parametrize("loop", ["asyncio"])
def test_http2_on_the_asyncio_loop(loop, tmp_path):
    # the same protocol on asyncio's own loop (its transports: no gathered writes)
    data = os.urandom(3 * 1024 * 1024 + 5)
    f = tmp_path / "blob.bin"
    f.write_bytes(data)
    with _serve("--loop", loop) as s:
        c = H2Client("127.0.0.1", s.port, window=1000)
        try:
            sid = c.request(f"/file?path={f}")
            headers, body, _ = c.response(sid)
            assert headers[b":status"] == b"200" and body == data
            sid = c.request("/echo", "POST", body=None, end=False)
            sent = 0
            while sent < len(data):
                room = min(c.conn.local_flow_control_window(sid),
                           c.conn.max_outbound_frame_size, len(data) - sent)
                if room == 0:
                    c.until(lambda e: isinstance(e, h2.events.WindowUpdated))
                    c.events.clear()
                    continue
                c.conn.send_data(sid, data[sent:sent + room])
                sent += room
                c.flush()
            c.conn.end_stream(sid)
            c.flush()
            info = json.loads(c.response(sid)[1])
            assert info["len"] == len(data)
            assert info["sha256"] == hashlib.sha256(data).hexdigest()
        finally:
            c.close()


def test_connect_is_answered_501(srv):
    c = H2Client("127.0.0.1", srv.port)
    try:
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(b":method", b"CONNECT"), (b":authority", b"example.com:443")],
                            end_stream=True)
        c.flush()
        headers, body, _ = c.response(sid)
        assert headers[b":status"] == b"501" and body == b"Not Implemented\n"
        sid = c.request("/echo")                     # and the connection serves on
        assert c.response(sid)[0][b":status"] == b"200"
    finally:
        c.close()


# --- header lists above SETTINGS_MAX_HEADER_LIST_SIZE (65536): 431, the connection goes on -----

def test_oversized_header_list_is_answered_431_and_the_connection_goes_on(srv):
    c = H2Client("127.0.0.1", srv.port)
    try:
        # 70 KB of fields (above 65536, below the hard limit 262144); x-tag comes after the
        # field that passes the limit and the client's encoder indexes it
        sid = c.request("/echo", headers=[(b"x-big", b"a" * 70000), (b"x-tag", b"after")])
        headers, body, _ = c.response(sid)
        assert headers[b":status"] == b"431" and body == b"header section too large\n"
        # the next request refers to x-tag by its dynamic-table index: the server's HPACK
        # table must have taken the oversized block's entries to decode it
        sid = c.request("/echo", headers=[(b"x-tag", b"after")])
        headers, body, _ = c.response(sid)
        assert headers[b":status"] == b"200"
        assert json.loads(body)["headers"]["x-tag"] == "after"
        # a request with a body still to come: 431, then the rest refused with NO_ERROR
        sid = c.request("/echo", "POST", body=b"x" * 1000, end=False,
                        headers=[(b"x-big", b"b" * 70000)])
        headers, body, _ = c.response(sid)
        assert headers[b":status"] == b"431"
        c.until(lambda e: isinstance(e, h2.events.StreamReset) and e.stream_id == sid
                and e.error_code == 0)
        sid = c.request("/echo", "POST", body=b"y" * 10)
        assert json.loads(c.response(sid)[1])["len"] == 10
    finally:
        c.close()


def test_header_list_past_the_hard_limit_ends_the_connection(srv):
    c = H2Client("127.0.0.1", srv.port)
    try:
        # 100 x a 3 KB field: one literal, then 99 one-byte references (a tiny block decoding
        # to 300 KB, past the hard limit): GOAWAY ENHANCE_YOUR_CALM
        c.request("/echo", headers=[(b"x-rep", b"r" * 3000)] * 100)
        ev = c.until(lambda e: isinstance(e, h2.events.ConnectionTerminated))
        assert ev.error_code == 0xB
    finally:
        c.close()


def test_curl_many_header_fields_get_431(srv, tmp_path):
    """curl (libcurl + nghttp2) with 2000 small fields: 80,000 bytes by RFC 9113 §6.5.2 (32
    per field), above 65536, while nghttp2's own bound on what it sends (64 KiB of header
    block, counted without the 32) lets it through. The answer is a 431 response, not a
    stream or connection error. (Connection reuse is shown with the h2 client above: curl
    7.88's --http2-prior-knowledge fails to reuse a connection, curl issue #10634.)"""
    _need("curl")
    hdrs = tmp_path / "headers.txt"
    hdrs.write_text("".join(f"x-f{i}: v\n" for i in range(2000)))
    url = f"http://127.0.0.1:{srv.port}/echo"
    r = _run(["curl", "-sS", "--http2-prior-knowledge", "-w", "\n%{http_code} %{http_version}",
              "-H", f"@{hdrs}", url])
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == "header section too large\n\n431 2", r.stdout
    r = _run(["curl", "-sS", "--http2-prior-knowledge", "-w", "\n%{http_code}", "-H",
              "x-f: v", url])
    assert r.stdout.decode().endswith("\n200"), r.stdout


def test_metrics_count_the_431():
    from test_metrics import metrics_port, scrape, until

    with _serve("--metrics", "127.0.0.1:0", "--access-log") as s:
        port = metrics_port(s)
        c = H2Client("127.0.0.1", s.port)
        try:
            sid = c.request("/echo", headers=[(b"x-big", b"a" * 70000)])
            assert c.response(sid)[0][b":status"] == b"431"
            sid = c.request("/echo")
            assert c.response(sid)[0][b":status"] == b"200"
        finally:
            c.close()
        m = until(lambda: (lambda m: m if m["engine_connections_open"] == 0 else None)(
            scrape(port)), "connection closed")
        assert m['engine_http_responses_total{status_class="4xx"}'] == 1
        assert m['engine_http_responses_total{status_class="2xx"}'] == 1
        # the 431 is the server's own answer: counted, not timed, not in the access log (as
        # HTTP/1.1's 431 for an oversized head)
        assert m["engine_http_request_duration_seconds_count"] == 1
        s.wait_for(r'"GET /echo HTTP/2" 200', stream="err")

"""engine serve's TLS settings end to end: client certificates (mTLS) checked against
--ssl-ca-certs per --ssl-cert-reqs, --ssl-ciphers, and the certificate reloaded on SIGHUP (in
one process, and by the rolling restart of --workers)."""
from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import time

import pytest
import trustme
from serve_util import ENGINE, WAIT, Served

APP = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    tls = scope["extensions"].get("tls") or {}
    body = {"client_cert_name": tls.get("client_cert_name"),
            "client_cert_chain": len(tls.get("client_cert_chain") or [])}
    data = __import__("json").dumps(body).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": data})
'''


@pytest.fixture()
def pki(tmp_path):
    """A CA, the server's certificate for 127.0.0.1 and a client certificate, as files."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    client = ca.issue_cert("client@example.com", common_name="client one")
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "cert.pem",
             "key": tmp_path / "key.pem", "client": tmp_path / "client.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    client.private_key_and_cert_chain_pem.write_to_path(str(files["client"]))
    (tmp_path / "tlsapp.py").write_text(APP)
    return ca, files, tmp_path


def _client_context(ca, cert_file=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if cert_file is not None:
        ctx.load_cert_chain(str(cert_file))
    return ctx


def _get(srv: Served, ctx: ssl.SSLContext) -> tuple[int, dict, dict]:
    """GET / over TLS: (status, JSON body, the server certificate's subject)."""
    with ctx.wrap_socket(srv.connect(), server_hostname="127.0.0.1") as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        data = b""
        peer = tls.getpeercert()
        while chunk := tls.recv(65536):
            data += chunk
    if not data:
        raise ConnectionResetError("closed without a response")
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, json.loads(body), peer


def _serve(files, tmp_path, *extra):
    return Served("tlsapp:app", "--app-dir", str(tmp_path), "--ssl-certfile", str(files["cert"]),
                  "--ssl-keyfile", str(files["key"]), *extra)


def test_mtls_required_accepts_a_client_certificate_and_refuses_none(pki):
    ca, files, tmp_path = pki
    with _serve(files, tmp_path, "--ssl-ca-certs", str(files["ca"]),
                "--ssl-cert-reqs", "required") as srv:
        status, body, _ = _get(srv, _client_context(ca, files["client"]))
        assert status == 200
        assert body["client_cert_chain"] >= 1
        assert "client one" in body["client_cert_name"]
        # no certificate: the server refuses the handshake (TLS 1.3 reports it on first read)
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            _get(srv, _client_context(ca))
        # a certificate from another CA does not verify either
        other = trustme.CA().issue_cert("intruder@example.com")
        other.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "other.pem"))
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            _get(srv, _client_context(ca, tmp_path / "other.pem"))
        # the server goes on serving verified clients after the refusals
        assert _get(srv, _client_context(ca, files["client"]))[0] == 200
        assert srv.stop() == 0


def test_mtls_optional_takes_clients_with_and_without_certificates(pki):
    ca, files, tmp_path = pki
    with _serve(files, tmp_path, "--ssl-ca-certs", str(files["ca"]),
                "--ssl-cert-reqs", "1") as srv:
        status, body, _ = _get(srv, _client_context(ca))
        assert (status, body["client_cert_name"], body["client_cert_chain"]) == (200, None, 0)
        status, body, _ = _get(srv, _client_context(ca, files["client"]))
        assert status == 200 and "client one" in body["client_cert_name"]
        assert srv.stop() == 0


@pytest.mark.parametrize("args, message", [
    (["--ssl-cert-reqs", "required"], "needs ssl_ca_certs"),
    (["--ssl-cert-reqs", "always"], "ssl_cert_reqs must be one of"),
    (["--ssl-ca-certs", "missing.pem", "--ssl-cert-reqs", "required"],
     "cannot load the CA certificates"),
    (["--ssl-ciphers", "NO-SUCH-CIPHER"], "ssl_ciphers 'NO-SUCH-CIPHER'"),
])
def test_bad_tls_settings_are_startup_errors(pki, args, message):
    _, files, tmp_path = pki
    proc = subprocess.run(
        [ENGINE, "serve", "tlsapp:app", "--app-dir", str(tmp_path), "--port", "0",
         "--ssl-certfile", str(files["cert"]), "--ssl-keyfile", str(files["key"]), *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=WAIT)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ca_certs_without_a_certificate_is_an_error(tmp_path):
    proc = subprocess.run([ENGINE, "serve", "--port", "0", "--ssl-ca-certs", "ca.pem"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=WAIT)
    assert proc.returncode != 0 and "ssl_ca_certs needs ssl_certfile" in proc.stderr


def test_ciphers_restrict_tls12(pki):
    ca, files, tmp_path = pki
    with _serve(files, tmp_path, "--ssl-ciphers", "ECDHE-RSA-AES128-GCM-SHA256:"
                "ECDHE-ECDSA-AES128-GCM-SHA256") as srv:
        ctx = _client_context(ca)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with ctx.wrap_socket(srv.connect(), server_hostname="127.0.0.1") as tls:
            assert tls.cipher()[0] in ("ECDHE-RSA-AES128-GCM-SHA256",
                                       "ECDHE-ECDSA-AES128-GCM-SHA256")
        ctx.set_ciphers("AES256-SHA256")                # none in common with the server
        with pytest.raises(ssl.SSLError):
            ctx.wrap_socket(srv.connect(), server_hostname="127.0.0.1").close()
        assert srv.stop() == 0


def _wait_lines(srv: Served, pattern: str, count: int, start: int) -> None:
    """Until ``count`` lines of stderr from line ``start`` on match ``pattern``."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + WAIT
    while sum(1 for line in srv.err[start:] if line and rx.search(line)) < count:
        assert srv.proc.poll() is None and time.monotonic() < deadline, srv.text("err")
        time.sleep(0.05)


def _renew(ca, files) -> None:
    """Replace the server's certificate files with a new certificate (as a renewal does)."""
    new = ca.issue_cert("127.0.0.1", common_name="renewed")
    for key, blob in (("cert", new.cert_chain_pems[0]), ("key", new.private_key_pem)):
        tmp = str(files[key]) + ".new"
        blob.write_to_path(tmp)
        os.replace(tmp, files[key])


def _subject_cn(peer: dict) -> str | None:
    for rdn in peer.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return None


@pytest.mark.parametrize("workers", [None, "2"])
def test_sighup_reloads_the_certificate(pki, workers):
    ca, files, tmp_path = pki
    extra = ["--workers", workers] if workers else []
    with _serve(files, tmp_path, *extra) as srv:
        ctx = _client_context(ca)
        assert _subject_cn(_get(srv, ctx)[2]) is None          # trustme's first: no CN
        # a broken renewal is logged and the old certificate kept (one process)
        if workers is None:
            original = files["cert"].read_bytes()
            files["cert"].write_text("not a certificate")
            srv.proc.send_signal(signal.SIGHUP)
            srv.wait_for("TLS files changed but cannot be loaded", stream="err")
            assert _get(srv, ctx)[0] == 200
            files["cert"].write_bytes(original)
        _renew(ca, files)
        start = len(srv.err)
        srv.proc.send_signal(signal.SIGHUP)
        if workers is None:
            srv.wait_for("TLS certificate reloaded", stream="err", start=start)
            assert _subject_cn(_get(srv, ctx)[2]) == "renewed"
        else:
            # the replaced workers serve the renewed certificate; wait until both slots did
            _wait_lines(srv, r"supervisor: old worker \d+ exited", 2, start)
            assert all(_subject_cn(_get(srv, ctx)[2]) == "renewed" for _ in range(8))
        assert srv.stop() == 0

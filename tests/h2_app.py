"""The ASGI app tests/test_h2_server*.py serve over HTTP/2 (`engine serve h2_app:app`).

Routes (GET unless said):
  /echo           reads the whole body; answers JSON: the scope's fields, the body's length and
                  sha256
  /stream?n=N     N bytes (b"0123456789" repeated) in 64 KiB body messages
  /trailers       body b"payload" then the trailer x-checksum: abc (http.response.trailers)
  /file?path=P    the file P by http.response.pathsend
  /hold?flag=F    takes no body until the file F exists, then reads it all; answers its length
  /wait-disconnect?flag=F   receive() until http.disconnect, then creates the file F
  /slow?flag=F&started=S   creates the file S (if given), answers "done" once F exists
  /error          raises before the response starts
  /error-late     starts the response, sends a body part, then raises
  /hint           103 Early Hints (a Link), then 200
"""
import asyncio
import hashlib
import json
import os
from urllib.parse import parse_qs


async def _body(receive):
    chunks = []
    while True:
        m = await receive()
        if m["type"] == "http.disconnect":
            raise ConnectionError("client went away")
        chunks.append(m.get("body", b""))
        if not m.get("more_body"):
            return b"".join(chunks)


async def _until(path):
    while not os.path.exists(path):
        await asyncio.sleep(0.01)


async def _text(send, status, body, headers=()):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), *headers]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    q = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    if path == "/echo":
        body = await _body(receive)
        headers = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode(), value.decode())
        await _text(send, 200, json.dumps({
            "http_version": scope["http_version"], "method": scope["method"],
            "scheme": scope["scheme"], "path": scope["path"],
            "raw_path": scope["raw_path"].decode(), "query": scope["query_string"].decode(),
            "headers": headers, "len": len(body), "sha256": hashlib.sha256(body).hexdigest(),
            "extensions": sorted(scope.get("extensions", {})),
        }).encode(), [(b"content-type", b"application/json")])
    elif path == "/stream":
        n = int(q["n"])
        data = b"0123456789" * (n // 10 + 1)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(0, n, 65536):
            await send({"type": "http.response.body", "body": data[i:min(i + 65536, n)],
                        "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/trailers":
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"trailer", b"x-checksum")]})
        await send({"type": "http.response.body", "body": b"payload"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]})
    elif path == "/file":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": q["path"]})
    elif path == "/hold":
        await _until(q["flag"])
        body = await _body(receive)
        await _text(send, 200, str(len(body)).encode())
    elif path == "/wait-disconnect":
        while (await receive())["type"] != "http.disconnect":
            pass
        open(q["flag"], "w").close()
    elif path == "/slow":
        if "started" in q:
            open(q["started"], "w").close()
        await _until(q["flag"])
        await _text(send, 200, b"done")
    elif path == "/error":
        raise RuntimeError("boom (test)")
    elif path == "/error-late":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("late boom (test)")
    elif path == "/hint":
        await send({"type": "http.response.early_hint",
                    "links": [b"</style.css>; rel=preload; as=style"]})
        await _text(send, 200, b"hinted")
    else:
        await _text(send, 404, b"not found")

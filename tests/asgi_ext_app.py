"""The ASGI app tests/test_asgi_extensions.py serves with `engine serve asgi_ext_app:app`: one
path per case of the early_hint and trailers extensions (errors are sent back in the body)."""


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    p = scope["path"]
    if p == "/ext":
        import json
        body = json.dumps(sorted(scope["extensions"])).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
    elif p == "/hint":
        await send({"type": "http.response.early_hint",
                    "links": [b"</style.css>; rel=preload; as=style", b"</app.js>; rel=preload"]})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"final"})
    elif p == "/hint-late":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await send({"type": "http.response.early_hint", "links": [b"</x>"]})
            msg = b"no error"
        except RuntimeError as e:
            msg = str(e).encode()
        await send({"type": "http.response.body", "body": msg})
    elif p == "/hint-bad":
        try:
            await send({"type": "http.response.early_hint", "links": [b"</x>\r\nset-cookie: a=b"]})
            msg = b"no error"
        except ValueError as e:
            msg = b"ValueError: " + str(e).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": msg})
    elif p == "/trailers":
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"trailer", b"x-checksum, x-count"),
                                (b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"hello ", "more_body": True})
        await send({"type": "http.response.body", "body": b"world"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")],
                    "more_trailers": True})
        await send({"type": "http.response.trailers", "headers": [(b"X-Count", b"2")],
                    "more_trailers": False})
    elif p == "/trailers-unannounced":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        try:
            await send({"type": "http.response.trailers", "headers": [(b"a", b"b")]})
            msg = b"no error"
        except RuntimeError as e:
            msg = str(e).encode()
        await send({"type": "http.response.body", "body": msg})
    elif p == "/trailers-early":
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        try:
            await send({"type": "http.response.trailers", "headers": [(b"a", b"b")]})
            msg = b"no error"
        except RuntimeError as e:
            msg = str(e).encode()
        await send({"type": "http.response.body", "body": msg})
        await send({"type": "http.response.trailers", "headers": []})
    elif p == "/body-after-trailers":
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"x"})
        try:
            await send({"type": "http.response.body", "body": b"more"})
            msg = b"no error"
        except RuntimeError as e:
            msg = str(e).encode()
        await send({"type": "http.response.trailers", "headers": [(b"x-err", msg[:40])]})
    elif p == "/trailers-bad":
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"x"})
        try:
            await send({"type": "http.response.trailers",
                        "headers": [(b"x-a", b"1\r\nx-evil: 1")]})
            msg = b"no error"
        except ValueError:
            msg = b"ValueError"
        await send({"type": "http.response.trailers", "headers": [(b"x-result", msg)]})
    elif p == "/trailers-file":
        import os
        with open(os.environ["TRAILER_FILE"], "rb") as f:
            await send({"type": "http.response.start", "status": 200, "trailers": True})
            await send({"type": "http.response.zerocopysend", "file": f, "offset": 2, "count": 5})
        await send({"type": "http.response.trailers", "headers": [(b"x-done", b"yes")]})
    elif p == "/hint-type":
        msgs = []
        for links in (b"</x>", ["</x>"], None):
            try:
                await send({"type": "http.response.early_hint", "links": links})
                msgs.append("no error")
            except TypeError as e:
                msgs.append(str(e))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": "\n".join(msgs).encode()})

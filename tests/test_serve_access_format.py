"""--access-log-format: gunicorn atoms, headers, json; unknown atoms rejected at startup."""
from __future__ import annotations

import json
import os
import re

import pytest
from serve_util import Served

from engine.serve.accesslog import JSON_FIELDS, AccessFormatError, compile_access_format
from engine.serve.config import Config, ConfigError

SCOPE = {"client": ("10.0.0.1", 5555), "method": "POST", "raw_path": b"/a/b",
         "query_string": b"x=1", "http_version": "1.1",
         "headers": [(b"user-agent", b"ua/1"), (b"referer", b"http://r/"), (b"x-id", b"42")]}


def test_atoms():
    f = compile_access_format(
        '%(h)s %(l)s %(u)s "%(r)s" %(m)s %(U)s %(q)s %(H)s %(s)s %(B)s %(b)s %(f)s %(a)s '
        '%(T)s %(D)s %(M)s %(L)s %(p)s %({X-Id}i)s %({content-type}o)s %({nope}i)s 100%%')
    line = f(SCOPE, 201, 0, 1.5, [(b"content-type", b"text/plain")])
    assert line == ('10.0.0.1 - - "POST /a/b?x=1 HTTP/1.1" POST /a/b x=1 HTTP/1.1 201 0 - '
                    f'http://r/ ua/1 1 1500000 1500 1.500000 <{os.getpid()}> 42 text/plain - '
                    '100%')
    t = compile_access_format("%(t)s")(SCOPE, 200, 1, 0.0, [])
    assert re.fullmatch(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]", t)


def test_json():
    obj = json.loads(compile_access_format("json")(SCOPE, 404, 9, 0.002, []))
    assert tuple(obj) == JSON_FIELDS
    assert obj["status"] == 404 and obj["bytes"] == 9 and obj["path"] == "/a/b"
    assert obj["remote_addr"] == "10.0.0.1" and obj["user_agent"] == "ua/1"


@pytest.mark.parametrize("fmt", ["%(z)s", "%(hh)s", "%({}i)s", "%(h", "%(h)d"])
def test_bad_format_is_config_error(fmt):
    with pytest.raises(AccessFormatError, match="access log format"):
        compile_access_format(fmt)
    with pytest.raises(ConfigError, match="access log format"):
        Config(access_log_format=fmt)


def test_served_custom_format_and_json():
    served = Served("--access-log-format", '%(h)s "%(r)s" %(s)s %(b)s %({x-id}i)s')
    try:
        assert served.request("GET", "/echo?q=1", headers={"X-Id": "abc"})[0] == 200
        assert served.request("GET", "/missing")[0] == 404
        served.wait_for(re.compile(r'"GET /missing HTTP/1.1" 404'), stream="err")
    finally:
        assert served.stop() == 0
    text = served.text()
    assert re.search(r'INFO: +127\.0\.0\.1 "GET /echo\?q=1 HTTP/1\.1" 200 \d+ abc', text), text
    served = Served("--access-log-format", "json", "--workers", "2")
    try:
        assert served.request("GET", "/missing")[0] == 404
        m = served.wait_for(re.compile(r"INFO: +(\{.*\})$"), stream="err")
    finally:
        assert served.stop() == 0
    obj = json.loads(m.group(1))
    assert obj["status"] == 404 and obj["method"] == "GET" and obj["path"] == "/missing"


def test_served_unknown_atom_fails_at_startup():
    served = Served("--access-log-format", "%(nope)s", wait=False)
    assert served.wait() == 2
    assert "unknown atom '%(nope)s'" in served.text()

"""--env-file (parser + loaded before the app is imported) and --log-config (json, ini)."""
from __future__ import annotations

import json
import os
import textwrap

import pytest

from engine.serve.config import Config, ConfigError
from engine.serve.envfile import load_env_file, parse_env_file
from engine.serve.logs import apply_log_config

from serve_util import Served


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def test_env_file_syntax(tmp_path):
    path = _write(tmp_path, ".env", r"""
        # a comment

        PLAIN=value   # trailing comment
        export EXPORTED=yes
        SINGLE='lit\n $x # kept'
        DOUBLE="a\nb\t\"q\" \\ \$HOME" # comment
        EMPTY=
        SPACED = around
        DUP=1
        DUP=2
        """)
    assert parse_env_file(path) == {
        "PLAIN": "value", "EXPORTED": "yes", "SINGLE": "lit\\n $x # kept",
        "DOUBLE": 'a\nb\t"q" \\ $HOME', "EMPTY": "", "SPACED": "around", "DUP": "2"}


def test_env_file_existing_environment_wins(tmp_path):
    path = _write(tmp_path, ".env", "A=file\nB=file\n")
    env = {"A": "env"}
    assert load_env_file(path, env) == {"B": "file"}
    assert env == {"A": "env", "B": "file"}
    load_env_file(path, env, override=True)
    assert env == {"A": "file", "B": "file"}


@pytest.mark.parametrize("line, message", [
    ("NOEQUALS", "expected KEY=VALUE"),
    ("1BAD=x", "invalid variable name"),
    ('Q="unterminated', "unterminated double-quoted"),
    ("Q='unterminated", "unterminated single-quoted"),
    ('Q="x" junk', "unexpected text"),
    (r'Q="\q"', "unknown escape"),
])
def test_env_file_malformed_line_names_file_and_line(tmp_path, line, message):
    path = _write(tmp_path, ".env", f"OK=1\n{line}\n")
    with pytest.raises(ConfigError, match=message) as info:
        parse_env_file(path)
    assert f"{path}:2:" in str(info.value)


def test_env_file_missing(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the env file"):
        parse_env_file(str(tmp_path / "nope.env"))


def test_env_file_loaded_before_app_import(tmp_path):
    (tmp_path / "envapp.py").write_text(textwrap.dedent("""
        import os
        GREETING = os.environ["GREETING"].encode()
        async def app(scope, receive, send):
            if scope["type"] != "http":
                return
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": GREETING})
        """))
    env = _write(tmp_path, "app.env", 'export GREETING="hello from env"\n')
    served = Served("envapp:app", "--env-file", env, "--lifespan", "off", cwd=str(tmp_path))
    try:
        status, _, body = served.request("GET", "/")
        assert (status, body) == (200, b"hello from env")
    finally:
        assert served.stop() == 0


def test_env_file_malformed_is_a_startup_error(tmp_path):
    env = _write(tmp_path, "bad.env", "GOOD=1\nnot a line\n")
    served = Served("--env-file", env, wait=False)
    assert served.wait() == 2
    assert f"{env}:2: expected KEY=VALUE" in served.text()


def _reset(name):
    log = __import__("logging").getLogger(name)
    for h in list(log.handlers):
        log.removeHandler(h)


def test_log_config_json_and_ini(tmp_path):
    import logging
    out = tmp_path / "out.log"
    path = _write(tmp_path, "log.json", json.dumps({
        "version": 1,
        "formatters": {"f": {"format": "JSONCFG %(name)s %(message)s"}},
        "handlers": {"h": {"class": "logging.FileHandler", "filename": str(out),
                           "formatter": "f"}},
        "loggers": {"obs.test.json": {"handlers": ["h"], "level": "INFO"}}}))
    apply_log_config(path)
    logging.getLogger("obs.test.json").info("one")
    logging.getLogger("obs.test.json").handlers[0].flush()
    assert out.read_text() == "JSONCFG obs.test.json one\n"
    _reset("obs.test.json")

    out2 = tmp_path / "out2.log"
    ini = _write(tmp_path, "log.ini", f"""
        [loggers]
        keys=root,t
        [handlers]
        keys=h
        [formatters]
        keys=f
        [logger_root]
        handlers=
        [logger_t]
        handlers=h
        level=INFO
        qualname=obs.test.ini
        [handler_h]
        class=FileHandler
        args=({str(out2)!r},)
        formatter=f
        [formatter_f]
        format=INICFG %(message)s
        """)
    apply_log_config(ini)
    logging.getLogger("obs.test.ini").info("two")
    logging.getLogger("obs.test.ini").handlers[0].flush()
    assert out2.read_text() == "INICFG two\n"
    _reset("obs.test.ini")


def test_log_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        apply_log_config(str(tmp_path / "missing.json"))
    bad = _write(tmp_path, "bad.json", "{not json")
    with pytest.raises(ConfigError, match="invalid log config"):
        apply_log_config(bad)
    wrong = _write(tmp_path, "wrong.json", json.dumps({"version": 99}))
    with pytest.raises(ConfigError, match="invalid log config"):
        apply_log_config(wrong)


def test_log_config_applies_to_the_server(tmp_path):
    out = tmp_path / "engine.log"
    path = _write(tmp_path, "log.json", json.dumps({
        "version": 1,
        "formatters": {"f": {"format": "CUSTOM %(levelname)s %(message)s"}},
        "handlers": {"h": {"class": "logging.FileHandler", "filename": str(out),
                           "formatter": "f"}},
        "loggers": {"engine.access": {"handlers": ["h"], "level": "INFO",
                                      "propagate": False}}}))
    served = Served("--log-config", path, "--access-log", "--workers", "2")
    try:
        assert served.request("GET", "/")[0] == 200
    finally:
        assert served.stop() == 0
    text = out.read_text()
    assert text.startswith("CUSTOM INFO ") and "GET / HTTP/1.1" in text and "200" in text


def test_log_config_missing_file_is_a_startup_error(tmp_path):
    served = Served("--log-config", str(tmp_path / "nope.yaml"), wait=False)
    assert served.wait() == 1
    assert "does not exist" in served.text()
    assert Config(log_config="x").log_config == "x"

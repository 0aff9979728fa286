"""Logging of ``engine serve``: the ``engine.*`` loggers to stderr in uvicorn's layout
(``LEVEL:    message``), the level coloured on a terminal; ``engine.access`` for the access log."""
from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

from .config import TRACE, Config, ConfigError

__all__ = ["LogFormatter", "apply_log_config", "configure_logging"]

logging.addLevelName(TRACE, "TRACE")


_COLORS = {logging.CRITICAL: "\x1b[91m", logging.ERROR: "\x1b[31m",
           logging.WARNING: "\x1b[33m", logging.INFO: "\x1b[32m", logging.DEBUG: "\x1b[36m",
           TRACE: "\x1b[34m"}


class LogFormatter(logging.Formatter):
    """``LEVEL:    message`` (uvicorn's layout), the level coloured on a terminal."""

    def __init__(self, fmt: str = "%(levelprefix)s %(message)s", *,
                 use_colors: bool = False) -> None:
        super().__init__(fmt)
        self.use_colors = use_colors

    def formatMessage(self, record: logging.LogRecord) -> str:
        prefix = f"{record.levelname}:".ljust(9)
        if self.use_colors:
            prefix = f"{_COLORS.get(record.levelno, '')}{prefix}\x1b[0m"
        record.levelprefix = prefix
        return super().formatMessage(record)


def _wants_colors(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def configure_logging(config: Config, stream: TextIO | None = None) -> None:
    """Send the ``engine`` loggers (``engine.server``, ``engine.http``, ``engine.lifespan``,
    ...) to stderr at ``config.log_level``, and ``engine.access`` there too when
    ``config.access_log`` (it is disabled otherwise). Nothing happens with ``log_level=None``,
    so an application can configure logging itself."""
    level = config.log_level_number()
    if level is None:
        return
    out = stream if stream is not None else sys.stderr
    colors = _wants_colors(out)
    for name in ("engine", "engine.access"):
        log = logging.getLogger(name)
        for handler in list(log.handlers):
            if getattr(handler, "_engine_serve", False):
                log.removeHandler(handler)
        handler = logging.StreamHandler(out)
        handler._engine_serve = True  # type: ignore[attr-defined]
        handler.setFormatter(LogFormatter(use_colors=colors))
        log.addHandler(handler)
        log.propagate = False
    logging.getLogger("engine").setLevel(level)
    access = logging.getLogger("engine.access")
    access.setLevel(logging.INFO)
    access.disabled = not config.access_log
    if config.log_config is not None:
        apply_log_config(config.log_config)


def apply_log_config(path: str) -> None:
    """``--log-config FILE``: :func:`logging.config.dictConfig` of a ``.json`` or
    ``.yaml``/``.yml`` file (PyYAML needed), :func:`logging.config.fileConfig` of any other
    (``.ini``, ``.conf``). Applied after engine's own setup, so it can replace it; workers
    inherit it through fork. Errors are :class:`ConfigError`."""
    import logging.config

    if not os.path.isfile(path):
        raise ConfigError(f"log config file {path!r} does not exist")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext in (".json", ".yaml", ".yml"):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            if ext == ".json":
                import json
                data = json.loads(text)
            else:
                try:
                    import yaml  # type: ignore[import-untyped]
                except ImportError:
                    raise ConfigError(f"log config {path!r}: YAML needs PyYAML "
                                      "(pip install pyyaml)") from None
                data = yaml.safe_load(text)
            if not isinstance(data, dict):
                raise ConfigError(f"log config {path!r}: expected a mapping at the top")
            data.setdefault("disable_existing_loggers", False)
            logging.config.dictConfig(data)
        else:
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"invalid log config {path!r}: {exc}") from None


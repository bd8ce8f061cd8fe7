"""How hubgate logs: one configuration for the server process and every worker (text or JSON lines,
UTC timestamps, a configurable level), and the start-up summary an operator reads first."""

from __future__ import annotations

import json
import logging
import logging.config
import time
from typing import TYPE_CHECKING, Any

from hubgate import __version__
from hubgate.config_sources import masked_url

if TYPE_CHECKING:
    from hubgate.config import Settings

TRACE = 5  # uvicorn's level below DEBUG
# Attributes every LogRecord has; anything else was passed as `extra=` and goes into JSON lines.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "color_message"}


class UtcFormatter(logging.Formatter):
    """`2026-12-01T21:40:00.123Z LEVEL logger: message`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class JsonFormatter(UtcFormatter):
    """One JSON object per line: time, level, logger, message, and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record), "level": record.levelname, "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def config_dict(settings: Settings) -> dict[str, Any]:
    """A `logging.config` dictionary; uvicorn applies it in each worker process too."""
    level = TRACE if settings.log_level == "trace" else settings.log_level.upper()
    formatter = JsonFormatter if settings.log_format == "json" else UtcFormatter
    quiet = {"level": "WARNING"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"hubgate": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "hubgate", "stream": "ext://sys.stderr"}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            # uvicorn's own handlers are replaced by the root's; its access log by `http.access`.
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            "httpx": quiet,  # one line per upstream request is noise
            "httpcore": quiet,
            "alembic": quiet,  # schema migrations at start-up
        },
    }


def _word(value: object) -> str:
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)


def configure(settings: Settings) -> None:
    logging.config.dictConfig(config_dict(settings))


def log_start(settings: Settings) -> None:
    """What this server runs with, before it listens (secrets never included)."""
    upstreams = [
        f"{u.name}={masked_url(u.url)}" + (f" (token from ${u.token_env})" if u.token_env else "")
        + (" (passthrough)" if u.passthrough else "")
        for u in settings.upstream
    ]
    fields = {
        "version": __version__,
        "data": str(settings.data.absolute()),
        "database": masked_url(settings.db_url),
        "blob_store": str(settings.blob_dir.absolute()),
        "config": str(settings.config.absolute()) if settings.config else "none",
        "upstreams": ", ".join(upstreams) or "none",
        "offline": settings.offline,
        "workers": settings.workers,
        "listen": f"{settings.host}:{settings.port}",
    }
    text = "; ".join(f"{key.replace('_', ' ')} {_word(value)}" for key, value in fields.items())
    logging.getLogger("hubgate.server").info("starting hubgate %s", text, extra={"startup": fields})

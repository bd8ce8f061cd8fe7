"""How hubgate logs: one configuration for the server process and every worker (text or JSON lines,
UTC timestamps, a configurable level), the start-up summary an operator reads first, and no
credential in any line.

A presigned URL copied from a log would download a private file without authentication until it
expires. `scrub_url` blanks the credential parameters of a URL; `ScrubSecrets`, on the one handler
every logger writes through, applies it to each record's formatted message, exception text and
extra fields, whichever logger wrote it and whatever objects it was given.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from hubgate import __version__
from hubgate.config_sources import masked_url

if TYPE_CHECKING:
    from hubgate.config import Settings

TRACE = 5  # uvicorn's level below DEBUG
# The id of the request being answered (set by the access log), so that every line logged on its
# behalf - a refused token, an upstream failure - can be traced back to it.
REQUEST_ID: ContextVar[str | None] = ContextVar("hubgate_request_id", default=None)
# Attributes every LogRecord has; anything else was passed as `extra=` and goes into JSON lines.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "color_message"}


# Query parameters that carry a credential: hubgate's own `sig`, and the usual suspects.
SECRET_PARAMS = ("sig", "signature", "token", "access_token", "x-amz-signature", "x-amz-credential",
                 "x-amz-security-token")
_SECRET_VALUE = re.compile(r"(?i)([?&](?:" + "|".join(re.escape(p) for p in SECRET_PARAMS) + r")=)[^&#\s\"'<>]*")
REDACTED = "REDACTED"


def scrub_url(text: str) -> str:
    """`text` (a URL, or any text holding URLs) with the value of every credential parameter redacted."""
    return _SECRET_VALUE.sub(lambda found: found.group(1) + REDACTED, text)


class ScrubSecrets(logging.Filter):
    """Formats each record's message, redacts credentials in it, in its exception and stack text and
    in its extra string fields, and leaves the record with no arguments left to format."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not raise in the caller
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = scrub_url(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_url(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub_url(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, scrub_url(value))
        return True


class RequestContext(logging.Filter):
    """Gives hubgate's own records the id of the request they were logged for, if any."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id") and record.name.startswith("hubgate."):
            current = REQUEST_ID.get()
            if current is not None:
                record.request_id = current
                record.in_request = True
        return True


class UtcFormatter(logging.Formatter):
    """`2026-12-01T21:40:00.123Z LEVEL logger: message`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"{text} req={getattr(record, 'request_id', '-')}" if getattr(record, "in_request", False) else text


class JsonFormatter(UtcFormatter):
    """One JSON object per line: time, level, logger, message, and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record), "level": record.levelname, "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD | {"in_request"} and not k.startswith("_")})
        if record.exc_info or record.exc_text:
            line["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
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
        "filters": {
            "request": {"()": f"{RequestContext.__module__}.{RequestContext.__qualname__}"},
            "scrub": {"()": f"{ScrubSecrets.__module__}.{ScrubSecrets.__qualname__}"},
        },
        # Every logger writes through this handler (none has its own), so every line is scrubbed.
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "hubgate", "filters": ["request", "scrub"],
                                "stream": "ext://sys.stderr"}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            # uvicorn's own handlers are replaced by the root's; its access log by `http.access`.
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            "httpx": quiet,  # one line per upstream request is noise
            "httpcore": quiet,
            "alembic": quiet,  # schema migrations at start-up
            # The S3 client's debug lines carry signed requests and presigned URLs.
            "botocore": quiet,
            "boto3": quiet,
            "s3transfer": quiet,
            "urllib3": quiet,
        },
    }


def _word(value: object) -> str:
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)


def configure(settings: Settings, *, command: bool = False) -> None:
    """Log as `settings` say; a command other than `serve` logs at most its warnings and errors
    (as Python does unconfigured), but through the same scrubbing handler."""
    if command and settings.log_level in ("info", "debug", "trace"):
        settings = settings.model_copy(update={"log_level": "warning"})
    logging.config.dictConfig(config_dict(settings))


def _blob_store(settings: Settings) -> str:
    blobs = settings.blobs
    if blobs.backend == "local":
        return str(settings.blob_dir.absolute())
    where = masked_url(str(blobs.endpoint_url)) if blobs.endpoint_url else f"AWS {blobs.region or ''}".strip()
    return f"s3://{blobs.bucket}/{blobs.prefix} at {where} (serve {blobs.serve})"


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
        "blob_store": _blob_store(settings),
        "server_key": "from secret_key" if settings.secret_key else str((settings.data / "secret.key").absolute()),
        "config": str(settings.config.absolute()) if settings.config else "none",
        "upstreams": ", ".join(upstreams) or "none",
        "offline": settings.offline,
        "workers": settings.workers,
        "listen": f"{settings.host}:{settings.port}",
    }
    text = "; ".join(f"{key.replace('_', ' ')} {_word(value)}" for key, value in fields.items())
    logging.getLogger("hubgate.server").info("starting hubgate %s", text, extra={"startup": fields})

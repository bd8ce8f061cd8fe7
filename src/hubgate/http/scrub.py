"""Credentials never reach a log: signatures and tokens in query strings are blanked out.

A presigned URL copied from an access log would download a private file without authentication
until it expires. `scrub_url` is the one function every log line with a request target goes through;
`ScrubSignedUrls` applies it to uvicorn's access log.
"""

from __future__ import annotations

import logging
import re

# Query parameters that carry a credential: hubgate's own `sig`, and the usual suspects.
SECRET_PARAMS = ("sig", "signature", "token", "access_token", "x-amz-signature", "x-amz-credential",
                 "x-amz-security-token")
_SECRET_VALUE = re.compile(r"(?i)([?&](?:" + "|".join(re.escape(p) for p in SECRET_PARAMS) + r")=)[^&#\s\"]*")
REDACTED = "REDACTED"


def scrub_url(target: str) -> str:
    """`target` (a URL or path with query) with the value of every credential parameter redacted."""
    if "?" not in target:
        return target
    return _SECRET_VALUE.sub(lambda found: found.group(1) + REDACTED, target)


class ScrubSignedUrls(logging.Filter):
    """Redacts credentials from the string arguments (and message) of every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(scrub_url(arg) if isinstance(arg, str) else arg for arg in record.args)
        if isinstance(record.msg, str):
            record.msg = scrub_url(record.msg)
        return True


def install(*logger_names: str) -> None:
    """Put the filter on the named loggers (once each) in this process."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ScrubSignedUrls) for f in logger.filters):
            logger.addFilter(ScrubSignedUrls())

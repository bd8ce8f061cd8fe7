"""Response header values made valid in one place, whatever input they were built from.

A value ending in whitespace or holding a control character (an error message quoting a path
that ends in `%20`, an echoed request id) is refused by the HTTP layer, which then drops the
connection instead of answering. Every response goes through `make_safe` just before it is sent.
"""

from __future__ import annotations

import re

# Bytes no header value may hold (RFC 9110 field-value: visible characters, obs-text, inner SP/HTAB).
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_WHITESPACE = b" \t"
MAX_VALUE = 8192  # longer values are cut: a header quoting a huge input must not make a huge answer


def safe_value(value: bytes) -> bytes:
    """`value` with control characters turned into spaces, outer whitespace removed, length capped."""
    if len(value) > MAX_VALUE:
        value = value[: MAX_VALUE - 3] + b"..."
    if _CONTROL.search(value):
        value = _CONTROL.sub(b" ", value)
    if value[:1] in (b" ", b"\t") or value[-1:] in (b" ", b"\t"):
        value = value.strip(_WHITESPACE)
    return value


def make_safe(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The raw (name, value) header list with every value made valid."""
    return [(name, safe_value(value)) for name, value in headers]

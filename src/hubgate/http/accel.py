"""X-Accel-Redirect answers: hubgate authorises a download, nginx sends the file's bytes.

With `[http] accel_redirect_prefix` set, a GET of a file stored in the local blob folder is
answered with every usual header, an empty body and `X-Accel-Redirect: <prefix><the blob's key,
ab/cd/sha256, its path in the blob folder>`; nginx then serves that path from an `internal` location aliasing the blob
folder, ranges included (docs/deployment.md has the configuration). Anything else - HEAD (its
headers already say everything), bytes still arriving from upstream, files held in the git store,
a Range that hubgate would not honour (`If-Range`, or a file once served bad) - is answered by
hubgate itself as before.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response

from hubgate.http.call import Call
from hubgate.repos.base import Content


class AccelResponse(Response):
    """Headers and an empty body; nginx sends the bytes (counted in /metrics as x-accel)."""

    served_by = "x-accel"


def accel_response(call: Call, content: Content, headers: Mapping[str, str]) -> Response | None:
    """The X-Accel-Redirect answer for `content`, or None when hubgate must send the bytes itself."""
    prefix = call.hub.settings.http.accel_redirect_prefix
    request_headers, method = call.request.headers, call.request.method
    if prefix is None or content.blob_key is None or method != "GET" or "if-range" in request_headers:
        return None
    if "range" in request_headers and not content.can_resume():  # hubgate answers the whole file
        return None
    accel = {**headers, "X-Accel-Redirect": prefix + content.blob_key}
    return AccelResponse(status_code=200, headers=accel)

"""Xet connection info: `GET /api/{type}s/{repo}/xet-{write,read}-token/{rev}` (xet-protocol §2.1).

hf_xet asks for a write token before uploading xorbs and shards, and huggingface_hub (then hf_xet,
near expiry) for a read token before reconstructing a file named by `X-Xet-Hash`. The answer carries
the token both as JSON (hf_xet parses the body) and as `X-Xet-*` headers (huggingface_hub reads
those). A token is bound to the repo (hosted ones only) and to reading or writing, whatever the
revision: `{rev}` may be a branch, a commit, an URL-quoted `refs/pr/N`, or literally `None`.
"""

from __future__ import annotations

from starlette.responses import Response

from hubgate import constants
from hubgate.auth.gate import Action, Subject
from hubgate.http.call import Call
from hubgate.http.responses import json_response
from hubgate.http.routes.discussions import hosted, proposal, proposal_subject
from hubgate.http.routes.xet_cas import cas_url
from hubgate.http.routing import API_TYPE, REPO_ID, REV, RouteTable

table = RouteTable()


def _uploading(call: Call) -> Action:
    """The rights of the upload that follows (as for preupload and the LFS batch): writers anywhere, any
    reader for a new pull request (`create_pr`), its author for its `refs/pr/N`."""
    return proposal(call.params["rev"], call.flag("create_pr"))


def _uploaded_to(call: Call) -> Subject:
    return proposal_subject(call, call.params["rev"])


def _token(call: Call, write: bool) -> Response:
    repo = hosted(call)  # a mirrored repo's files are served over plain HTTP: no Xet here
    who = call.principal
    token, expires = call.hub.cas_tokens.mint(repo.pk, repo.meta.ref, "write" if write else "read", constants.XET_TOKEN_TTL,
                                              who.name if who else None, who.token_id if who else None)
    url = cas_url(call)
    headers = {"X-Xet-Cas-Url": url, "X-Xet-Access-Token": token, "X-Xet-Token-Expiration": str(expires),
               "Cache-Control": "no-store"}
    call.audit["kind"] = "xet-write-token" if write else "xet-read-token"
    return json_response({"accessToken": token, "exp": expires, "casUrl": url}, headers=headers)


@table.add("GET", rf"/api/{API_TYPE}/{REPO_ID}/xet-write-token/{REV}", action=_uploading, subject=_uploaded_to)
def write_token(call: Call) -> Response:
    return _token(call, write=True)


@table.add("GET", rf"/api/{API_TYPE}/{REPO_ID}/xet-read-token/{REV}", action=Action.DOWNLOAD)
def read_token(call: Call) -> Response:
    return _token(call, write=False)

"""Repo info, trees, paths-info, refs, commits, auth-check and listings (hub-protocol §4)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from hubgate import constants
from hubgate.auth.gate import Action
from hubgate.errors import BadRequest, EntryNotFound
from hubgate.http.call import Call
from hubgate.http.formats import commit_json, entry_json, iso
from hubgate.http.responses import json_response
from hubgate.http.routing import API_TYPE, PATH, REPO_ID, REV, RouteTable
from hubgate.ids import check_folder, check_revision
from hubgate.repos.base import Repository

table = RouteTable()


def _info(call: Call, repo: Repository, revision: str) -> dict[str, Any]:
    commit = repo.resolve(check_revision(revision))
    head = repo.commit(commit)
    meta = repo.meta
    siblings = []
    for entry in repo.list_tree(commit, recursive=True):
        if entry.type != "file":
            continue
        sibling: dict[str, Any] = {"rfilename": entry.path, "size": entry.size, "blobId": entry.oid}
        if entry.lfs:
            sibling["lfs"] = {"size": entry.lfs.size, "sha256": entry.lfs.sha256, "pointerSize": entry.lfs.pointer_size}
        siblings.append(sibling)
    data: dict[str, Any] = {
        "_id": f"{meta.ref.type}/{meta.ref.repo_id}",
        "id": meta.ref.repo_id,
        "author": meta.ref.namespace,
        "sha": commit,
        "private": meta.private,
        "gated": meta.gated or False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "lastModified": iso(head.timestamp),
        "createdAt": iso(meta.created_at),
        "siblings": siblings,
        "usedStorage": sum(s["size"] for s in siblings),
    }
    card = repo.card_data(commit)
    if card is not None:
        data["cardData"] = card
    if meta.ref.type == "model":
        data["modelId"] = meta.ref.repo_id
    if meta.ref.type == "space":
        data["sdk"] = meta.sdk or "static"
        data["runtime"] = {"stage": "NO_APP_FILE", "hardware": {"current": None, "requested": None}}
    return data


@table.add("GET", rf"/api/{API_TYPE}/{REPO_ID}", action=Action.READ_REPO)
def repo_info(call: Call) -> Response:
    repo = call.repo
    return json_response(_info(call, repo, constants.DEFAULT_BRANCH), headers=repo.response_headers())


@table.add("GET", rf"/api/{API_TYPE}/{REPO_ID}/revision/{REV}", action=Action.READ_REPO)
def repo_info_at(call: Call) -> Response:
    repo = call.repo
    return json_response(_info(call, repo, call.params["rev"]), headers=repo.response_headers())


def _page_link(call: Call, **params: Any) -> str:
    query = dict(call.query)
    query.update({k: str(v) for k, v in params.items()})
    return f'<{call.base_url}{call.request.scope["raw_path"].decode("latin-1")}?{urlencode(query)}>; rel="next"'


def _page(call: Call, items: list[Any], default_limit: int) -> tuple[list[Any], dict[str, str]]:
    try:
        cursor = int(call.query.get("cursor", "0") or 0)
        limit = int(call.query.get("limit", default_limit) or default_limit)
    except ValueError as exc:
        raise BadRequest("cursor and limit must be integers") from exc
    if cursor < 0:
        raise BadRequest("cursor must not be negative")
    limit = max(1, min(limit, default_limit))
    page = items[cursor : cursor + limit]
    headers = {}
    if cursor + limit < len(items):
        headers["Link"] = _page_link(call, cursor=cursor + limit)
    return page, headers


@table.add("GET", rf"/api/{API_TYPE}/{REPO_ID}/tree/{REV}(?:/{PATH})?", action=Action.READ_REPO)
def tree(call: Call) -> Response:
    repo = call.repo
    commit = repo.resolve(check_revision(call.params["rev"]))
    path = check_folder(call.params.get("path", ""))
    entries = repo.list_tree(commit, path, recursive=call.flag("recursive"))
    page, headers = _page(call, [entry_json(e) for e in entries], constants.TREE_PAGE_SIZE)
    return json_response(page, headers=headers)


@table.add("POST", rf"/api/{API_TYPE}/{REPO_ID}/paths-info/{REV}", action=Action.READ_REPO, body="form")
def paths_info(call: Call) -> Response:
    repo = call.repo
    commit = repo.resolve(check_revision(call.params["rev"]))
    if not isinstance(call.body, dict):
        raise BadRequest("Expected the form fields (or a JSON object) 'paths' and 'expand'")
    wanted = call.body.get("paths", [])
    if isinstance(wanted, str):
        wanted = [wanted]
    if not isinstance(wanted, list):
        raise BadRequest("'paths' must be a list of paths")
    found = []
    folders: dict[str, dict[str, Any]] = {}  # parent folder -> {path: entry}, each listed once
    for raw in wanted:
        path = check_folder(raw)
        if not path:
            continue
        parent = path.rpartition("/")[0]
        if parent not in folders:
            try:
                folders[parent] = {e.path: e for e in repo.list_tree(commit, parent)}
            except EntryNotFound:  # a missing parent just means the path is absent
                folders[parent] = {}
        entry = folders[parent].get(path)
        if entry is not None:
            found.append(entry_json(entry))
    return json_response(found)


@table.add("GET", rf"/api/{API_TYPE}/{REPO_ID}/refs", action=Action.READ_REPO)
def refs(call: Call) -> Response:
    repo = call.repo

    def listing(items: dict[str, str], kind: str) -> list[dict[str, str]]:
        return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": t} for n, t in sorted(items.items())]

    data: dict[str, Any] = {"branches": listing(repo.branches(), "heads"), "tags": listing(repo.tags(), "tags"), "converts": []}
    if call.flag("include_prs"):
        prs = repo.pull_requests()
        data["pullRequests"] = [{"name": n, "ref": n, "targetCommit": t} for n, t in sorted(prs.items(), key=_pr_number)]
    return json_response(data)


def _pr_number(item: tuple[str, str]) -> int:
    tail = item[0].rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else 0


@table.add("GET", rf"/api/{API_TYPE}/{REPO_ID}/commits/{REV}", action=Action.READ_REPO)
def commits(call: Call) -> Response:
    repo = call.repo
    commit = repo.resolve(check_revision(call.params["rev"]))
    try:
        page_no = int(call.query.get("p", "0") or 0)
        limit = max(1, min(int(call.query.get("limit", constants.COMMITS_PAGE_SIZE)), 1000))
    except ValueError as exc:
        raise BadRequest("p and limit must be integers") from exc
    if page_no < 0:
        raise BadRequest("p must not be negative")
    start = page_no * limit
    items = []
    more = False
    for index, data in enumerate(repo.history(commit)):
        if index >= start + limit:
            more = True
            break
        if index >= start:
            items.append(commit_json(data))
    headers = {"Link": _page_link(call, p=page_no + 1)} if more else {}
    return json_response(items, headers=headers)


@table.add("GET", rf"/api/{API_TYPE}/{REPO_ID}/auth-check", action=Action.DOWNLOAD)
def auth_check(call: Call) -> Response:
    return json_response({})


@table.add("GET", rf"/api/{API_TYPE}/{REPO_ID}/auth-check/write", action=Action.WRITE_REPO)
def auth_check_write(call: Call) -> Response:
    return json_response({})


@table.add("GET", rf"/api/{API_TYPE}", action=Action.PUBLIC)  # lists only what the caller may see
def list_repos(call: Call) -> Response:
    repo_type = constants.PLURAL_TO_REPO_TYPE[call.params["plural"]]
    author = call.query.get("author")
    search = (call.query.get("search") or "").lower()
    items = []
    visible = call.hub.gate.visible(call.principal)
    for meta in call.hub.repos.list(repo_type):
        if not visible(meta):
            continue
        if author and meta.ref.namespace != author:
            continue
        if search and search not in meta.ref.repo_id.lower():
            continue
        items.append(
            {"_id": f"{repo_type}/{meta.ref.repo_id}", "id": meta.ref.repo_id, "author": meta.ref.namespace,
             "private": meta.private, "gated": meta.gated or False, "createdAt": iso(meta.created_at),
             "downloads": 0, "likes": 0, "tags": []}
        )
    page, headers = _page(call, items, 1000)
    return json_response(page, headers=headers)

"""The access matrix: callers × repos × operations, each cell the exact status and X-Error-Code.

Reads, downloads and uploads go through huggingface_hub itself; the rest through HTTP. The
expected cells come from the rules written out below (`expected`), which restate the README's
access model independently of the server code.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError
from typer.testing import CliRunner

from conftest import Server, start_server
from hubgate.cli import app as cli_app

http = httpx.Client(timeout=60)
Cell = tuple[int, str | None]


def cli(server: Server, *args: str) -> str:
    result = CliRunner().invoke(cli_app, [*args, "--data", str(server.data)])
    assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
    return result.stdout


def token(server: Server, user: str, *args: str) -> str:
    return cli(server, "token", "create", user, *args).strip().splitlines()[-1]


@dataclass(frozen=True)
class Caller:
    name: str
    user: str | None = None  # None: anonymous
    token: str = "write"  # write | read | fg-in | fg-out | dead (expired, revoked, rotated)
    roles: tuple[tuple[str, str], ...] = ()  # (repo key, role) the user holds: org role or collaborator
    collaborator: bool = False  # the roles above are a collaborator's (cannot manage)
    request: str | None = None  # their access request on the gated repo


ORG_ADMIN = (("pub", "admin"), ("priv", "admin"), ("gated", "admin"))
CALLERS = [
    Caller("anonymous"),
    Caller("owner-write", "olga", roles=ORG_ADMIN),
    Caller("owner-read", "olga", "read", roles=ORG_ADMIN),
    Caller("fine-grained-inside", "olga", "fg-in", roles=ORG_ADMIN),
    Caller("fine-grained-outside", "olga", "fg-out", roles=ORG_ADMIN),
    Caller("expired", "olga", "dead"),
    Caller("revoked", "olga", "dead"),
    Caller("rotated-old-secret", "olga", "dead"),
    Caller("member-read", "rita", roles=(("pub", "read"), ("priv", "read"), ("gated", "read"))),
    Caller("member-write", "wes", roles=(("pub", "write"), ("priv", "write"), ("gated", "write"))),
    Caller("member-admin", "ada", roles=ORG_ADMIN),
    Caller("collaborator-read", "cora", roles=(("priv", "read"), ("gated", "read")), collaborator=True),
    Caller("collaborator-write", "cole", roles=(("priv", "write"), ("gated", "write")), collaborator=True),
    Caller("outsider", "otto"),
    Caller("gated-granted", "gina", request="accepted"),
    Caller("gated-pending", "pete", request="pending"),
    Caller("gated-rejected", "rex", request="rejected"),
    Caller("admin", "root", roles=ORG_ADMIN),
]
REPOS = {"pub": ("corp/pub", False), "priv": ("corp/priv", True), "gated": ("corp/gated", False)}
# Mirrored from an upstream hubgate (no server-wide upstream token): a public repo, one the local
# policy denies, and a private one only wes can fetch, with his own upstream token.
MIRRORED = {"mirror-open": "team/open", "mirror-denied": "ext/banned", "mirror-private": "team/private"}
UPSTREAM_VOUCHED = {"member-write", "admin"}  # wes himself; server admins by local policy
FG_INSIDE = "corp/p*"  # covers pub and priv, not gated
OPERATIONS = ["info", "tree", "download", "upload", "branch", "tag", "delete-branch", "settings", "collaborators"]
WRITES = {"upload", "branch", "tag", "delete-branch"}
MANAGES = {"settings", "collaborators"}


def covered(caller: Caller, repo: str) -> bool:
    """Whether the caller's token scope reaches the repo (roles are checked separately)."""
    if caller.token == "fg-in":
        return repo in ("pub", "priv")
    return caller.token != "fg-out"


def expected(caller: Caller, repo: str, op: str) -> Cell:
    if caller.token == "dead":
        return 401, None
    anonymous = caller.user is None
    role = dict(caller.roles).get(repo)
    private = REPOS[repo][1]
    if private and role is None:
        return (401 if anonymous else 404), "RepoNotFound"
    if private and not covered(caller, repo):
        return 403, None  # the user may see it: the 403 names the token's missing scope
    if op == "download" and repo == "gated" and role is None and caller.request != "accepted":
        return (401 if anonymous else 403), "GatedRepo"
    if op in WRITES | MANAGES:
        if anonymous:
            return 401, None
        if role not in ("write", "admin") or (op in MANAGES and caller.collaborator):
            return 403, None
        if caller.token == "read" or not covered(caller, repo):
            return 403, None
    return 200, None


def expected_mirrored(caller: Caller, repo: str, op: str) -> Cell:
    if caller.token == "dead":
        return 401, None
    not_found = (401 if caller.user is None else 404), "RepoNotFound"
    if op in WRITES | MANAGES:
        return not_found  # nothing mirrored is written here
    if repo == "mirror-denied":
        return 403, None
    if repo == "mirror-private" and caller.name not in UPSTREAM_VOUCHED:
        return not_found
    return 200, None


def repo_id_of(repo: str) -> str:
    return REPOS[repo][0] if repo in REPOS else MIRRORED[repo]


def _outcome(call: Callable[[], object]) -> Cell:
    try:
        call()
    except Exception as error:  # hf_hub_download wraps some answers (a plain 403) in LocalEntryNotFoundError
        cause: BaseException | None = error
        while cause is not None and not isinstance(cause, HfHubHTTPError):
            cause = cause.__cause__
        if cause is None:
            raise
        assert cause.response is not None
        return cause.response.status_code, cause.response.headers.get("X-Error-Code")
    return 200, None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str | None]]]:
    folder = tmp_path_factory.mktemp("matrix")
    with start_server(folder / "origin") as origin:
        yield from _world(folder, origin)


def _world(folder: Path, origin: Server) -> Iterator[tuple[Server, dict[str, str | None]]]:
    for user in ("team", "ext"):
        origin.add_user(user)
        upstream = HfApi(endpoint=origin.url, token=origin.token(user, "write"))
        for repo_id in MIRRORED.values():
            if repo_id.startswith(f"{user}/"):
                upstream.create_repo(repo_id, private=repo_id == MIRRORED["mirror-private"])
                upstream.create_commit(repo_id, [CommitOperationAdd("a.txt", b"a")], commit_message="seed")
    wes_upstream = origin.token("team", "read")  # wes's own identity upstream
    config = folder / "hubgate.toml"
    config.write_text(
        "[auth]\nmax_failures = 0  # the dead tokens' cells fail on purpose, many times a minute\n"
        f'[[upstream]]\nname = "origin"\nurl = "{origin.url}"\n[mirror]\ndeny = ["ext/*"]\n'
    )
    with start_server(folder / "data", config=config) as server:
        for user in ("olga", "rita", "wes", "ada", "cora", "cole", "otto", "gina", "pete", "rex", "gus"):
            cli(server, "user", "add", user)
        cli(server, "user", "add", "root", "--admin")
        cli(server, "org", "add", "corp", "--owner", "olga")
        for user, role in (("rita", "read"), ("wes", "write"), ("ada", "admin")):
            cli(server, "org", "member", "add", "corp", user, "--role", role)
        owner = token(server, "olga", "--role", "write")
        api = HfApi(endpoint=server.url, token=owner)
        for repo_id, private in REPOS.values():
            api.create_repo(repo_id, private=private)
            api.create_commit(repo_id, [CommitOperationAdd("a.txt", b"a")], commit_message="seed")
        api.update_repo_settings(REPOS["gated"][0], gated="manual")
        for repo in ("priv", "gated"):
            cli(server, "repo", "collaborator", "add", REPOS[repo][0], "cora", "--role", "read")
            cli(server, "repo", "collaborator", "add", REPOS[repo][0], "cole", "--role", "write")
        tokens: dict[str, str | None] = {"anonymous": None}
        for caller in CALLERS:
            if caller.user is None or caller.token == "dead":
                continue
            extra = {"write": ["--role", "write"], "read": ["--role", "read"],
                     "fg-in": ["--repo", f"{FG_INSIDE}=write"], "fg-out": ["--repo", "corp/none-*=read"]}[caller.token]
            tokens[caller.name] = token(server, caller.user, *extra)
        gated = REPOS["gated"][0]
        for name in ("gated-granted", "gated-pending", "gated-rejected"):
            response = http.post(f"{server.url}/{gated}/ask-access", headers={"Authorization": f"Bearer {tokens[name]}"})
            assert response.json() == {"status": "pending"}
        api.accept_access_request(gated, "gina")
        api.reject_access_request(gated, "rex", rejection_reason="not for you")
        expired = token(server, "olga", "--role", "write", "--expires", "1s")
        tokens["revoked"] = token(server, "olga", "--role", "write", "--name", "to-revoke")
        cli(server, "token", "revoke", "to-revoke")
        tokens["rotated-old-secret"] = token(server, "olga", "--role", "write", "--name", "to-rotate")
        cli(server, "token", "rotate", "to-rotate")
        for _ in range(500):  # bounded: the one-second token is past its expiry
            if http.get(f"{server.url}/api/whoami-v2", headers={"Authorization": f"Bearer {expired}"}).status_code == 401:
                break
        tokens["expired"] = expired
        tokens["gus"] = token(server, "gus", "--role", "read")
        stored = CliRunner().invoke(cli_app, ["upstream-token", "set", "origin", "--user", "wes", "--data", str(server.data),
                                              "--config", str(config)], input=wes_upstream + "\n")
        assert stored.exit_code == 0, stored.output
        private = MIRRORED["mirror-private"]  # wes brings it into the cache first
        wes = HfApi(endpoint=server.url, token=tokens["member-write"])
        assert wes.model_info(private).private
        list(wes.list_repo_tree(private))
        hf_hub_download(private, "a.txt", endpoint=server.url, token=tokens["member-write"], cache_dir=str(folder / "wes"))
        yield server, tokens


def run(server: Server, secret: str | None, caller: Caller, repo: str, op: str, cache: Path) -> Cell:
    repo_id = repo_id_of(repo)
    api = HfApi(endpoint=server.url, token=secret or False)
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    base = f"{server.url}/api/models/{repo_id}"
    suffix = caller.name
    if op == "info":
        return _outcome(lambda: api.model_info(repo_id))
    if op == "tree":
        return _outcome(lambda: list(api.list_repo_tree(repo_id)))
    if op == "download":
        return _outcome(lambda: hf_hub_download(repo_id, "a.txt", endpoint=server.url, token=secret or False,
                                                cache_dir=str(cache / suffix / repo)))
    if op == "upload":
        return _outcome(lambda: api.create_commit(repo_id, [CommitOperationAdd(f"{suffix}.txt", b"x")], commit_message="m"))
    requests = {
        "branch": ("POST", f"{base}/branch/b-{suffix}", {}),
        "tag": ("POST", f"{base}/tag/main", {"tag": f"t-{suffix}"}),
        "delete-branch": ("DELETE", f"{base}/branch/b-{suffix}", None),
        "settings": ("PUT", f"{base}/settings", {}),
        "collaborators": ("GET", f"{base}/collaborators", None),
    }
    method, url, body = requests[op]
    response = http.request(method, url, headers=headers, json=body)
    return response.status_code, response.headers.get("X-Error-Code")


def test_access_matrix(world: tuple[Server, dict[str, str | None]], tmp_path: Path) -> None:
    server, tokens = world
    failures = []
    cells = 0
    for caller in CALLERS:
        for repo in [*REPOS, *MIRRORED]:
            for op in OPERATIONS:
                got = run(server, tokens[caller.name], caller, repo, op, tmp_path)
                want = expected(caller, repo, op) if repo in REPOS else expected_mirrored(caller, repo, op)
                cells += 1
                if got != want:
                    failures.append(f"{caller.name:<22} {repo:<6} {op:<14} got {got}, expected {want}")
        # token management: one's own tokens, with a write token only
        got_tokens = http.get(f"{server.url}/api/tokens",
                              headers={"Authorization": f"Bearer {tokens[caller.name]}"} if tokens[caller.name] else {})
        want_tokens = (401, None) if caller.user is None or caller.token == "dead" else \
            (200, None) if caller.token == "write" else (403, None)
        cells += 1
        if (got_tokens.status_code, got_tokens.headers.get("X-Error-Code")) != want_tokens:
            failures.append(f"{caller.name:<22} tokens got {got_tokens.status_code}, expected {want_tokens}")
    assert cells == len(CALLERS) * ((len(REPOS) + len(MIRRORED)) * len(OPERATIONS) + 1)
    assert failures == [], "\n".join(failures)


def test_gated_flow_through_huggingface_hub(world: tuple[Server, dict[str, str | None]], tmp_path: Path) -> None:
    server, tokens = world
    gated, public = REPOS["gated"][0], REPOS["pub"][0]
    api = HfApi(endpoint=server.url, token=tokens["owner-write"])
    assert api.model_info(gated).gated == "manual"
    assert [r.username for r in api.list_pending_access_requests(gated)] == ["pete"]
    assert [r.username for r in api.list_accepted_access_requests(gated)] == ["gina"]
    rejected = api.list_rejected_access_requests(gated)
    assert [(r.username, r.status) for r in rejected] == [("rex", "rejected")]
    gus = tokens["gus"]
    with pytest.raises(HfHubHTTPError) as refused:
        hf_hub_download(gated, "a.txt", endpoint=server.url, token=gus, cache_dir=str(tmp_path / "1"))
    assert refused.value.response.headers["X-Error-Code"] == "GatedRepo"
    api.grant_access(gated, "gus")
    assert Path(hf_hub_download(gated, "a.txt", endpoint=server.url, token=gus, cache_dir=str(tmp_path / "2"))).read_bytes() == b"a"
    with pytest.raises(HfHubHTTPError) as twice:
        api.grant_access(gated, "gus")
    assert twice.value.response.status_code == 400
    with pytest.raises(HfHubHTTPError) as not_gated:
        list(api.list_pending_access_requests(public))
    assert not_gated.value.response.status_code == 400
    with pytest.raises(HfHubHTTPError) as reader:
        list(HfApi(endpoint=server.url, token=tokens["member-read"]).list_pending_access_requests(gated))
    assert reader.value.response.status_code == 403
    # accept pete by request id, then he downloads; an "auto" gate accepts at once
    request_id = next(iter(api.list_pending_access_requests(gated))).request_id
    api._handle_access_request(gated, None, request_id, "accepted")
    hf_hub_download(gated, "a.txt", endpoint=server.url, token=tokens["gated-pending"], cache_dir=str(tmp_path / "3"))
    api.update_repo_settings(public, gated="auto")
    asked = http.post(f"{server.url}/{public}/ask-access", headers={"Authorization": f"Bearer {tokens['outsider']}"})
    assert asked.json() == {"status": "accepted"}
    anonymous = http.post(f"{server.url}/{public}/ask-access")
    assert anonymous.status_code == 401
    api.update_repo_settings(public, gated=False)


def test_collaborators_cli_and_api(world: tuple[Server, dict[str, str | None]]) -> None:
    server, tokens = world
    private = REPOS["priv"][0]
    assert cli(server, "repo", "collaborator", "list", private, "--json").splitlines() == [
        '{"user": "cole", "role": "write"}', '{"user": "cora", "role": "read"}']
    owner = {"Authorization": f"Bearer {tokens['owner-write']}"}
    added = http.put(f"{server.url}/api/models/{private}/collaborators/otto", headers=owner, json={"role": "read"})
    assert added.status_code == 200
    otto = {"Authorization": f"Bearer {tokens['outsider']}"}
    assert http.get(f"{server.url}/api/models/{private}", headers=otto).status_code == 200
    assert http.delete(f"{server.url}/api/models/{private}/collaborators/otto", headers=owner).status_code == 200
    gone = http.get(f"{server.url}/api/models/{private}", headers=otto)
    assert (gone.status_code, gone.headers["X-Error-Code"]) == (404, "RepoNotFound")
    bad = http.put(f"{server.url}/api/models/{private}/collaborators/otto", headers=owner, json={"role": "admin"})
    assert bad.status_code == 400


def test_pull_request_diffs_of_a_gated_repo_are_downloads(world: tuple[Server, dict[str, str | None]]) -> None:
    """A diff shows the files' contents: reading it needs what downloading them needs; the
    discussion itself (no diff) stays as visible as the repo."""
    server, tokens = world
    gated = REPOS["gated"][0]
    owner = HfApi(endpoint=server.url, token=tokens["owner-write"])
    num = owner.create_commit(gated, [CommitOperationDelete("a.txt")], commit_message="drop a", create_pr=True).pr_num
    url = f"{server.url}/api/models/{gated}/discussions/{num}"
    cells = {"anonymous": (401, "GatedRepo"), "outsider": (403, "GatedRepo"), "gated-rejected": (403, "GatedRepo"),
             "gated-granted": (200, None), "member-read": (200, None), "collaborator-read": (200, None)}
    for name, want in cells.items():
        headers = {"Authorization": f"Bearer {tokens[name]}"} if tokens[name] else {}
        answer = http.get(url, params={"diff": "1"}, headers=headers)
        assert (answer.status_code, answer.headers.get("X-Error-Code")) == want, name
        assert ("-a" in answer.text) == (want[0] == 200), name
        plain = http.get(url, headers=headers)
        assert plain.status_code == 200 and "diff" not in plain.json(), name

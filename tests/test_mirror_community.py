"""What a mirrored repo shows of its upstream besides files: the model card's metadata (`cardData`)
and the upstream's discussions and pull requests, read-only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from conftest import Server, start_server
from fakehub import FakeHub, start_fakehub
from test_mirror_faults import mirror_of

WHEN = "2026-11-30T10:00:00.000Z"
DISCUSSIONS = [
    {"num": 1, "title": "Which license?", "status": "open", "createdAt": WHEN, "author": {"name": "carol"},
     "isPullRequest": False,
     "events": [{"id": "e1", "type": "comment", "createdAt": WHEN, "author": {"name": "carol"},
                 "data": {"edited": False, "hidden": False, "latest": {"raw": "MIT, really?"}}}]},
    {"num": 2, "title": "Fix config", "status": "merged", "createdAt": WHEN, "author": {"name": "dave"},
     "isPullRequest": True, "changes": {"base": "refs/heads/main", "mergeCommitId": "c" * 40},
     "filesWithConflicts": [], "diff": "diff --git a/config.json b/config.json\n",
     "events": [{"id": "e2", "type": "commit", "createdAt": WHEN, "author": {"name": "dave"},
                 "data": {"subject": "Fix config", "oid": "d" * 40}}]},
]
CARD = b"---\nlicense: mit\ntags:\n- from-the-readme\n---\n# A model\n"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    fake = start_fakehub(tmp_path_factory.mktemp("hub"), xet=False)
    fake.add_repo("hub/carded", {"README.md": CARD, "config.json": "{}"}, xet=False)
    fake.update_repo("hub/carded", card_data={"license": "mit", "tags": ["from-upstream"], "base_model": "hub/base"})
    fake.add_repo("hub/uncarded", {"README.md": CARD}, xet=False)  # an upstream that sends no cardData
    fake.update_repo("hub/carded", discussions=DISCUSSIONS)
    yield fake
    fake.stop()


@pytest.fixture()
def mirror(tmp_path: Path, hub: FakeHub) -> Iterator[Server]:
    hub.reset()
    with mirror_of(tmp_path, hub) as srv:
        yield srv


def test_model_info_carries_the_upstreams_card_data(mirror: Server) -> None:
    info = HfApi(endpoint=mirror.url).model_info("hub/carded")
    assert info.card_data is not None and info.card_data.to_dict() == {
        "license": "mit", "tags": ["from-upstream"], "base_model": "hub/base"}
    assert info.card_data.license == "mit"


def test_without_upstream_card_data_the_cached_readme_is_read(mirror: Server) -> None:
    assert HfApi(endpoint=mirror.url).model_info("hub/uncarded").card_data is None  # not fetched yet: nothing to read
    assert httpx.get(f"{mirror.url}/hub/uncarded/resolve/main/README.md").content == CARD
    info = HfApi(endpoint=mirror.url).model_info("hub/uncarded")
    assert info.card_data is not None and info.card_data.to_dict() == {"license": "mit", "tags": ["from-the-readme"]}


def test_upstream_discussions_are_listed_and_detailed(mirror: Server, hub: FakeHub) -> None:
    api = HfApi(endpoint=mirror.url)
    listed = list(api.get_repo_discussions("hub/carded"))
    assert [(d.num, d.title, d.is_pull_request, d.author) for d in listed] == [
        (1, "Which license?", False, "carol"), (2, "Fix config", True, "dave")]
    assert [d.num for d in api.get_repo_discussions("hub/carded", discussion_type="pull_request")] == [2]
    pr = api.get_discussion_details("hub/carded", 2)
    assert (pr.status, pr.target_branch, pr.merge_commit_oid) == ("merged", "refs/heads/main", "c" * 40)
    assert pr.diff and pr.diff.startswith("diff --git") and pr.events[0].summary == "Fix config"
    assert api.get_discussion_details("hub/carded", 1).events[0].content == "MIT, really?"
    asked = [r for r in hub.requests() if "/discussions" in r["path"]]
    assert asked and all(r["token"] == "hf_good" for r in asked)  # the server's token, to its own upstream
    with pytest.raises(HfHubHTTPError) as missing:
        api.get_discussion_details("hub/carded", 9)
    assert missing.value.response.status_code == 404


def test_upstream_discussions_are_read_only_here(mirror: Server) -> None:
    mirror.add_user("erin")
    api = HfApi(endpoint=mirror.url, token=mirror.token("erin"))
    for write in (lambda: api.create_discussion("hub/carded", title="Hello"),
                  lambda: api.comment_discussion("hub/carded", 1, "me too"),
                  lambda: api.change_discussion_status("hub/carded", 1, "closed"),
                  lambda: api.merge_pull_request("hub/carded", 2)):
        with pytest.raises(HfHubHTTPError) as refused:
            write()
        assert refused.value.response.status_code == 403, refused.value
    assert [d.status for d in api.get_repo_discussions("hub/carded")] == ["open", "merged"]  # nothing changed


def test_without_an_upstream_discussions_say_so(mirror: Server, hub: FakeHub, tmp_path: Path) -> None:
    assert HfApi(endpoint=mirror.url).model_info("hub/carded").sha  # known here from now on
    hub.fault("status", status=503, path="/discussions")
    down = httpx.get(f"{mirror.url}/api/models/hub/carded/discussions")
    assert down.status_code == 503 and down.json()["error"].startswith("Upstream unavailable")
    mirror.stop()
    with start_server(mirror.data, "--offline", config=tmp_path / "hubgate.toml") as offline:
        answer = httpx.get(f"{offline.url}/api/models/hub/carded/discussions")
        assert answer.status_code == 503 and "hubgate runs offline" in answer.json()["error"]


def test_an_upstream_rejecting_the_server_token_is_unavailable_not_missing(tmp_path: Path, hub: FakeHub) -> None:
    """The Hub answers a bad token 401 `Invalid credentials in Authorization header`: hubgate's own
    token is wrong, which the admin must hear of; clients are told the upstream is unavailable."""
    hub.reset()
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
    with mirror_of(tmp_path / "one", hub, token="hf_revoked") as srv:
        answer = httpx.get(f"{srv.url}/api/models/hub/carded")
        assert answer.status_code == 503 and answer.json()["error"].startswith("Upstream unavailable"), answer.text
        assert "x-error-code" not in answer.headers  # not RepoNotFound: the repo may well exist
        with pytest.raises(HfHubHTTPError) as caught:
            HfApi(endpoint=srv.url).model_info("hub/carded")
        assert caught.value.response.status_code == 503 and not isinstance(caught.value, RepositoryNotFoundError)
        status = httpx.get(f"{srv.url}/api/mirror/status", headers=srv.admin_headers()).json()
        assert "rejects the configured token" in status["upstreams"][0]["lastError"]
        assert any("rejects the configured token" in line and "hf_revoked" not in line for line in srv.log)
    # with another upstream that takes the token, that one serves
    other = start_fakehub(tmp_path / "other", xet=False, tokens={"hf_revoked": "alice"})
    try:
        other.add_repo("hub/carded", {"config.json": "{}"}, xet=False)
        with mirror_of(tmp_path / "two", hub, other, token="hf_revoked") as srv:
            assert httpx.get(f"{srv.url}/hub/carded/resolve/main/config.json").content == b"{}"
    finally:
        other.stop()

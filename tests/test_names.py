"""Repo names as the Hub resolves them: letter case, moved repos, legacy one-segment ids, renames."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download

from conftest import Server
from fakehub import FakeHub, start_fakehub
from test_mirror_faults import mirror_of

WEIGHTS = os.urandom(2 * 1024 * 1024)


def test_hosted_ids_are_case_insensitive_and_answer_with_their_spelling(server: Server, alice_token: str, tmp_path: Path) -> None:
    name = f"alice/Case-{uuid.uuid4().hex[:6]}"
    api = HfApi(endpoint=server.url, token=alice_token)
    api.create_repo(name)
    api.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id=name)
    info = httpx.get(f"{server.url}/api/models/{name.lower()}", headers={"Authorization": f"Bearer {alice_token}"})
    assert info.status_code == 200 and info.json()["id"] == name
    path = hf_hub_download(name.upper().replace("ALICE", "Alice"), "a.txt", endpoint=server.url, token=alice_token,
                           cache_dir=tmp_path)
    assert Path(path).read_bytes() == b"hello"
    with pytest.raises(Exception, match="already"):
        api.create_repo(name.lower())  # the same repo in other letters


def test_a_moved_repo_redirects_from_its_old_name(server: Server, alice_token: str, tmp_path: Path) -> None:
    old, new = f"alice/old-{uuid.uuid4().hex[:6]}", f"alice/new-{uuid.uuid4().hex[:6]}"
    api = HfApi(endpoint=server.url, token=alice_token)
    api.create_repo(old)
    api.upload_file(path_or_fileobj=b"moved", path_in_repo="f.txt", repo_id=old)
    api.move_repo(old, new)
    auth = {"Authorization": f"Bearer {alice_token}"}
    answer = httpx.get(f"{server.url}/api/models/{old}/revision/main?expand=sha", headers=auth)
    assert answer.status_code == 307 and answer.headers["location"] == f"/api/models/{new}/revision/main?expand=sha"
    resolve = httpx.head(f"{server.url}/{old}/resolve/main/f.txt", headers=auth)
    assert resolve.status_code == 307 and resolve.headers["location"] == f"/{new}/resolve/main/f.txt"
    assert api.model_info(old).id == new  # clients follow the redirect
    path = hf_hub_download(old, "f.txt", endpoint=server.url, token=alice_token, cache_dir=tmp_path)
    assert Path(path).read_bytes() == b"moved"
    api.create_repo(old)  # the old name can be taken again; then it is that repo
    assert api.model_info(old).id == old
    assert httpx.get(f"{server.url}/api/models/{old}", headers=auth).status_code == 200


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    fake = start_fakehub(tmp_path_factory.mktemp("hub"), xet=False)
    fake.add_repo("openai-community/gpt2", {"config.json": '{"n_layer": 12}', "model.safetensors": WEIGHTS}, xet=False)
    fake.add_alias("gpt2", "openai-community/gpt2")
    fake.add_repo("new-org/renamed", {"config.json": '{"renamed": true}'}, xet=False)
    fake.add_alias("old-org/renamed", "new-org/renamed")
    yield fake
    fake.stop()


@pytest.fixture()
def mirror(tmp_path: Path, hub: FakeHub) -> Iterator[Server]:
    hub.reset()
    srv = mirror_of(tmp_path, hub, token=None)
    yield srv
    srv.stop()


def test_legacy_ids_are_served_under_the_name_asked_and_cached_once(mirror: Server, hub: FakeHub, tmp_path: Path) -> None:
    path = hf_hub_download("gpt2", "model.safetensors", endpoint=mirror.url, cache_dir=tmp_path / "a")
    assert Path(path).read_bytes() == WEIGHTS
    assert HfApi(endpoint=mirror.url).model_info("gpt2").id == "openai-community/gpt2"
    direct = httpx.get(f"{mirror.url}/gpt2/resolve/main/config.json")
    assert direct.status_code == 200 and direct.json() == {"n_layer": 12}  # no redirect to the client
    again = hf_hub_download("openai-community/gpt2", "model.safetensors", endpoint=mirror.url, cache_dir=tmp_path / "b")
    assert Path(again).read_bytes() == WEIGHTS
    assert len(hub.fetches(sha256=hashlib.sha256(WEIGHTS).hexdigest())) == 1  # one copy, one fetch
    status = httpx.get(f"{mirror.url}/api/mirror/status", headers=mirror.admin_headers()).json()
    assert status["cache"]["files"] == 2  # config.json and the weights, once


def test_renamed_upstream_repos_follow_the_redirect(mirror: Server, tmp_path: Path) -> None:
    path = hf_hub_download("old-org/renamed", "config.json", endpoint=mirror.url, cache_dir=tmp_path)
    assert Path(path).read_text() == '{"renamed": true}'
    assert HfApi(endpoint=mirror.url).model_info("old-org/renamed").id == "new-org/renamed"


def test_a_name_upstream_resolves_into_a_local_namespace_is_not_served(hub: FakeHub, tmp_path: Path) -> None:
    hub.add_repo("team/model", {"config.json": '{"upstream": true}'}, xet=False)
    hub.add_alias("elsewhere/model", "team/model")
    srv = mirror_of(tmp_path, hub, token=None)
    try:
        srv.add_user("team")  # `team` is a local namespace here: upstream's team/... must not show through
        assert httpx.get(f"{srv.url}/api/models/elsewhere/model").status_code in (401, 404)
        assert httpx.get(f"{srv.url}/elsewhere/model/resolve/main/config.json").status_code in (401, 404)
    finally:
        srv.stop()

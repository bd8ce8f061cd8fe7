"""Errors as the Hub sends them: the statuses, X-Error-Code and words huggingface_hub reacts to."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationDelete, HfApi, hf_hub_download
from huggingface_hub.errors import (
    DisabledRepoError,
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
)

from clients.harness import client_env
from conftest import Server
from fakehub import FakeHub, start_fakehub
from ndjson_commit import commit_files
from test_client_matrix import client_venvs, venv_for  # noqa: F401 - fixture reuse
from test_mirror_faults import mirror_of


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    fake = start_fakehub(tmp_path_factory.mktemp("hub"), xet=False)
    fake.add_repo("hub/disabled", {"config.json": "{}"}, xet=False)
    fake.add_repo("hub/refusing", {"config.json": "{}", "weights.bin": b"w" * 3_000_000}, xet=False)
    yield fake
    fake.stop()


@pytest.fixture()
def mirror(tmp_path: Path, hub: FakeHub) -> Iterator[Server]:
    hub.reset()
    srv = mirror_of(tmp_path, hub, token=None)
    yield srv
    srv.stop()
    hub.reset()


def test_a_cold_file_the_upstream_refuses_gets_its_status_and_code(mirror: Server, hub: FakeHub, tmp_path: Path) -> None:
    assert httpx.get(f"{mirror.url}/api/models/hub/refusing/tree/main").status_code == 200  # the tree lists it
    hub.fault("status", status=403, on=["resolve"], file="weights.bin", headers={"X-Error-Code": "GatedRepo"},
              body="Access to model hub/refusing is restricted and you are not in the authorized list.")
    started = time.monotonic()
    answer = httpx.get(f"{mirror.url}/hub/refusing/resolve/main/weights.bin")
    assert answer.status_code == 403 and answer.headers["x-error-code"] == "GatedRepo"  # not a 200 that breaks
    assert time.monotonic() - started < 10
    with pytest.raises(GatedRepoError):
        hf_hub_download("hub/refusing", "weights.bin", endpoint=mirror.url, cache_dir=tmp_path)
    hub.reset()
    hub.fault("not_found", on=["resolve"], file="config.json")  # a bare 404 after the tree listed the file
    missing = httpx.get(f"{mirror.url}/hub/refusing/resolve/main/config.json")
    assert missing.status_code == 404 and missing.headers["x-error-code"] == "EntryNotFound"
    hub.reset()
    hub.fault("status", status=503, on=["resolve"], file="config.json")
    down = httpx.get(f"{mirror.url}/hub/refusing/resolve/main/config.json")
    assert down.status_code == 503 and "X-Amz" not in down.text


def test_deleting_a_missing_file_says_what_the_client_looks_for(server: Server, alice_token: str) -> None:
    api = HfApi(endpoint=server.url, token=alice_token)
    repo = f"alice/errors-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo)
    with pytest.raises(EntryNotFoundError) as caught:
        api.create_commit(repo, [CommitOperationDelete("nope.txt")], commit_message="delete")
    # huggingface_hub adds its hint about folders when it finds the Hub's words in the error
    assert "A file with this name doesn't exist" in str(caught.value)
    assert "is_folder=True/False" in str(caught.value)


def test_conflicts_answer_409_so_exist_ok_works(server: Server, alice_token: str) -> None:
    api = HfApi(endpoint=server.url, token=alice_token)
    repo = f"alice/errors-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo)
    api.create_repo(repo, exist_ok=True)
    api.create_branch(repo, branch="dev")
    api.create_branch(repo, branch="dev", exist_ok=True)
    api.create_tag(repo, tag="v1")
    api.create_tag(repo, tag="v1", exist_ok=True)
    answer = httpx.post(f"{server.url}/api/repos/create", json={"name": repo.split("/")[1], "organization": "alice"},
                        headers={"Authorization": f"Bearer {alice_token}"})
    assert answer.status_code == 409 and answer.json()["error"] == "You already created this model repo"


def test_a_repo_disabled_upstream_is_disabled_here(mirror: Server, hub: FakeHub, tmp_path: Path) -> None:
    # The Hub says it only in X-Error-Message; huggingface_hub raises DisabledRepoError on those exact words.
    hub.fault("status", status=403, path="hub/disabled", headers={"X-Error-Message": "Access to this resource is disabled."},
              body='{"error": "Access to this resource is disabled."}')
    answer = httpx.get(f"{mirror.url}/api/models/hub/disabled")
    assert answer.status_code == 403 and answer.headers["x-error-message"] == "Access to this resource is disabled."
    with pytest.raises(DisabledRepoError):
        HfApi(endpoint=mirror.url).model_info("hub/disabled")
    # hf_hub_download, as against the Hub, wraps any refusal but 401/RepoNotFound/gated in LocalEntryNotFoundError
    with pytest.raises(LocalEntryNotFoundError) as caught:
        hf_hub_download("hub/disabled", "config.json", endpoint=mirror.url, cache_dir=tmp_path)
    assert isinstance(caught.value.__cause__, DisabledRepoError)


def test_invalid_card_metadata_is_refused_with_the_hubs_words(server: Server, alice_token: str) -> None:
    api = HfApi(endpoint=server.url, token=alice_token)
    repo = f"alice/errors-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo)
    card = b"---\nlicense: [1, 2]\n---\n# card\n"
    with pytest.raises(ValueError, match="Invalid metadata in README.md.") as caught:  # the client's own check first
        api.upload_file(path_or_fileobj=card, path_in_repo="README.md", repo_id=repo)
    assert '"license" must be a string or a list of strings' in str(caught.value)
    # a client that skips validate-yaml meets the same words at commit
    answer = commit_files(server.url, alice_token, repo, {"README.md": card})
    assert answer.status_code == 400 and answer.json()["error"].startswith("Invalid metadata in README.md.")


@pytest.mark.parametrize("path", ["a/./b.txt", "a//b.txt", "a\\b.txt", "dir /b.txt", "sub/.git/x"])
def test_an_invalid_path_in_an_upload_is_refused_with_422(server: Server, alice_token: str, path: str) -> None:
    api = HfApi(endpoint=server.url, token=alice_token)
    repo = f"alice/errors-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo)
    if path != "sub/.git/x":  # huggingface_hub refuses `.git` folders itself; the others reach the server
        with pytest.raises(HfHubHTTPError) as caught:
            api.upload_file(path_or_fileobj=b"x", path_in_repo=path, repo_id=repo)
        assert caught.value.response.status_code == 422 and "Invalid path" in str(caught.value)
    headers = {"Authorization": f"Bearer {alice_token}"}
    preupload = httpx.post(f"{server.url}/api/models/{repo}/preupload/main", headers=headers,
                           json={"files": [{"path": path, "sample": "eA==", "size": 1}]})
    assert preupload.status_code == 422 and preupload.json()["error"].startswith("Invalid path")
    answer = commit_files(server.url, alice_token, repo, {path: b"x"})
    assert answer.status_code == 422 and answer.json()["error"].startswith("Invalid path")
    assert [f for f in api.list_repo_files(repo) if f != ".gitattributes"] == []


GATED_DOWNLOAD = """
import sys
from huggingface_hub import hf_hub_download
try:
    hf_hub_download(sys.argv[1], "file.txt", token=sys.argv[2] or False)
except Exception as exc:
    print("RAISED", type(exc).__name__, exc)
"""


@pytest.mark.clients
@pytest.mark.parametrize("version", ["0.36.2", "1.33.0", "2.4.0"])
def test_gated_refusals_say_the_hubs_words(version: str, client_venvs, server: Server, alice_token: str,  # noqa: F811
                                           bob_token: str, tmp_path: Path) -> None:
    """The Hub's texts (seen on huggingface.co): huggingface_hub raises GatedRepoError on the code
    and shows the words after its own `Cannot access gated repo for url ...`."""
    api = HfApi(endpoint=server.url, token=alice_token)
    repo = f"alice/gated-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"gated", path_in_repo="file.txt", repo_id=repo)
    api.update_repo_settings(repo, gated="manual")
    python = venv_for(client_venvs, version).python

    def refusal(token: str) -> str:
        done = subprocess.run([str(python), "-c", GATED_DOWNLOAD, repo, token], capture_output=True, text=True,
                              env=client_env(server.url, tmp_path / "home"), timeout=120, check=False)
        assert done.stdout.startswith("RAISED GatedRepoError"), done.stdout + done.stderr
        assert f"Cannot access gated repo for url {server.url}/{repo}/resolve/main/file.txt" in done.stdout
        return done.stdout

    assert (f"Access to model {repo} is restricted. You must have access to it and be authenticated to access it. "
            "Please log in.") in refusal("")
    assert (f"Access to model {repo} is restricted and you are not in the authorized list. "
            f"Visit {server.url}/{repo} to ask for access.") in refusal(bob_token)
    assert httpx.post(f"{server.url}/{repo}/ask-access", headers={"Authorization": f"Bearer {bob_token}"}).is_success
    assert f"Your request to access model {repo} is awaiting a review from the repo authors." in refusal(bob_token)


def test_gated_refusals_name_the_repo_kind(server: Server, alice_token: str, bob_token: str) -> None:
    api = HfApi(endpoint=server.url, token=alice_token)
    repo = f"alice/gated-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"gated", path_in_repo="file.txt", repo_id=repo, repo_type="dataset")
    api.update_repo_settings(repo, gated="auto", repo_type="dataset")
    answer = httpx.get(f"{server.url}/datasets/{repo}/resolve/main/file.txt", headers={"Authorization": f"Bearer {bob_token}"})
    assert (answer.status_code, answer.headers["x-error-code"]) == (403, "GatedRepo")
    assert answer.json()["error"] == (f"Access to dataset {repo} is restricted and you are not in the authorized list. "
                                      f"Visit {server.url}/datasets/{repo} to ask for access.")
    assert answer.headers["x-error-message"] == answer.json()["error"]

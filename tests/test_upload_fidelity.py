"""Upload fidelity: preupload's shouldIgnore from .gitignore, unchanged files not sent again, and
README.md metadata checked at commit, as on the Hub (huggingface_hub's own upload_folder)."""

from __future__ import annotations

import base64
import json
import os
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import BadRequestError

from conftest import Server


def new_repo(server: Server, token: str) -> tuple[HfApi, str]:
    api = HfApi(endpoint=server.url, token=token)
    repo = f"alice/up-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo)
    return api, repo


def test_gitignored_paths_are_not_uploaded(server: Server, alice_token: str, tmp_path: Path) -> None:
    api, repo = new_repo(server, alice_token)
    api.create_commit(repo, [CommitOperationAdd(".gitignore", b"*.log\nsecret/\n")], commit_message="ignore")
    folder = tmp_path / "folder"
    (folder / "secret").mkdir(parents=True)
    (folder / "model.txt").write_text("weights")
    (folder / "debug.log").write_text("noise")
    (folder / "secret" / "key.txt").write_text("k")
    api.upload_folder(folder_path=folder, repo_id=repo)
    assert sorted(api.list_repo_files(repo)) == [".gitattributes", ".gitignore", "model.txt"]
    # A .gitignore in the folder itself is what counts for that upload (the client sends it along).
    (folder / ".gitignore").write_text("*.txt\n")
    (folder / "new.txt").write_text("new")
    (folder / "kept.bin").write_bytes(b"\0bin")
    api.upload_folder(folder_path=folder, repo_id=repo)
    files = sorted(api.list_repo_files(repo))
    assert "new.txt" not in files and "kept.bin" in files and "debug.log" in files


def test_reuploading_a_folder_sends_only_what_changed(server: Server, alice_token: str, tmp_path: Path) -> None:
    api, repo = new_repo(server, alice_token)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "model.safetensors").write_bytes(os.urandom(200_000))  # stored as LFS (.gitattributes)
    (folder / "notes.md").write_text("notes")
    api.upload_folder(folder_path=folder, repo_id=repo)
    commits = len(api.list_repo_commits(repo))
    api.upload_folder(folder_path=folder, repo_id=repo)  # nothing changed: nothing sent, no commit
    assert len(api.list_repo_commits(repo)) == commits
    (folder / "notes.md").write_text("notes, edited")
    api.upload_folder(folder_path=folder, repo_id=repo)
    head = api.list_repo_commits(repo)[0]
    assert len(api.list_repo_commits(repo)) == commits + 1
    changed = httpx.get(f"{server.url}/api/models/{repo}/preupload/main", headers={"Authorization": f"Bearer {alice_token}"})
    assert changed.status_code in (404, 405)  # preupload is POST only
    answer = httpx.post(f"{server.url}/api/models/{repo}/preupload/{head.commit_id}",
                        json={"files": [{"path": "model.safetensors", "size": 200_000, "sample": ""}]},
                        headers={"Authorization": f"Bearer {alice_token}"}).json()
    assert answer["files"][0]["oid"]  # the client compares it with its own: equal means unchanged


def test_readme_metadata_is_checked_at_commit(server: Server, alice_token: str) -> None:
    api, repo = new_repo(server, alice_token)
    good = b"---\nlicense: mit\ntags:\n- text\n---\n# Model\n"
    api.upload_file(path_or_fileobj=good, path_in_repo="README.md", repo_id=repo)
    for bad in (b"---\nlicense: [mit\n---\n# Broken YAML\n", b"---\ntags: {a: 1}\n---\n# Wrong type\n",
                b"---\n- just\n- a list\n---\n"):
        # huggingface_hub asks /api/validate-yaml first (ValueError); the commit itself is checked too.
        with pytest.raises((BadRequestError, ValueError), match="Invalid metadata in README.md"):
            api.upload_file(path_or_fileobj=bad, path_in_repo="README.md", repo_id=repo)
        lines = [{"key": "header", "value": {"summary": "card"}},
                 {"key": "file", "value": {"path": "README.md", "encoding": "base64",
                                           "content": base64.b64encode(bad).decode()}}]
        raw = httpx.post(f"{server.url}/api/models/{repo}/commit/main", content="\n".join(map(json.dumps, lines)),
                         headers={"Authorization": f"Bearer {alice_token}", "Content-Type": "application/x-ndjson"})
        assert raw.status_code == 400 and raw.json()["error"].startswith("Invalid metadata in README.md.\n- ")
    kept = httpx.get(f"{server.url}/{repo}/resolve/main/README.md", headers={"Authorization": f"Bearer {alice_token}"})
    assert kept.content == good  # no bad card got in


def test_repo_info_carries_the_card_metadata(server: Server, alice_token: str) -> None:
    api, repo = new_repo(server, alice_token)
    assert api.model_info(repo).card_data is None  # no README.md yet
    card = b"---\nlicense: mit\nlanguage: [en, fr]\ntags: [demo]\ndate: 2024-05-01\n---\n# A model\n"
    api.upload_file(path_or_fileobj=card, path_in_repo="README.md", repo_id=repo)
    info = api.model_info(repo)  # huggingface_hub builds ModelCardData from the info's cardData
    assert info.card_data is not None
    assert info.card_data.license == "mit" and info.card_data.language == ["en", "fr"] and info.card_data.tags == ["demo"]
    raw = httpx.get(f"{server.url}/api/models/{repo}", headers={"Authorization": f"Bearer {alice_token}"}).json()
    assert raw["cardData"]["date"] == "2024-05-01"
    api.upload_file(path_or_fileobj=b"# no metadata\n", path_in_repo="README.md", repo_id=repo)
    assert "cardData" not in httpx.get(f"{server.url}/api/models/{repo}",
                                       headers={"Authorization": f"Bearer {alice_token}"}).json()

"""The basic round trip with the installed huggingface_hub (2.4.0)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import RepositoryNotFoundError

from conftest import Server


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "upload"
    (root / "sub").mkdir(parents=True)
    (root / "README.md").write_text("---\nlicense: mit\n---\n# hello\n")
    (root / "config.json").write_text('{"hidden_size": 4}')
    (root / "sub" / "weights.bin").write_bytes(os.urandom(300_000))
    return root


def test_upload_then_download_by_branch_tag_and_commit(server: Server, alice_token: str, folder: Path, tmp_path: Path) -> None:
    api = HfApi(endpoint=server.url, token=alice_token)
    api.create_repo("alice/smoke", private=True)
    info = api.upload_folder(folder_path=folder, repo_id="alice/smoke")
    api.create_tag("alice/smoke", tag="v1")
    for revision in ("main", "v1", info.oid):
        path = hf_hub_download("alice/smoke", "sub/weights.bin", revision=revision, endpoint=server.url,
                               token=alice_token, cache_dir=tmp_path / f"cache-{revision}")
        assert Path(path).read_bytes() == (folder / "sub" / "weights.bin").read_bytes()
    snapshot = snapshot_download("alice/smoke", endpoint=server.url, token=alice_token, cache_dir=tmp_path / "snap")
    assert (Path(snapshot) / "config.json").read_text() == '{"hidden_size": 4}'
    assert sorted(api.list_repo_files("alice/smoke")) == [".gitattributes", "README.md", "config.json", "sub/weights.bin"]


def test_private_repo_hidden_from_anonymous_and_outsiders(server: Server, alice_token: str, bob_token: str) -> None:
    HfApi(endpoint=server.url, token=alice_token).create_repo("alice/secret", private=True)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=server.url, token=False).model_info("alice/secret")
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=server.url, token=bob_token).model_info("alice/secret")

"""Lock-bound deploy tokens: `hubgate token create USER --lock hubgate.lock` downloads only what the lock names."""

from __future__ import annotations

from pathlib import Path

import httpx
from huggingface_hub import CommitOperationAdd, HfApi

from conftest import Server
from test_client_lock import hubgate


def test_a_lock_bound_token_downloads_only_the_locked_files(server: Server, alice_token: str, tmp_path: Path) -> None:
    api = HfApi(endpoint=server.url, token=alice_token)
    api.create_repo("alice/fleet-model", private=True)
    locked = api.create_commit("alice/fleet-model", [CommitOperationAdd("config.json", b'{"v": 1}'),
                                                     CommitOperationAdd("weights.bin", b"w1" * 1000),
                                                     CommitOperationAdd("draft.txt", b"not for prod")],
                               commit_message="v1").oid
    api.create_tag("alice/fleet-model", tag="prod", revision=locked)
    api.create_repo("alice/other-model")
    api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/other-model")
    done = hubgate("lock", "alice/fleet-model@prod", "--exclude", "draft.txt", "--endpoint", f"{server.url}#T",
                   cwd=tmp_path, env={"T": alice_token})
    assert done.returncode == 0, done.stderr
    created = server.cli("token", "create", "alice", "--lock", str(tmp_path / "hubgate.lock"), "--name", "fleet")
    assert "locked to alice/fleet-model@" in created.stdout
    deploy = created.stdout.strip().splitlines()[-1]

    pulled = hubgate("pull", "--cache-dir", tmp_path / "c", "-q", cwd=tmp_path, env={"T": deploy})
    assert pulled.returncode == 0, pulled.stderr
    headers = {"Authorization": f"Bearer {deploy}"}
    base = f"{server.url}/alice/fleet-model/resolve"
    assert httpx.get(f"{base}/prod/config.json", headers=headers).content == b'{"v": 1}'  # by the locked tag
    assert httpx.get(f"{server.url}/api/models/alice/fleet-model/revision/prod", headers=headers).status_code == 200

    moved = api.create_commit("alice/fleet-model", [CommitOperationAdd("config.json", b'{"v": 2}')], commit_message="v2").oid
    api.delete_tag("alice/fleet-model", tag="prod")
    api.create_tag("alice/fleet-model", tag="prod", revision=moved)
    refusals = {
        "a file the lock leaves out": f"{base}/{locked}/draft.txt",
        "a commit the lock does not name": f"{base}/{moved}/config.json",
        "a tag that moved": f"{base}/prod/weights.bin",
        "another repo": f"{server.url}/alice/other-model/resolve/main/x.txt",
    }
    for what, url in refusals.items():
        response = httpx.get(url, headers=headers)
        assert response.status_code == 403, (what, response.status_code)
        assert "bound to a lock" in response.json()["error"], what
    assert httpx.get(f"{base}/{locked}/weights.bin", headers=headers).content == b"w1" * 1000
    batch = httpx.post(f"{server.url}/alice/fleet-model.git/info/lfs/objects/batch", headers=headers,
                       json={"operation": "download", "objects": [{"oid": "0" * 64, "size": 1}]})
    assert batch.status_code == 403 and "bound to a lock" in batch.text
    num = api.create_commit("alice/fleet-model", [CommitOperationAdd("draft.txt", b"v3")], commit_message="v3",
                            create_pr=True).pr_num
    diff = httpx.get(f"{server.url}/api/models/alice/fleet-model/discussions/{num}?diff=1", headers=headers)
    assert diff.status_code == 403 and "bound to a lock" in diff.json()["error"]  # files by commit and path only
    minted = httpx.post(f"{server.url}/api/tokens", headers=headers, json={"role": "write"})
    assert minted.status_code == 403  # no broader token from a lock-bound one
    writer = HfApi(endpoint=server.url, token=deploy)
    upload = httpx.post(f"{server.url}/api/models/alice/fleet-model/preupload/main", headers=headers, json={"files": []})
    assert upload.status_code == 403 and "bound to a lock" in upload.json()["error"]
    assert writer.whoami()["name"] == "alice"

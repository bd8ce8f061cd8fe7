"""Real huggingface_hub releases (0.36, 1.19, 1.33, 2.4) against real hubgate servers.

Each client runs `clients/scenario.py` in its own venv (see `venvs.py`, built once under
`.venvs/`): a private repo is created, uploaded to, downloaded from by branch, tag and commit,
listed, branched, tagged, hidden from outsiders and deleted. The server's access log then shows
which upload path the client took:

- up to 1.19 the client asks the LFS batch endpoint and PUTs to the presigned URL it gets, and
  never asks for a Xet token;
- from 1.20 (hf_xet installed) the client sends "lfs" files through hubgate's Xet CAS: it asks
  `xet-write-token`, and never the LFS batch endpoint (tests/test_xet_clients.py has the details);
- with `HF_HUB_DISABLE_XET=1` those clients take the LFS batch path again.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from clients.harness import run_scenario, synced_requests, upload_paths
from conftest import Server
from venvs import CLIENTS, Venv, ensure_many

pytestmark = pytest.mark.clients

# (client version, the upload path the server must see it take)
MATRIX = [("0.36.2", "lfs"), ("1.19.0", "lfs"), ("1.33.0", "xet"), ("2.4.0", "xet")]


@pytest.fixture(scope="session")
def client_venvs() -> dict[str, Venv | BaseException]:
    """Every client venv, built in parallel on first use and reused afterwards."""
    return ensure_many(list(CLIENTS.values()))


def venv_for(client_venvs: dict[str, Venv | BaseException], version: str) -> Venv:
    found = client_venvs[CLIENTS[version].name]
    if isinstance(found, BaseException):
        pytest.fail(f"could not build the venv for huggingface_hub {version}:\n{found}")
    return found


def repo_name(version: str) -> str:
    return f"matrix-{version.replace('.', '-')}-{uuid.uuid4().hex[:8]}"


def assert_upload_path(server: Server, since: int, result: dict, expected: str) -> None:
    """The access log shows every LFS file of the scenario uploaded by `expected` ('lfs'|'xet')."""
    requests = synced_requests(server, since)
    targets = [
        (result["repo_id"], "model", list(result["lfs_oids"].values())),
        (result["dataset"]["repo_id"], "dataset", list(result["dataset"]["lfs_oids"].values())),
    ]
    for repo_id, repo_type, oids in targets:
        seen = upload_paths(requests, repo_id, oids, repo_type)
        summary = {kind: [f"{r.method} {r.target} {r.status}" for r in found] for kind, found in seen.items()}
        # The model repo gets 3 commits with additions and 1 deletion, and the outsider's upload is
        # refused at preupload (404); the dataset repo gets one upload.
        preuploads, commits = ([200, 200, 200, 404], [200] * 4) if repo_type == "model" else ([200], [200])
        assert sorted(r.status for r in seen["preupload"]) == preuploads, summary
        assert [r.status for r in seen["commit"]] == commits, summary
        if expected == "lfs":
            assert seen["xet"] == [], f"{repo_id}: the client asked for a Xet token: {summary}"
            assert seen["batch"] and all(r.status == 200 for r in seen["batch"]), summary
            uploaded = {oid for oid in oids if any(oid in r.target and r.status == 200 for r in seen["put"])}
            assert uploaded == set(oids), f"{repo_id}: LFS objects not PUT to their presigned URL: {summary}"
            assert len(seen["verify"]) == len(oids) and all(r.status == 200 for r in seen["verify"]), summary
        else:
            assert seen["xet"] and all(r.status == 200 for r in seen["xet"]), summary
            assert seen["batch"] == [] and seen["put"] == [] and seen["verify"] == [], (
                f"{repo_id}: expected Xet uploads only: {summary}"
            )


@pytest.mark.parametrize(("version", "expected_path"), MATRIX, ids=[f"hf_hub-{v}" for v, _ in MATRIX])
def test_client_round_trip(
    version: str,
    expected_path: str,
    server: Server,
    alice_token: str,
    bob_token: str,
    client_venvs: dict[str, Venv | BaseException],
    tmp_path: Path,
) -> None:
    venv = venv_for(client_venvs, version)
    since = len(server.log)
    run = run_scenario(venv.python, server.url, alice_token, bob_token, repo_name(version), tmp_path)
    assert run.returncode == 0, run.describe()
    assert run.result is not None and run.result["version"] == version, run.describe()
    assert_upload_path(server, since, run.result, expected_path)


@pytest.mark.parametrize("version", ["2.4.0", "1.33.0"], ids=lambda v: f"hf_hub-{v}")
def test_xet_client_with_xet_disabled_takes_lfs_batch_path(
    version: str,
    server: Server,
    alice_token: str,
    bob_token: str,
    client_venvs: dict[str, Venv | BaseException],
    tmp_path: Path,
) -> None:
    venv = venv_for(client_venvs, version)
    since = len(server.log)
    run = run_scenario(venv.python, server.url, alice_token, bob_token, repo_name(version), tmp_path, HF_HUB_DISABLE_XET="1")
    assert run.returncode == 0, run.describe()
    assert run.result is not None and run.result["version"] == version, run.describe()
    assert_upload_path(server, since, run.result, "lfs")
    # Not one request of any kind asked for Xet (downloads of LFS-uploaded files included).
    xet = [r for r in synced_requests(server, since) if "/xet-" in r.target.lower()]
    assert xet == [], xet

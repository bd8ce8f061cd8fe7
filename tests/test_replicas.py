"""Three hubgate replicas on one PostgreSQL database and one S3 bucket behind nginx (issue 10):
what one replica writes, every other serves, to each client version, in proxy and redirect mode;
a replica killed mid-upload leaves nothing partial anywhere while the others keep serving; gc and
fsck run from one replica while another serves."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi

from clients.harness import client_env
from processes import until
from replicas import Cluster, start_replicas
from seaweed import BUCKET, PART
from test_s3_blobs import lfs_upload_href, stalled_upload
from venvs import CLIENTS, ensure

VERSIONS = ["0.36.2", "1.19.0", "2.4.0"]
ROUND_TRIP = """
import hashlib, json, os, sys
from huggingface_hub import HfApi, hf_hub_download
up, down, balancer, token, repo, folder = sys.argv[1:7]
HfApi(endpoint=up, token=token).create_repo(repo)
HfApi(endpoint=up, token=token).upload_folder(folder_path=folder, repo_id=repo, commit_message="through one replica")
out = {}
for name in sorted(os.listdir(folder)):
    for label, endpoint in (("replica", down), ("balancer", balancer)):
        path = hf_hub_download(repo, name, endpoint=endpoint, token=token, cache_dir=os.path.join("cache", label))
        out[label + "/" + name] = hashlib.sha256(open(path, "rb").read()).hexdigest()
info = HfApi(endpoint=down, token=token).model_info(repo, files_metadata=True)
out["lfs"] = {s.rfilename: bool(s.lfs) for s in info.siblings}
print("RESULT " + json.dumps(out))
"""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module", params=["proxy", "redirect"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with start_replicas(tmp_path_factory.mktemp(f"replicas-{request.param}"), serve=request.param) as started:
        yield started


def test_the_balancer_spreads_requests_and_passes_over_a_killed_replica(cluster: Cluster) -> None:
    before = len(cluster.served_by())
    for _ in range(6):
        assert httpx.get(f"{cluster.url}/healthz", timeout=30).status_code == 200
    assert {address.rsplit(":", 1)[1] for address in cluster.served_by()[before:]} == {str(p) for p in cluster.ports}
    cluster.kill(1)
    for _ in range(6):
        assert httpx.get(f"{cluster.url}/api/models", timeout=30).status_code == 200
    restarted = cluster.restart(1)
    assert httpx.get(f"{restarted.url}/readyz", timeout=30).status_code == 200
    assert restarted.url == cluster.urls[1]


def test_a_link_signed_by_one_replica_is_honoured_by_another(cluster: Cluster) -> None:
    """Every replica has the same server key (HUBGATE_SECRET_KEY): an LFS upload link one replica
    signed is accepted by another, and a tampered one by none."""
    token = cluster.token("alice")
    auth = {"Authorization": f"Bearer {token}"}
    httpx.post(f"{cluster.urls[0]}/api/repos/create", json={"name": "signed", "organization": "alice"},
               headers=auth, timeout=30).raise_for_status()
    data = os.urandom(300_000)
    href = lfs_upload_href(cluster.servers[0], token, "alice/signed", sha256(data), len(data))
    assert href.startswith(cluster.urls[0] + "/")
    tampered = href[:-1] + ("0" if href[-1] != "0" else "1")
    assert httpx.put(tampered.replace(cluster.urls[0], cluster.urls[2]), content=data, timeout=60).status_code == 403
    moved = href.replace(cluster.urls[0], cluster.urls[1])
    assert httpx.put(moved, content=data, timeout=60).status_code == 200
    assert any(key.endswith(sha256(data)) for key in cluster.blob_keys())
    key = cluster.env["HUBGATE_SECRET_KEY"]
    assert not any(key in "".join(server.log) for server in cluster.servers)  # the key is never logged


@pytest.mark.clients
@pytest.mark.parametrize("version", VERSIONS)
def test_upload_through_one_replica_download_through_another(cluster: Cluster, version: str, tmp_path: Path) -> None:
    """huggingface_hub VERSION uploads (LFS batch path, multipart on S3) through replica i and
    downloads every file through replica i+1 and through nginx: the same bytes, LFS where due."""
    venv = ensure(CLIENTS[version])
    files = {"weights.bin": os.urandom(PART + 123_457), "tokenizer.json": os.urandom(150_000), "config.json": b'{"d": 4}\n'}
    folder = tmp_path / "upload"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    first = VERSIONS.index(version)
    up, down = cluster.urls[first], cluster.urls[(first + 1) % len(cluster.urls)]
    repo = f"alice/round-trip-{version.replace('.', '-')}"
    env = client_env(up, tmp_path / "home", HF_HUB_DISABLE_XET="1")  # the client checks the URLs it gets against HF_ENDPOINT
    done = subprocess.run([str(venv.python), "-c", ROUND_TRIP, up, down, cluster.url, cluster.token("alice"), repo, str(folder)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr + "".join(cluster.servers[first].log[-60:])
    out = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[len("RESULT "):])
    for name, data in files.items():
        assert out[f"replica/{name}"] == out[f"balancer/{name}"] == sha256(data), name
    assert out["lfs"] == {".gitattributes": False, "weights.bin": True, "tokenizer.json": False, "config.json": False}
    assert f"blobs/{sha256(files['weights.bin'])[:2]}/{sha256(files['weights.bin'])[2:4]}/{sha256(files['weights.bin'])}" \
        in cluster.blob_keys()


def verified_blobs_only(cluster: Cluster) -> list[str]:
    """The digests of the bucket's blobs, each checked to hold the bytes its name says; fails on
    anything else under the cluster's prefix (temporary objects included)."""
    digests = []
    for key in cluster.blob_keys():
        assert key.startswith("blobs/"), key
        body = cluster.store.client.get_object(Bucket=BUCKET, Key=cluster.prefix + key)["Body"].read()
        assert sha256(body) == key.rsplit("/", 1)[1], key
        digests.append(sha256(body))
    return digests


def lfs_batch(replica: str, token: str, repo: str, operation: str, oid: str, size: int) -> dict:
    answer = httpx.post(f"{replica}/{repo}.git/info/lfs/objects/batch", timeout=60,
                        json={"operation": operation, "transfers": ["basic"], "objects": [{"oid": oid, "size": size}]},
                        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.git-lfs+json"})
    assert answer.status_code == 200, answer.text
    return answer.json()["objects"][0]  # type: ignore[no-any-return]


def test_kill_mid_upload_leaves_nothing_partial_and_the_others_keep_serving(cluster: Cluster) -> None:
    """An LFS upload streaming through replica 2 (two multipart parts already in S3) when replica 2
    is killed -9: the other replicas answer every request meanwhile; after its restart no replica
    lists, resolves or offers the object, and the bucket holds only verified blobs."""
    token = cluster.token("alice")
    auth = {"Authorization": f"Bearer {token}"}
    api = HfApi(endpoint=cluster.url, token=token)
    api.create_repo("alice/killed")
    kept = os.urandom(400_000)
    api.upload_file(path_or_fileobj=kept, path_in_repo="kept.txt", repo_id="alice/killed")
    data = os.urandom(4 * PART)
    href = lfs_upload_href(cluster.servers[2], token, "alice/killed", sha256(data), len(data))
    assert href.startswith(cluster.urls[2] + "/")
    uploads_before = len(cluster.store.uploads(cluster.prefix))
    with stalled_upload(href, data):
        until(lambda: len(cluster.store.uploads(cluster.prefix)) > uploads_before, "the upload to reach S3")
        cluster.kill(2)
    with httpx.Client(follow_redirects=True, timeout=60) as client:
        for _ in range(6):  # replica 2 is dead: the others answer every request through nginx
            answer = client.get(f"{cluster.url}/alice/killed/resolve/main/kept.txt", headers=auth)
            assert answer.status_code == 200 and answer.content == kept
    cluster.restart(2)
    assert sha256(data) not in verified_blobs_only(cluster) and sha256(kept) in verified_blobs_only(cluster)
    for replica in cluster.urls:
        assert HfApi(endpoint=replica, token=token).list_repo_files("alice/killed") == [".gitattributes", "kept.txt"]
        assert lfs_batch(replica, token, "alice/killed", "download", sha256(data), len(data))["error"]["code"] == 404
        assert "upload" in lfs_batch(replica, token, "alice/killed", "upload", sha256(data), len(data))["actions"]


def test_gc_and_fsck_from_one_replica_while_another_serves(cluster: Cluster) -> None:
    """`hubgate gc` and `hubgate fsck` run on replica 0's settings (the shared database and bucket)
    while replica 1 keeps answering downloads: the deleted repo's blob goes, every download of the
    kept file during the run returns its bytes, fsck finds the store clean."""
    token = cluster.token("alice")
    api = HfApi(endpoint=cluster.urls[1], token=token)
    kept, gone = os.urandom(300_000), os.urandom(310_000)
    for name, data in (("gc-kept", kept), ("gc-gone", gone)):
        api.create_repo(f"alice/{name}")
        api.upload_file(path_or_fileobj=data, path_in_repo="data.txt", repo_id=f"alice/{name}")
    api.delete_repo("alice/gc-gone")
    answers: list[tuple[int, bool]] = []
    stop = threading.Event()

    def serve() -> None:
        with httpx.Client(follow_redirects=True, timeout=60) as client:
            while not stop.is_set() or len(answers) < 3:
                got = client.get(f"{cluster.urls[1]}/alice/gc-kept/resolve/main/data.txt",
                                 headers={"Authorization": f"Bearer {token}"})
                answers.append((got.status_code, got.content == kept))

    reader = threading.Thread(target=serve)
    reader.start()
    try:
        collected = cluster.cli("gc", "--grace", "0")
        checked = cluster.cli("fsck", check=False)
    finally:
        stop.set()
        reader.join()
    assert "1 blob" in collected.stdout, collected.stdout
    assert checked.returncode == 0 and "0 unreferenced" in checked.stdout, checked.stdout
    assert answers and set(answers) == {(200, True)}
    digests = verified_blobs_only(cluster)
    assert sha256(kept) in digests and sha256(gone) not in digests

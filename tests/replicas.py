"""N `hubgate serve` replicas sharing one PostgreSQL database and one S3 bucket, behind nginx.

API (import from tests: `from replicas import Cluster, start_replicas`):

    with start_replicas(tmp_path, count=3, serve="proxy", upstreams=[origin.url], config="...") as cluster:
        cluster.url                 # nginx (round robin over the replicas): what clients use
        cluster.urls                # [replica 0 URL, replica 1 URL, ...] (cluster.servers[i].url)
        cluster.servers[i]          # conftest.Server of replica i (log, env, data, cli(), sql())
        cluster.token("alice")      # user alice (created on first use) and a write token for her
        cluster.cli("fsck")         # `hubgate ...` on the shared database and bucket (replica 0's data folder)
        cluster.kill(i)             # kill -9 of replica i's process group; nginx passes over it
        cluster.restart(i)          # start replica i again, same port, data folder and settings
        cluster.blob_keys()         # object keys under the cluster's prefix in the bucket ("blobs/...")
        cluster.store               # seaweed.Seaweed: .client (boto3), .keys(prefix), .uploads(prefix)
        cluster.prefix              # the cluster's key prefix ("replicas-xxxxxxxxxx/")
        cluster.database_url        # postgresql+psycopg://... (fresh, dropped at the end of the run)
        cluster.served_by()         # upstream address of each request in nginx's access log, in order

Every replica: its own data folder (FOLDER/rN/data), `HUBGATE_DATABASE_URL`, one config file
(FOLDER/hubgate.toml, found through `HUBGATE_CONFIG`: `[blobs]` on the run's SeaweedFS with
`serve`, `trusted_proxies = ["127.0.0.1"]`, one `[[upstream]]` per URL
of `upstreams` named up0, up1..., then `config`, raw TOML, appended), the same `HUBGATE_SECRET_KEY`
and the S3 credentials in its environment (plus `env`). Replica 0 starts first (it migrates the
database), the others then start together. `balancer=False` starts no nginx (`cluster.url` is then
replica 0's URL). Skips the test when PostgreSQL, SeaweedFS or (with the balancer) nginx is missing.
On leaving: nginx stopped, every replica's process group stopped (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

import nginx
import seaweed
from conftest import Server, start_server
from databases import DATABASES

UPSTREAM_ADDRESS = re.compile(r" up=(\S+)$")


class Cluster:
    def __init__(self, folder: Path, store: seaweed.Seaweed, prefix: str, env: dict[str, str], ports: list[int]) -> None:
        self.folder, self.store, self.prefix, self.env, self.ports = folder, store, prefix, env, ports
        self.database_url = env["HUBGATE_DATABASE_URL"]
        self.servers: list[Server] = []
        self.url = ""
        self.nginx_dir: Path | None = None
        self._tokens: dict[tuple[str, str], str] = {}

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def start_replica(self, index: int) -> Server:
        (self.folder / f"r{index}").mkdir(exist_ok=True)
        return start_server(self.folder / f"r{index}" / "data", env=self.env, port=self.ports[index])

    def kill(self, index: int) -> None:
        """kill -9 of replica `index` (its whole process group), waited for."""
        process = self.servers[index].process
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def restart(self, index: int) -> Server:
        """Start replica `index` again (after `kill` or on its own), same port and settings."""
        self.servers[index].stop()
        self.servers[index] = self.start_replica(index)
        return self.servers[index]

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`hubgate ARGS` on the cluster's database and bucket (through replica 0's settings)."""
        return self.servers[0].cli(*args, check=check)

    def token(self, user: str, role: str = "write") -> str:
        """A `role` token of `user`, created (with the user) on first use."""
        if (user, role) not in self._tokens:
            if not any(name == user for name, _ in self._tokens):
                self.servers[0].add_user(user)
            self._tokens[(user, role)] = self.servers[0].token(user, role)
        return self._tokens[(user, role)]

    def blob_keys(self) -> list[str]:
        """The bucket's object keys under this cluster's prefix (blobs/, tmp/, quarantine/...),
        prefix stripped."""
        return [key[len(self.prefix):] for key in self.store.keys(self.prefix)]

    def served_by(self) -> list[str]:
        """host:port of the replica nginx sent each request to, in log order ("-" if none)."""
        if self.nginx_dir is None:
            return []
        lines = nginx.access_log(self.nginx_dir)
        return [found.group(1) if (found := UPSTREAM_ADDRESS.search(line)) else "-" for line in lines]

    def stop(self) -> None:
        if self.nginx_dir is not None and (self.nginx_dir / "nginx.pid").exists():
            nginx.stop(self.nginx_dir)
        for server in self.servers:
            server.stop()


def _config(store: seaweed.Seaweed, prefix: str, serve: str, upstreams: Sequence[str], extra: str) -> str:
    blobs = seaweed.blobs_table(store, prefix, serve)
    lines = ["[http]", 'trusted_proxies = ["127.0.0.1"]', "[blobs]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in blobs.items()]
    for index, url in enumerate(upstreams):
        lines += ["[[upstream]]", f'name = "up{index}"', f"url = {json.dumps(url)}"]
    return "\n".join(lines) + "\n" + extra + "\n"


@contextmanager
def start_replicas(folder: Path, count: int = 3, *, serve: str = "proxy", upstreams: Sequence[str] = (),
                   config: str = "", env: dict[str, str] | None = None, balancer: bool = True) -> Iterator[Cluster]:
    """Start the cluster described in this module's docstring; stop it on leaving."""
    if balancer and nginx.NGINX is None:
        pytest.skip(nginx.MISSING)
    store = seaweed.shared()
    prefix = seaweed.new_prefix("replicas")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hubgate.toml").write_text(_config(store, prefix, serve, upstreams, config))
    full_env = {**seaweed.ENV, "HUBGATE_DATABASE_URL": DATABASES.fresh(), "HUBGATE_CONFIG": str(folder / "hubgate.toml"),
                "HUBGATE_SECRET_KEY": secrets.token_hex(32), **(env or {})}
    cluster = Cluster(folder, store, prefix, full_env, [nginx.free_port() for _ in range(count)])
    try:
        cluster.servers.append(cluster.start_replica(0))  # (alone: it migrates the database)
        with ThreadPoolExecutor(max_workers=max(1, count - 1)) as pool:
            started = [pool.submit(cluster.start_replica, index) for index in range(1, count)]
            for future in started:  # every start waited for, so none is left behind unstopped
                error = future.exception()
                if error is None:
                    cluster.servers.append(future.result())
            for future in started:
                if future.exception() is not None:
                    raise future.exception()  # type: ignore[misc]
        if balancer:
            cluster.nginx_dir = folder / "nginx"
            port = nginx.free_port()
            nginx.start(cluster.nginx_dir, port, [f"127.0.0.1:{p} max_fails=1 fail_timeout=2s" for p in cluster.ports])
            cluster.url = f"http://127.0.0.1:{port}"
        else:
            cluster.url = cluster.servers[0].url
        yield cluster
    finally:
        cluster.stop()

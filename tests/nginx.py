"""nginx for the tests that put it in front of hubgate (tests/test_nginx.py, tests/replicas.py):
started as a daemon with its prefix (pid, logs, temp files) in a test folder, stopped fast.

Tests using it skip without nginx (`apt-get install -y nginx-light`; .ci/run installs it).
"""

from __future__ import annotations

import getpass
import os
import select
import shutil
import signal
import socket
import subprocess
from pathlib import Path

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
MISSING = "nginx is not installed (apt-get install -y nginx-light)"
# Workers run as the test's user (as root they would default to nobody, who cannot read hubgate's 0600 blobs).
USER_LINE = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
# The configuration of docs/deployment.md (streamed both ways, forwarded headers set), with an
# access log line per request: `GET /path 200 uri=<uri nginx served> bytes=<sent> up=<replica>`.
CONF = """\
{user}worker_processes 1; pid nginx.pid; error_log error.log warn; daemon on;
events {{ worker_connections 512; }}
http {{
  map $request_uri $path_only {{ "~^(?<path>[^?]*)" $path; }}  # no query: presigned links carry sig=
  log_format hubgate '$request_method $path_only $status uri=$uri bytes=$body_bytes_sent up=$upstream_addr';
  access_log access.log hubgate;
  client_body_temp_path tmp/client_body; proxy_temp_path tmp/proxy;
  fastcgi_temp_path tmp/fastcgi; uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
  upstream hubgate {{
{servers}    keepalive 16; keepalive_timeout 20s;  # below hubgate's [http] keep_alive (30 s)
  }}
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 0; proxy_request_buffering off; proxy_buffering off;
    location / {{
      proxy_pass http://hubgate; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_next_upstream error timeout http_502 http_503;
      proxy_read_timeout 300s; proxy_send_timeout 300s;
    }}
{locations}  }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(prefix: Path, port: int, servers: list[str], locations: str = "") -> None:
    """Start nginx on 127.0.0.1:PORT in front of `servers` (`host:port [parameters]`, round robin),
    with `locations` added to its server block; its files (config, pid, logs) live in PREFIX."""
    assert NGINX is not None, MISSING
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    upstream = "".join(f"    server {server};\n" for server in servers)
    (prefix / "nginx.conf").write_text(CONF.format(user=USER_LINE, servers=upstream, port=port, locations=locations))
    subprocess.run([NGINX, "-p", str(prefix), "-c", "nginx.conf"], check=True, timeout=30, capture_output=True)


def access_log(prefix: Path) -> list[str]:
    return (prefix / "access.log").read_text().splitlines()


def stop(prefix: Path) -> None:
    """Fast shutdown, waiting for the master (which outlives its workers) to exit: a daemon is not
    our child, so its exit is watched through a pidfd."""
    assert NGINX is not None, MISSING
    pid = int((prefix / "nginx.pid").read_text())
    watch = os.pidfd_open(pid)
    try:
        subprocess.run([NGINX, "-p", str(prefix), "-c", "nginx.conf", "-s", "stop"], timeout=30, check=False)
        if not select.select([watch], [], [], 20)[0]:
            signal.pidfd_send_signal(watch, signal.SIGKILL)
    finally:
        os.close(watch)

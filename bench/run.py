#!/usr/bin/env python3
"""Download benchmark: hubgate's `resolve` of a 1 GiB LFS file against nginx (sendfile) serving the same file.

One command does everything, on this machine, in one run (see docs/benchmarks.md):

    python bench/run.py            # from the project root; writes docs/benchmarks.md

It installs nginx and curl from Debian if they are missing, starts a fresh `hubgate serve` on 127.0.0.1
with a temporary data folder, creates a user, a write token and a private model repo, uploads a random
file as LFS with huggingface_hub, starts nginx on a free 127.0.0.1 port serving the very blob file
hubgate stored, then downloads the file from both with 1 and with 8 concurrent clients, several
repetitions each (interleaved, so both see the same machine noise), and reports median throughput,
the hubgate/nginx ratio and hubgate's peak RSS (summed over its process tree). Everything it started
is stopped and its temporary folder removed at the end, also on Ctrl-C.

The load client is bench/client.py, one process per client, which lets the kernel drop the body
(MSG_TRUNC) and so costs almost no CPU; curl, on this 2-core VM, burns a core at ~1 GB/s and would be
the bottleneck (`--client curl` shows it). The report gives the clients' CPU use to make that visible.
MB means 10**6 bytes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

# Before huggingface_hub is imported: take the LFS batch path, not Xet.
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ.pop("HF_ENDPOINT", None)

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
READY = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
REPO_ID = "bench/blob"
FILE_NAME = "weights.bin"
MB = 1_000_000
MIB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
RESULTS_START = "<!-- bench:latest:start -->"
RESULTS_END = "<!-- bench:latest:end -->"
HISTORY_MARK = "<!-- bench:history:end -->"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------------------
# Tools


def ensure_tools() -> None:
    """nginx and curl from Debian: `apt-get update` once, then install what is missing."""
    missing = [pkg for pkg, exe in (("nginx", "nginx"), ("curl", "curl")) if not find_exe(exe)]
    if not missing:
        return
    prefix = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if prefix is None:
        sys.exit(f"bench: {', '.join(missing)} missing and not root (no sudo): install them first")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log(f"installing {' '.join(missing)} from Debian")
    subprocess.run([*prefix, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*prefix, "apt-get", "install", "-y", "-qq", *missing], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    for exe in ("nginx", "curl"):
        if not find_exe(exe):
            sys.exit(f"bench: {exe} still not found after apt-get install")


def find_exe(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.exists()), None
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)  # polling a condition (the port accepting), not synchronising by sleep
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


# --------------------------------------------------------------------------------------------------
# Process trees from /proc: RSS and CPU time


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def tree(pid: int) -> list[int]:
    children, out, todo = _children_map(), [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except OSError:
        return 0


def hwm_bytes(pid: int) -> int:
    """The kernel's own peak-RSS record of one process (VmHWM)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / CLK_TCK


class RssSampler(threading.Thread):
    """Sums RSS over a process tree every `interval` seconds and keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.samples = 0
        self._stop_event = threading.Event()
        self._pids = tree(pid)
        self._tree_refresh = 0.0

    def run(self) -> None:
        while not self._stop_event.is_set():
            now = time.monotonic()
            if now - self._tree_refresh > 1.0:  # workers may come and go; re-walk /proc once a second
                self._pids, self._tree_refresh = tree(self.pid), now
            self.peak = max(self.peak, sum(rss_bytes(p) for p in self._pids))
            self.samples += 1
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


# --------------------------------------------------------------------------------------------------
# Servers


@dataclass
class Hubgate:
    process: subprocess.Popen
    url: str
    data: Path
    env: dict[str, str]
    log: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, data: Path, workers: int, http: str = "auto", loop: str = "auto", chunked: bool = False) -> Hubgate:
        env = {**os.environ, "HUBGATE_LFS_FOR_XET_CLIENTS": "true"}
        serve = ["serve", "--host", "127.0.0.1", "--port", "0", "--data", str(data), "--workers", str(workers)]
        if (http, loop, chunked) == ("auto", "auto", False):
            args = [sys.executable, "-m", "hubgate", *serve]
        else:  # diagnostics only: the same server with uvicorn's choices or the body path forced
            args = [sys.executable, "-c", DIAGNOSTIC_LAUNCHER, http, loop, "1" if chunked else "0", *serve]
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                   start_new_session=True)
        lines: list[str] = []
        assert process.stdout is not None
        for line in process.stdout:  # blocks until uvicorn reports the port it bound
            lines.append(line)
            found = READY.search(line)
            if found:
                server = cls(process, f"http://127.0.0.1:{found.group(1)}", data, env, lines)
                threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()  # type: ignore[arg-type]
                return server
        process.wait(timeout=10)
        raise RuntimeError("hubgate serve did not start:\n" + "".join(lines))

    def cli(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "hubgate", *args, "--data", str(self.data)],
                                capture_output=True, text=True, env=self.env, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"hubgate {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def stop(self) -> None:
        stop_process(self.process, signal.SIGTERM)


DIAGNOSTIC_LAUNCHER = """
import sys
import uvicorn
from hubgate.http import responses
http, loop, chunked = sys.argv[1:4]
if chunked == "1":
    responses._SENDFILE = False  # copy file bodies through Python instead of sendfile()
run = uvicorn.run
def forced(*args, **kwargs):
    if http != "auto":
        kwargs["http"] = http
    if loop != "auto":
        kwargs["loop"] = loop
    return run(*args, **kwargs)
uvicorn.run = forced
from hubgate.cli import app
app(sys.argv[4:], prog_name="hubgate")
"""


@dataclass
class Nginx:
    process: subprocess.Popen
    url: str
    prefix: Path

    @classmethod
    def start(cls, prefix: Path, root: Path) -> Nginx:
        exe = find_exe("nginx")
        assert exe is not None
        for _ in range(5):  # a free port can be taken between probe and bind: try another
            port = free_port()
            prefix.mkdir(parents=True, exist_ok=True)
            conf = prefix / "nginx.conf"
            # As root the workers would drop to `nobody`, who cannot enter the private temp folder.
            user = f"user {_user_group()};\n" if os.geteuid() == 0 else ""
            conf.write_text(NGINX_CONF.format(user=user, prefix=prefix, port=port, root=root))
            process = subprocess.Popen([exe, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                       start_new_session=True)
            try:
                wait_for_port(port, process, timeout=15)
                return cls(process, f"http://127.0.0.1:{port}", prefix)
            except RuntimeError:
                stop_process(process, signal.SIGTERM)
                errors = (prefix / "error.log").read_text() if (prefix / "error.log").exists() else ""
                if "Address already in use" not in errors:
                    raise RuntimeError(f"nginx did not start:\n{errors}") from None
        raise RuntimeError("nginx did not find a free port")

    def stop(self) -> None:
        stop_process(self.process, signal.SIGQUIT)  # graceful shutdown of master and workers


def _user_group() -> str:
    import grp
    import pwd

    return f"{pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name}"


NGINX_CONF = """\
{user}daemon off;
master_process on;
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30;
    default_type application/octet-stream;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


def stop_process(process: subprocess.Popen, sig: int) -> None:
    if process.poll() is not None:
        return
    def signal_all(signum: int) -> None:
        try:
            os.killpg(process.pid, signum)  # its own session: the process and its children (workers)
        except ProcessLookupError:  # not a group leader after all: at least the process itself
            process.send_signal(signum)

    signal_all(sig)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        signal_all(signal.SIGKILL)
        process.wait()


# --------------------------------------------------------------------------------------------------
# Measuring


@dataclass
class Batch:
    target: str
    clients: int
    wall: float
    total_bytes: int
    client_cpu: float
    server_cpu: float
    per_client_mbs: list[float]

    @property
    def mbs(self) -> float:
        return self.total_bytes / self.wall / MB


CLIENT = "python"


def client_args(url: str, token: str | None) -> list[str]:
    """A command that downloads `url` and prints `STATUS BYTES START END CPU` (curl: 0, its total time, -1)."""
    if CLIENT == "curl":
        args = ["curl", "--silent", "--show-error", "--output", "/dev/null", "--http1.1",
                "--write-out", "%{http_code} %{size_download} 0 %{time_total} -1"]
        if token:
            args += ["--header", f"Authorization: Bearer {token}"]
        return [*args, url]
    return [sys.executable, str(Path(__file__).with_name("client.py")), url, *(["--token", token] if token else []),
            *(["--copy"] if CLIENT == "python-copy" else [])]


def download_batch(target: str, url: str, token: str | None, clients: int, size: int, server_pid: int) -> Batch:
    """`clients` curls at once, each fetching the whole file; throughput = all bytes / wall time."""
    cpu_before = cpu_seconds(tree(server_pid))
    start = time.perf_counter()
    procs = [subprocess.Popen(client_args(url, token), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(clients)]
    client_cpu, speeds, total = 0.0, [], 0
    for proc in procs:  # the wall time is the last one's end, whatever the order of waiting
        _, status, usage = os.wait4(proc.pid, 0)  # also gives each client's whole CPU time (for curl)
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.cpu = usage.ru_utime + usage.ru_stime  # type: ignore[attr-defined]
    wall = time.perf_counter() - start
    server_cpu = cpu_seconds(tree(server_pid)) - cpu_before
    starts, ends = [], []
    for proc in procs:
        out, err = proc.communicate()
        parts = out.split()
        if proc.returncode != 0 or len(parts) != 5 or parts[0] != "200" or int(parts[1]) != size:
            raise RuntimeError(f"{target} download failed (rc={proc.returncode}): {out!r} {err!r}")
        total += int(parts[1])
        starts.append(float(parts[2]))
        ends.append(float(parts[3]))
        client_cpu += float(parts[4]) if float(parts[4]) >= 0 else proc.cpu  # type: ignore[attr-defined]
        speeds.append(int(parts[1]) / (ends[-1] - starts[-1]) / MB)
    if CLIENT != "curl":  # first connect to last byte, without the clients' interpreter start-up
        wall = max(ends) - min(starts)
    return Batch(target, clients, wall, total, client_cpu, server_cpu, speeds)


def verify_download(url: str, token: str | None, expected_sha256: str) -> None:
    args = ["curl", "--silent", "--show-error", "--fail", "--http1.1"]
    if token:
        args += ["--header", f"Authorization: Bearer {token}"]
    curl = subprocess.Popen([*args, url], stdout=subprocess.PIPE)
    digest = hashlib.sha256()
    assert curl.stdout is not None
    while chunk := curl.stdout.read(8 * MIB):
        digest.update(chunk)
    curl.wait()
    if digest.hexdigest() != expected_sha256:
        raise RuntimeError(f"{url} served different bytes (sha256 {digest.hexdigest()})")


def make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(16 * MIB, left))
            f.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Report


def machine() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3

    def version(cmd: list[str], pattern: str) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
            found = re.search(pattern, out.stdout + out.stderr)
            return found.group(1) if found else "?"
        except OSError:
            return "?"

    import uvicorn

    try:
        import httptools  # noqa: F401

        http_impl = "httptools available"
    except ImportError:
        http_impl = "h11 (httptools not installed)"
    try:
        import uvloop  # noqa: F401

        loop = "uvloop available"
    except ImportError:
        loop = "asyncio (uvloop not installed)"
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "src"], capture_output=True, text=True, check=False)
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{mem:.0f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "uvicorn": f"{uvicorn.__version__}, {http_impl}, {loop}",
        "nginx": version([find_exe("nginx") or "nginx", "-v"], r"nginx/(\S+)"),
        "curl": version(["curl", "--version"], r"curl (\S+)"),
        "commit": (commit.stdout.strip() or "?") + (" + uncommitted changes in src/" if dirty.stdout.strip() else ""),
    }


def hubgate_variant(opts: argparse.Namespace) -> str:
    """How hubgate ran: uvicorn's HTTP implementation and loop, and the file-body path."""
    import importlib.util

    http = opts.uvicorn_http if opts.uvicorn_http != "auto" else (
        "httptools" if importlib.util.find_spec("httptools") else "h11")
    loop = opts.uvicorn_loop if opts.uvicorn_loop != "auto" else (
        "uvloop" if importlib.util.find_spec("uvloop") else "asyncio")
    forced = opts.uvicorn_http != "auto" or opts.uvicorn_loop != "auto"
    body = "chunks copied through Python (--chunked)" if opts.chunked else "sendfile()"
    return f"workers {opts.workers}, {http} + {loop}{' (forced)' if forced else ''}, {body}"


def summarise(batches: list[Batch], clients: int, target: str) -> dict[str, float]:
    mine = [b for b in batches if b.clients == clients and b.target == target]
    gib = sum(b.total_bytes for b in mine) / 1024**3
    return {
        "median": statistics.median(b.mbs for b in mine),
        "min": min(b.mbs for b in mine),
        "max": max(b.mbs for b in mine),
        "client_cpu_pct": 100 * sum(b.client_cpu for b in mine) / sum(b.wall for b in mine),
        "server_cpu_pct": 100 * sum(b.server_cpu for b in mine) / sum(b.wall for b in mine),
        "server_cpu_per_gib": sum(b.server_cpu for b in mine) / gib,
        "client_cpu_per_gib": sum(b.client_cpu for b in mine) / gib,
    }


def render(results: dict, info: dict[str, str], command: str) -> tuple[str, str]:
    """The 'latest run' section and one history row."""
    size_mib = results["size"] // MIB
    lines = [
        f"Run on {results['date']} with `{command}` (total {results['elapsed']:.0f} s).",
        "",
        "| | |",
        "| --- | --- |",
        f"| date | {results['date']} |",
        f"| machine | {info['cores']} cores ({info['cpu']}), {info['memory']} RAM, Linux {info['kernel']} |",
        f"| software | Python {info['python']}, uvicorn {info['uvicorn']}; nginx {info['nginx']}; curl {info['curl']} |",
        f"| hubgate | commit {info['commit']}; {results['variant']} |",
        f"| file | {size_mib} MiB random bytes, uploaded as LFS ({results['upload_mbs']:.0f} MB/s upload incl. hashing) |",
        f"| repetitions | {results['reps']} per (server, clients), interleaved |",
        (
            f"| hubgate peak RSS | **{results['peak_rss'] / MIB:.0f} MiB** sampled sum over its process tree "
            f"({results['samples']} samples; idle {results['idle_rss'] / MIB:.0f} MiB; "
            f"sum of per-process VmHWM {results['hwm'] / MIB:.0f} MiB) |"
        ),
        f"| nginx peak RSS | {results['nginx_peak_rss'] / MIB:.0f} MiB (master + workers) |",
        "",
        (
            "| clients | hubgate median MB/s (min–max) | nginx median MB/s (min–max) | hubgate / nginx | "
            "server CPU s/GiB hubgate / nginx | client CPU % of a core, hubgate / nginx runs |"
        ),
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    history = [results["date"], info["commit"], f"{size_mib} MiB", results["variant"]]
    for clients in results["clients"]:
        h, n = results["summary"][(clients, "hubgate")], results["summary"][(clients, "nginx")]
        ratio = h["median"] / n["median"]
        lines.append(
            f"| {clients} | {h['median']:.0f} ({h['min']:.0f}–{h['max']:.0f}) | {n['median']:.0f} "
            f"({n['min']:.0f}–{n['max']:.0f}) | **{ratio:.2f}** | {h['server_cpu_per_gib']:.2f} / "
            f"{n['server_cpu_per_gib']:.2f} | {h['client_cpu_pct']:.0f} / {n['client_cpu_pct']:.0f} |"
        )
        history.append(f"{h['median']:.0f} / {n['median']:.0f} = **{ratio:.2f}**")
    history.append(f"{results['peak_rss'] / MIB:.0f} MiB")
    verdicts = []
    for clients in results["clients"]:
        h, n = results["summary"][(clients, "hubgate")], results["summary"][(clients, "nginx")]
        ok = h["median"] / n["median"] >= 0.8
        verdicts.append(f"{clients} client{'s' if clients > 1 else ''}: {'met' if ok else 'NOT met'}")
    lines += [
        "",
        (
            f"Targets: throughput ≥ 0.8 × nginx — {'; '.join(verdicts)}. "
            f"RSS < 300 MB — {'met' if results['peak_rss'] < 300 * MB else 'NOT met'} "
            f"({results['peak_rss'] / MB:.0f} MB)."
        ),
    ]
    return "\n".join(lines), "| " + " | ".join(history) + " |"


def write_doc(section: str, history_row: str) -> None:
    text = DOC.read_text() if DOC.exists() else ""
    if RESULTS_START not in text or HISTORY_MARK not in text:
        raise RuntimeError(f"{DOC} lacks the markers {RESULTS_START} / {HISTORY_MARK}; not overwriting it")
    head, rest = text.split(RESULTS_START, 1)
    _, tail = rest.split(RESULTS_END, 1)
    text = f"{head}{RESULTS_START}\n{section}\n{RESULTS_END}{tail}"
    text = text.replace(HISTORY_MARK, f"{history_row}\n{HISTORY_MARK}", 1)  # rows oldest first, table unbroken
    DOC.write_text(text)


# --------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the file (default 1024)")
    parser.add_argument("--reps", type=int, default=9, help="repetitions per server and client count (default 9)")
    parser.add_argument("--clients", default="1,8", help="comma-separated concurrent client counts (default 1,8)")
    parser.add_argument("--workers", type=int, default=1, help="hubgate worker processes (default 1, its default)")
    parser.add_argument("--client", choices=("python", "python-copy", "curl"), default="python",
                        help="load client: bench/client.py dropping bodies in the kernel (default), "
                             "bench/client.py --copy, or curl; to check the client is not the bottleneck")
    parser.add_argument("--uvicorn-http", choices=("auto", "h11", "httptools"), default="auto",
                        help="diagnostics: force uvicorn's HTTP implementation (default: uvicorn's own choice)")
    parser.add_argument("--uvicorn-loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                        help="diagnostics: force uvicorn's event loop (default: uvicorn's own choice)")
    parser.add_argument("--chunked", action="store_true",
                        help="diagnostics: hubgate copies file bodies through Python instead of sendfile() "
                             "(the path other ASGI servers get)")
    parser.add_argument("--no-doc", action="store_true", help="print the results only; leave docs/benchmarks.md")
    opts = parser.parse_args()
    global CLIENT
    CLIENT = opts.client
    if opts.chunked and opts.workers > 1:
        parser.error("--chunked works with --workers 1 only")
    clients_list = [int(c) for c in opts.clients.split(",")]
    size = opts.size_mib * MIB
    command = "python bench/run.py" + "".join(f" {a}" for a in sys.argv[1:])

    began = time.monotonic()
    ensure_tools()
    tmp = Path(tempfile.mkdtemp(prefix="hubgate-bench-"))
    hub: Hubgate | None = None
    nginx: Nginx | None = None
    sampler: RssSampler | None = None
    nginx_sampler: RssSampler | None = None

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        log(f"starting hubgate (workers={opts.workers}) in {tmp}")
        hub = Hubgate.start(tmp / "data", opts.workers, opts.uvicorn_http, opts.uvicorn_loop, opts.chunked)
        hub.cli("user", "add", "bench")
        token = hub.cli("token", "create", "bench", "--role", "write", "--name", "bench").strip().splitlines()[-1]

        log(f"writing {opts.size_mib} MiB of random bytes")
        source = tmp / FILE_NAME
        sha256 = make_file(source, size)
        from huggingface_hub import HfApi

        api = HfApi(endpoint=hub.url, token=token)
        api.create_repo(REPO_ID, private=True)
        log("uploading it as LFS with huggingface_hub")
        t0 = time.perf_counter()
        api.upload_file(path_or_fileobj=str(source), path_in_repo=FILE_NAME, repo_id=REPO_ID)
        upload_mbs = size / (time.perf_counter() - t0) / MB
        source.unlink()
        blob = tmp / "data" / "blobs" / sha256[:2] / sha256[2:4] / sha256
        if not blob.is_file() or blob.stat().st_size != size:
            raise RuntimeError(f"the upload did not land as the LFS blob {blob}")

        nginx = Nginx.start(tmp / "nginx", tmp / "data" / "blobs")
        targets = {
            "hubgate": (f"{hub.url}/{REPO_ID}/resolve/main/{FILE_NAME}", token, hub.process.pid),
            "nginx": (f"{nginx.url}/{sha256[:2]}/{sha256[2:4]}/{sha256}", None, nginx.process.pid),
        }
        log(f"hubgate {targets['hubgate'][0]}  nginx {targets['nginx'][0]}")
        for name, (url, tok, _) in targets.items():  # also warms the page cache and both servers
            verify_download(url, tok, sha256)
        log("both serve the same bytes (sha256 checked)")

        idle_rss = sum(rss_bytes(p) for p in tree(hub.process.pid))
        sampler = RssSampler(hub.process.pid)
        nginx_sampler = RssSampler(nginx.process.pid, interval=0.2)
        sampler.start()
        nginx_sampler.start()
        batches: list[Batch] = []
        for clients in clients_list:
            for rep in range(opts.reps):
                order = ["hubgate", "nginx"] if rep % 2 == 0 else ["nginx", "hubgate"]
                for name in order:
                    url, tok, pid = targets[name]
                    batch = download_batch(name, url, tok, clients, size, pid)
                    batches.append(batch)
                    log(f"{name:7s} clients={clients} rep={rep + 1}: {batch.mbs:7.0f} MB/s "
                        f"(wall {batch.wall:.2f}s, client CPU {batch.client_cpu:.1f}s, server CPU {batch.server_cpu:.1f}s)")
        sampler.stop()
        nginx_sampler.stop()
        hwm = sum(hwm_bytes(p) for p in tree(hub.process.pid))

        results = {
            "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "size": size,
            "reps": opts.reps,
            "workers": opts.workers,
            "variant": hubgate_variant(opts),
            "clients": clients_list,
            "upload_mbs": upload_mbs,
            "peak_rss": sampler.peak,
            "samples": sampler.samples,
            "idle_rss": idle_rss,
            "hwm": hwm,
            "nginx_peak_rss": nginx_sampler.peak,
            "summary": {(c, t): summarise(batches, c, t) for c in clients_list for t in ("hubgate", "nginx")},
            "elapsed": time.monotonic() - began,
        }
        section, history_row = render(results, machine(), command)
        print()
        print(section)
        if not opts.no_doc:
            write_doc(section, history_row)
            log(f"wrote {DOC.relative_to(ROOT)}")
        return 0
    finally:
        for running in (sampler, nginx_sampler):
            if running is not None and running.is_alive():
                running.stop()
        for server in (nginx, hub):
            if server is not None:
                server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        log("stopped hubgate and nginx, removed the temporary folder")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as stop:
        log(f"interrupted ({stop or 'Ctrl-C'}); everything it started was stopped")
        sys.exit(130)

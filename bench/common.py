"""Pieces shared by the benchmarks (bench/run.py, bench/mirror.py): tools, process trees and RSS,
hubgate and nginx servers, the load client's batches, and a description of the machine.

Nothing here writes a report: each benchmark renders its own section of docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
MB = 1_000_000
MIB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
CLIENT_SCRIPT = Path(__file__).with_name("client.py")


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
    def start(cls, data: Path, workers: int, http: str = "auto", loop: str = "auto", chunked: bool = False,
              extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None) -> Hubgate:
        env = {**os.environ, **(env or {})}
        serve = ["serve", "--host", "127.0.0.1", "--port", "0", "--data", str(data), "--workers", str(workers),
                 *extra_args]
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


@contextlib.contextmanager
def scratch_hubgate(prefix: str, workers: int = 1) -> Iterator[Hubgate]:
    """A fresh `hubgate serve` on a temporary data folder, stopped and the folder removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix=f"hubgate-bench-{prefix}-"))
    hub = None
    try:
        hub = Hubgate.start(tmp / "data", workers)
        yield hub
    finally:
        if hub is not None:
            hub.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        log("stopped hubgate, removed the temporary folder")


DIAGNOSTIC_LAUNCHER = """
import sys
import uvicorn
from hubgate.http import zerocopy
http, loop, chunked = sys.argv[1:4]
if chunked == "1":
    zerocopy._SENDFILE = False  # copy file bodies through Python instead of sendfile()
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
    ttfbs: list[float] = field(default_factory=list)  # seconds from connect to first body byte (--ttfb)

    @property
    def mbs(self) -> float:
        return self.total_bytes / self.wall / MB


def client_args(url: str, token: str | None, client: str = "python", extra: Sequence[str] = ()) -> list[str]:
    """A command that downloads `url` and prints `STATUS BYTES START END CPU` (curl: 0, its total time, -1).

    `extra`: more options for bench/client.py (e.g. `--follow`, `--ttfb`, which adds a sixth field).
    """
    if client == "curl":
        args = ["curl", "--silent", "--show-error", "--output", "/dev/null", "--http1.1",
                "--write-out", "%{http_code} %{size_download} 0 %{time_total} -1"]
        if token:
            args += ["--header", f"Authorization: Bearer {token}"]
        return [*args, url]
    return [sys.executable, str(CLIENT_SCRIPT), url, *(["--token", token] if token else []),
            *(["--copy"] if client == "python-copy" else []), *extra]


def download_batch(target: str, url: str, token: str | None, clients: int, size: int, server_pid: int,
                   client: str = "python", extra: Sequence[str] = ()) -> Batch:
    """`clients` curls at once, each fetching the whole file; throughput = all bytes / wall time."""
    cpu_before = cpu_seconds(tree(server_pid))
    start = time.perf_counter()
    procs = [subprocess.Popen(client_args(url, token, client, extra), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for _ in range(clients)]
    client_cpu, speeds, total = 0.0, [], 0
    for proc in procs:  # the wall time is the last one's end, whatever the order of waiting
        _, status, usage = os.wait4(proc.pid, 0)  # also gives each client's whole CPU time (for curl)
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.cpu = usage.ru_utime + usage.ru_stime  # type: ignore[attr-defined]
    wall = time.perf_counter() - start
    server_cpu = cpu_seconds(tree(server_pid)) - cpu_before
    starts, ends, ttfbs = [], [], []
    for proc in procs:
        out, err = proc.communicate()
        parts = out.split()
        if proc.returncode != 0 or len(parts) not in (5, 6) or parts[0] != "200" or int(parts[1]) != size:
            raise RuntimeError(f"{target} download failed (rc={proc.returncode}): {out!r} {err!r}")
        total += int(parts[1])
        starts.append(float(parts[2]))
        ends.append(float(parts[3]))
        client_cpu += float(parts[4]) if float(parts[4]) >= 0 else proc.cpu  # type: ignore[attr-defined]
        speeds.append(int(parts[1]) / (ends[-1] - starts[-1]) / MB)
        if len(parts) == 6:  # --ttfb: connect to first body byte
            ttfbs.append(float(parts[5]) - float(parts[2]))
    if client != "curl":  # first connect to last byte, without the clients' interpreter start-up
        wall = max(ends) - min(starts)
    return Batch(target, clients, wall, total, client_cpu, server_cpu, speeds, ttfbs)


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
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            check=False)
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{mem:.0f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "uvicorn": f"{uvicorn.__version__}, {http_impl}, {loop}",
        "nginx": version([find_exe("nginx") or "nginx", "-v"], r"nginx/(\S+)"),
        "curl": version(["curl", "--version"], r"curl (\S+)"),
        "commit": (commit.stdout.strip() or "?") + (" + uncommitted changes" if dirty_files() else ""),
    }


DOC = ROOT / "docs" / "benchmarks.md"


def dirty_files() -> list[str]:
    """`git status --porcelain` of the whole tree (untracked files included), but the benchmarks'
    own output, docs/benchmarks.md."""
    status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=all"],
                            capture_output=True, text=True, check=True).stdout
    return [line for line in status.splitlines() if line[3:] != str(DOC.relative_to(ROOT))]


def require_clean_tree() -> None:
    """Stop unless the tree is a commit as it is: figures written to docs/benchmarks.md name the
    commit they were measured on (call it before a run, and `publish` calls it again)."""
    dirty = dirty_files()
    if dirty:
        raise SystemExit("refusing to write docs/benchmarks.md from a tree with uncommitted changes "
                         "(commit them, or pass --no-doc to only print):\n" + "\n".join(dirty[:20]))


def publish(section: str, history_row: str, prefix: str, *, write: bool) -> None:
    """Print a run's results and, if `write`, put them into docs/benchmarks.md between the
    `<!-- {prefix}:latest:start/end -->` markers and as a row above `<!-- {prefix}:history:end -->`
    (only from a clean tree: see `require_clean_tree`)."""
    print()
    print(section)
    if not write:
        return
    require_clean_tree()
    doc = DOC
    start, end, history = (f"<!-- {prefix}:{m} -->" for m in ("latest:start", "latest:end", "history:end"))
    text = doc.read_text() if doc.exists() else ""
    if start not in text or end not in text or history not in text:
        raise RuntimeError(f"{doc} lacks the markers {start} / {history}; not overwriting it")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    text = f"{head}{start}\n{section}\n{end}{tail}"
    doc.write_text(text.replace(history, f"{history_row}\n{history}", 1))  # rows oldest first, table unbroken
    log(f"wrote {doc.relative_to(ROOT)}")


def publish_table(prefix: str, command: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[object]],
                  summary: Sequence[str], *, write: bool, note: str = "") -> None:
    """`publish` a run as one table: a line naming the date, `command`, machine and commit (then
    `note`), the table (`columns`: heading and alignment, "l" or "r"), and a history row of `summary`."""
    info = machine()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = "\n".join([
        f"Run {now} with `{command}` on {info['cpu']} ({info['cores']} shared cores), hubgate {info['commit']}{note}:",
        "",
        "| " + " | ".join(name for name, _ in columns) + " |",
        "|" + "|".join("---:" if align == "r" else "---" for _, align in columns) + "|",
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ])
    publish(section, f"| {now} | {info['commit']} | {'; '.join(summary)} |", prefix, write=write)

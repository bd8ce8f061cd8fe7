#!/usr/bin/env python3
"""Pull-through mirror benchmark: hubgate fetching a 1 GiB LFS file from an upstream hub, against the
origin itself, nginx and Olah 0.5.4, all on this machine, in one run (see docs/benchmarks.md, "Mirror").

    python bench/mirror.py            # from the project root; writes the Mirror part of docs/benchmarks.md

The upstream is the project's fake huggingface.co (tests/fakehub: a Hub origin that answers `resolve`
of an LFS file with a 302 to a presigned URL on a second "CDN" port). One fake runs for the whole
benchmark with one public model repo, `bench/mirror`: `config.json` and a 1 GiB LFS `weights.bin`.
hubgate runs with that fake as its only upstream (`[[upstream]]` in a config file), Olah 0.5.4 in its
own virtualenv (bench/.work/olah-venv) with `hf-netloc`/`hf-lfs-netloc` pointing at the fake's two ports.

1. Cold, 1 client, `--reps` repetitions. Each repetition starts a fresh hubgate (new data folder) and a
   fresh Olah (new repos folder), warms their metadata with a HEAD of `config.json` (which makes them
   fetch the repo's info and file list, so the measured GET needs only the file's bytes), then, in
   rotating order: downloads the file from the origin directly (the load client requests the fake's
   `resolve` URL and follows the 302 to the CDN, as huggingface_hub does), through hubgate, through
   Olah, and writes the same number of bytes into a new file on the same filesystem with plain
   `os.pwrite` (the machine's floor for any cache that writes what it fetches).
2. Cold at WAN speed: the same, direct vs hubgate, with the fake's CDN throttled (`--wan-mbs`).
3. 16 concurrent cold clients of the uncached file, `--c16-reps` times each through a fresh hubgate with
   1 worker, then 2 workers; the fake's request log gives how many times it sent the file and how many
   bytes in all. For reference, 16 clients straight from the origin.
4. Warm: the file cached in hubgate (the 1-worker server of step 3), against nginx (bench/run.py's
   setup) serving the very blob file hubgate stored, and Olah serving it from its own cache, 1 client;
   hubgate against nginx with 8 clients too.

The load client is bench/client.py (drops the body in the kernel; --follow, --ttfb), one process per
client; throughput = bytes / (first connect to last byte); TTFB = first connect to first body byte.
The RSS of hubgate's process tree is sampled every 50 ms while it serves. Everything started is stopped
and the temporary folder removed at the end, also on Ctrl-C. MB = 10**6 bytes, MiB = 2**20.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from common import (
    require_clean_tree,
    publish,
    MB,
    MIB,
    ROOT,
    Batch,
    Hubgate,
    Nginx,
    RssSampler,
    download_batch,
    ensure_tools,
    free_port,
    log,
    machine,
    stop_process,
    verify_download,
    wait_for_port,
)

sys.path.insert(0, str(ROOT / "tests"))
from fakehub import FakeHub, make_large_file, start_fakehub

WORK = ROOT / "bench" / ".work"
OLAH_VERSION = "0.5.4"
OLAH_VENV = WORK / "olah-venv"
REPO_ID = "bench/mirror"
FILE_NAME = "weights.bin"
TARGET_COLD = 0.9  # hubgate cold throughput / direct
TARGET_TTFB = 0.050  # hubgate cold TTFB - direct TTFB, seconds
TARGET_WARM = 0.8  # hubgate warm throughput / nginx


# --------------------------------------------------------------------------------------------------
# Servers under test


def write_hubgate_config(path: Path, fake: FakeHub) -> Path:
    path.write_text(f'[[upstream]]\nname = "fakehub"\nurl = "{fake.url}"\n')
    return path


def start_hubgate(data: Path, config: Path, workers: int = 1,
                  env: dict[str, str] | None = None) -> tuple[Hubgate, RssSampler]:
    hub = Hubgate.start(data, workers, extra_args=["--config", str(config)], env=env)
    if env and OVERRIDE_MARK not in "".join(hub.log):
        raise RuntimeError("hubgate did not load the fetcher of --fetcher-from:\n" + "".join(hub.log)[-2000:])
    if workers > 1:  # the supervisor prints its port before the workers have imported the app
        wait_ready(hub.url)
    sampler = RssSampler(hub.process.pid)
    sampler.start()
    return hub, sampler


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/whoami-v2", timeout=5).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)  # polling a condition (the server answering), not synchronising by sleep
    raise RuntimeError(f"{url} did not answer within {timeout}s")


OVERRIDE_MARK = "bench: hubgate.mirror.fetcher loaded from"
SITECUSTOMIZE = """\
# Written by bench/mirror.py --fetcher-from: hubgate (and its workers) import this fetcher instead.
import importlib.abc, importlib.util, sys

class _FetcherFrom(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "hubgate.mirror.fetcher":
            return None
        print("{mark} {rev}", file=sys.stderr, flush=True)
        return importlib.util.spec_from_file_location(name, {path!r})

sys.meta_path.insert(0, _FetcherFrom())
"""


def fetcher_override(rev: str, folder: Path) -> dict[str, str]:
    """Environment that makes hubgate use src/hubgate/mirror/fetcher.py as of git revision `rev`."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:src/hubgate/mirror/fetcher.py"],
                            capture_output=True, text=True, check=False)
    if source.returncode != 0:
        raise SystemExit(f"bench: no fetcher.py at {rev}: {source.stderr.strip()}")
    folder.mkdir(parents=True)
    (folder / "fetcher_at_rev.py").write_text(source.stdout)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE.format(mark=OVERRIDE_MARK, rev=rev,
                                                                  path=str(folder / "fetcher_at_rev.py")))
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}


def ensure_olah() -> Path | str:
    """Olah's console script in its own virtualenv (created on first use), or why it is unavailable."""
    exe = OLAH_VENV / "bin" / "olah-cli"
    pip = OLAH_VENV / "bin" / "pip"
    if exe.exists():
        shown = subprocess.run([str(pip), "show", "olah"], capture_output=True, text=True, check=False).stdout
        if f"Version: {OLAH_VERSION}" in shown:
            return exe
    log(f"installing olah=={OLAH_VERSION} into {OLAH_VENV.relative_to(ROOT)}")
    WORK.mkdir(parents=True, exist_ok=True)
    steps = [[sys.executable, "-m", "venv", str(OLAH_VENV)], [str(pip), "install", "-q", f"olah=={OLAH_VERSION}"]]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            return f"`{' '.join(step)}` failed: {(result.stderr or result.stdout).strip()[-500:]}"
    return exe if exe.exists() else f"no olah-cli in {OLAH_VENV} after installing olah=={OLAH_VERSION}"


OLAH_CONF = """\
[basic]
host = "127.0.0.1"
port = {port}
repos-path = "{repos}"
hf-scheme = "http"
hf-netloc = "{hub}"
hf-lfs-netloc = "{cdn}"
mirror-scheme = "http"
mirror-netloc = "127.0.0.1:{port}"
mirror-lfs-netloc = "127.0.0.1:{port}"
"""


@dataclass
class Olah:
    process: subprocess.Popen
    url: str
    home: Path
    sampler: RssSampler | None = None

    @classmethod
    def start(cls, exe: Path, home: Path, fake: FakeHub) -> Olah:
        """Olah with the fake as huggingface.co: its Hub origin as hf-netloc, its CDN as hf-lfs-netloc."""
        home.mkdir(parents=True)
        for _ in range(5):  # a free port can be taken between probe and bind: try another
            port = free_port()
            conf = home / "olah.toml"
            conf.write_text(OLAH_CONF.format(port=port, repos=home / "repos", hub=fake.url.split("//", 1)[1],
                                             cdn=fake.cdn_url.split("//", 1)[1]))
            with open(home / "olah.log", "ab") as out:  # it logs to ./logs too: run it in its home
                process = subprocess.Popen([str(exe), "-c", str(conf)], cwd=home, stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True)
            try:
                wait_for_port(port, process, timeout=60)
            except RuntimeError:
                stop_process(process, signal.SIGTERM)
                if "address already in use" in (home / "olah.log").read_text().lower():
                    continue
                raise RuntimeError("olah did not start:\n" + (home / "olah.log").read_text()[-3000:]) from None
            olah = cls(process, f"http://127.0.0.1:{port}", home)
            olah.sampler = RssSampler(process.pid)
            olah.sampler.start()
            return olah
        raise RuntimeError("olah did not find a free port")

    def stop(self) -> None:
        if self.sampler is not None and self.sampler.is_alive():
            self.sampler.stop()
        stop_process(self.process, signal.SIGTERM)


def warm_metadata(base: str) -> None:
    """HEAD another file of the repo: the mirror fetches the repo's info and file list, not the big file."""
    response = httpx.head(f"{base}/{REPO_ID}/resolve/main/config.json", timeout=60)
    if response.status_code != 200:
        raise RuntimeError(f"HEAD config.json through {base} answered {response.status_code}: {response.headers}")


# --------------------------------------------------------------------------------------------------
# Measuring


@dataclass
class Sample:
    """One measured download (or batch of concurrent downloads) or floor measurement."""

    target: str
    phase: str
    clients: int
    mbs: float
    ttfb: float | None = None  # median over the batch's clients, seconds
    server_cpu_per_gib: float | None = None
    upstream_fetches: int | None = None
    upstream_bytes: int | None = None
    upstream_requests: dict[str, int] = field(default_factory=dict)
    per_client_mbs: list[float] = field(default_factory=list)


class Upstream:
    """Counts what the fake origin sent between two points of the run."""

    def __init__(self, fake: FakeHub, sha256: str) -> None:
        self.fake, self.sha256 = fake, sha256
        self.seen = 0

    def mark(self) -> None:
        self.seen = max((r["id"] for r in self.fake.requests()), default=0)

    def since(self) -> tuple[int, int, dict[str, int]]:
        """(file sends, file bytes sent, requests by kind) since the last mark()."""
        new = self.fake.requests(since=self.seen)
        new = [r for r in new if r["id"] > self.seen]  # whether `since` is inclusive or not
        sends = [r for r in new if r["method"] == "GET" and r["status"] in (200, 206) and r["kind"] == "cdn"
                 and r["path"].rsplit("/", 1)[-1] == self.sha256]
        kinds: dict[str, int] = {}
        for r in new:
            key = f"{r['kind']} {r['method']}"
            kinds[key] = kinds.get(key, 0) + 1
        return len(sends), sum(r["bytes"] for r in sends), kinds


def measure(target: str, phase: str, url: str, size: int, pid: int, upstream: Upstream | None = None,
            clients: int = 1, follow: bool = False) -> Sample:
    if upstream is not None:
        upstream.mark()
    extra = ["--ttfb", *(["--follow"] if follow else [])]
    batch: Batch = download_batch(target, url, None, clients, size, pid, extra=extra)
    sample = Sample(target, phase, clients, batch.mbs, statistics.median(batch.ttfbs),
                    batch.server_cpu / (batch.total_bytes / 1024**3), per_client_mbs=batch.per_client_mbs)
    if upstream is not None:
        sample.upstream_fetches, sample.upstream_bytes, sample.upstream_requests = upstream.since()
    note = ""
    if sample.upstream_fetches is not None:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(sample.upstream_requests.items()))
        note = f", upstream sent it {sample.upstream_fetches}x ({sample.upstream_bytes / MIB:.0f} MiB; requests: {kinds})"
    log(f"{phase:5s} {target:14s} clients={clients:2d}: {sample.mbs:6.0f} MB/s, TTFB {sample.ttfb * 1000:6.1f} ms, "
        f"server CPU {sample.server_cpu_per_gib:.2f} s/GiB{note}")
    return sample


def write_floor(path: Path, size: int) -> Sample:
    """Write `size` bytes into a new file with plain 1 MiB pwrite calls: what any cache pays to keep a copy."""
    block = os.urandom(MIB)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        start = time.perf_counter()
        for offset in range(0, size, MIB):
            os.pwrite(fd, block[: min(MIB, size - offset)], offset)
        mbs = size / (time.perf_counter() - start) / MB
    finally:
        os.close(fd)
    log(f"cold  write floor     1 new file: {mbs:6.0f} MB/s")
    return Sample("write floor", "cold", 1, mbs)


def sha256_rate() -> float:
    block = os.urandom(64 * MIB)
    digest = hashlib.sha256()
    start = time.perf_counter()
    for _ in range(8):
        digest.update(block)
    return 8 * len(block) / (time.perf_counter() - start) / MB


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def med(samples: list[Sample], target: str, phase: str, clients: int = 1, attr: str = "mbs") -> float | None:
    values = [getattr(s, attr) for s in samples if s.target == target and s.phase == phase and s.clients == clients]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def spread(samples: list[Sample], target: str, phase: str, clients: int = 1) -> str:
    values = [s.mbs for s in samples if s.target == target and s.phase == phase and s.clients == clients]
    return f"{min(values):.0f}–{max(values):.0f}" if values else "–"


# --------------------------------------------------------------------------------------------------
# Report


def fmt(value: float | None, spec: str = ".0f", suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"**{a / b:.2f}**"


def render(r: dict, info: dict[str, str], command: str) -> tuple[str, str]:
    s: list[Sample] = r["samples"]
    size_mib = r["size"] // MIB
    direct = med(s, "direct", "cold")
    hub_cold = med(s, "hubgate", "cold")
    olah_cold = med(s, "olah", "cold")
    ttfb = {t: med(s, t, "cold", attr="ttfb") for t in ("direct", "hubgate", "olah")}
    lines = [
        f"Run on {r['date']} with `{command}` (total {r['elapsed']:.0f} s).",
        "",
        "| | |",
        "| --- | --- |",
        f"| machine | {info['cores']} cores ({info['cpu']}), {info['memory']} RAM, Linux {info['kernel']} |",
        (f"| software | Python {info['python']}, uvicorn {info['uvicorn']}; nginx {info['nginx']}; "
        f"Olah {r['olah_version']} |"),
        f"| hubgate | commit {info['commit']}"
        + (f", **with mirror/fetcher.py as of {r['fetcher_from']}** (`--fetcher-from`)" if r["fetcher_from"] else "")
        + "; workers 1 unless said, fake hub as its only upstream |",
        f"| file | {size_mib} MiB LFS file of a Xet-enabled repo on the fake hub (origin → 302 → CDN port) |",
        (f"| repetitions | cold {r['reps']}, WAN {r['wan_reps']}, {r['clients']} clients {r['c16_reps']}, warm "
        f"{r['warm_reps']}; medians, order rotated |"),
        (f"| machine floors | SHA-256 on one core **{r['sha256_mbs']:.0f} MB/s**; writing {size_mib} MiB into a new "
        f"file (1 MiB pwrite) median **{fmt(med(s, 'write floor', 'cold'))} MB/s** ({spread(s, 'write floor', 'cold')}) |"),
        "",
        "**Cold, 1 client** (fresh cache each repetition; metadata warmed by a HEAD of config.json):",
        "",
        ("| path | median MB/s (min–max) | / direct | / write floor | median TTFB | upstream sent the file | "
        "server CPU s/GiB |"),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    floor = med(s, "write floor", "cold")
    for target, label in (("direct", "origin direct (resolve → 302 → CDN)"), ("hubgate", "hubgate cold"),
                          ("olah", "Olah 0.5.4 cold"), ("write floor", "write floor (new file, no network)")):
        mine = [x for x in s if x.target == target and x.phase == "cold"]
        if not mine:
            lines.append(f"| {label} | {r.get('olah_error') or 'not measured'} | | | | | |")
            continue
        if target == "write floor":
            lines.append(f"| {label} | {floor:.0f} ({spread(s, target, 'cold')}) | {ratio(floor, direct)} | 1 | | | |")
            continue
        fetches = statistics.median(x.upstream_fetches or 0 for x in mine)
        sent = statistics.median((x.upstream_bytes or 0) for x in mine) / r["size"]
        lines.append(
            f"| {label} | {med(s, target, 'cold'):.0f} ({spread(s, target, 'cold')}) | "
            f"{ratio(med(s, target, 'cold'), direct) if target != 'direct' else '1'} | "
            f"{ratio(med(s, target, 'cold'), floor)} | "
            f"{ttfb[target] * 1000:.1f} ms | {fetches:g} request{'s' if fetches != 1 else ''}, {sent:.2f}× size | "
            f"{med(s, target, 'cold', attr='server_cpu_per_gib'):.2f} |"
        )
    wan_direct, wan_hub = med(s, "direct", "wan"), med(s, "hubgate", "wan")
    lines += [
        "",
        (f"**Cold at WAN speed** (the fake's CDN throttled to {r['wan_mbs']} MB/s), 1 client: direct "
        f"{fmt(wan_direct)} MB/s ({spread(s, 'direct', 'wan')}), hubgate {fmt(wan_hub)} MB/s "
        f"({spread(s, 'hubgate', 'wan')}) = {ratio(wan_hub, wan_direct)} × direct; TTFB "
        f"{fmt(med(s, 'direct', 'wan', attr='ttfb'), '.3f')} s / {fmt(med(s, 'hubgate', 'wan', attr='ttfb'), '.3f')} s."),
        "",
        (f"**{r['clients']} concurrent cold clients** of the uncached file ({r['c16_reps']} repetitions, a fresh "
        "hubgate each; median aggregate):"),
        "",
        ("| server | aggregate MB/s (min–max) | slowest / fastest client MB/s | median TTFB | upstream sent the file, "
        "each repetition | most bytes the upstream sent | peak RSS |"),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for target, label in (("hubgate-w1", "hubgate, 1 worker"), ("hubgate-w2", "hubgate, 2 workers"),
                          ("direct", "origin direct (reference)")):
        mine = [y for y in s if y.target == target and y.phase == "c16"]
        if not mine:
            continue
        rss = r["rss"].get(target)
        most = max(y.upstream_bytes or 0 for y in mine)
        lines.append(
            f"| {label} | {med(s, target, 'c16', r['clients']):.0f} ({spread(s, target, 'c16', r['clients'])}) | "
            f"{min(min(y.per_client_mbs) for y in mine):.0f} / {max(max(y.per_client_mbs) for y in mine):.0f} | "
            f"{med(s, target, 'c16', r['clients'], 'ttfb') * 1000:.0f} ms | "
            f"**{', '.join(f'{y.upstream_fetches}×' for y in mine)}** | {most / MIB:.0f} MiB "
            f"({most / r['size']:.2f}× size) | {fmt(rss / MIB if rss else None, '.0f', ' MiB')} |"
        )
    warm_hub, warm_nginx, warm_olah = (med(s, t, "warm") for t in ("hubgate", "nginx", "olah"))
    warm8_hub, warm8_nginx = med(s, "hubgate", "warm", 8), med(s, "nginx", "warm", 8)
    lines += [
        "",
        "**Warm** (file in hubgate's cache; nginx serves the very blob file hubgate stored; page cache warm):",
        "",
        ("| clients | hubgate MB/s (min–max) | nginx MB/s (min–max) | hubgate / nginx | Olah MB/s (min–max) | "
        "hubgate / Olah |"),
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        (f"| 1 | {fmt(warm_hub)} ({spread(s, 'hubgate', 'warm')}) | {fmt(warm_nginx)} ({spread(s, 'nginx', 'warm')}) | "
        f"{ratio(warm_hub, warm_nginx)} | {fmt(warm_olah)} ({spread(s, 'olah', 'warm')}) | {ratio(warm_hub, warm_olah)} |"),
        (f"| 8 | {fmt(warm8_hub)} ({spread(s, 'hubgate', 'warm', 8)}) | {fmt(warm8_nginx)} "
        f"({spread(s, 'nginx', 'warm', 8)}) | {ratio(warm8_hub, warm8_nginx)} | – | – |"),
        "",
        "hubgate peak RSS (sampled sum over its process tree): " + ", ".join(
            f"{label} {r['rss'][key] / MIB:.0f} MiB" for key, label in (
                ("cold", "cold 1 client"), ("wan", "WAN"), ("hubgate-w1", "16 clients 1 worker"),
                ("hubgate-w2", "16 clients 2 workers"), ("warm", "warm")) if r["rss"].get(key)
        ) + (f"; Olah peak RSS {r['rss']['olah'] / MIB:.0f} MiB." if r["rss"].get("olah") else "."),
    ]
    c16 = {t: [y for y in s if y.target == t and y.phase == "c16"] for t in ("hubgate-w1", "hubgate-w2")}
    verdict = [
        f"cold throughput ≥ {TARGET_COLD} × direct: " + ("met" if hub_cold and direct and hub_cold / direct >= TARGET_COLD
                                                         else "**NOT met**")
        + (f" ({hub_cold / direct:.2f}; {hub_cold / floor:.2f} × the write floor; at WAN speed "
           f"{wan_hub / wan_direct:.2f} × direct)" if hub_cold and direct and floor and wan_hub and wan_direct else ""),
        "cold TTFB within 50 ms of direct: " + (
            "met" if ttfb["hubgate"] is not None and ttfb["hubgate"] - ttfb["direct"] <= TARGET_TTFB else "**NOT met**")
        + f" (+{(ttfb['hubgate'] - ttfb['direct']) * 1000:.0f} ms)",
        f"{r['clients']} clients → upstream sends the file once: " + ", ".join(
            f"{k[-2:]} {'met' if v and all(y.upstream_fetches == 1 and y.upstream_bytes == r['size'] for y in v) else '**NOT met**'}"
            for k, v in c16.items()),
        f"warm ≥ {TARGET_WARM} × nginx: " + (
            "met" if all(a and b and a / b >= TARGET_WARM for a, b in ((warm_hub, warm_nginx), (warm8_hub, warm8_nginx)))
            else "**NOT met**") + f" ({ratio(warm_hub, warm_nginx).strip('*')} with 1 client, "
        f"{ratio(warm8_hub, warm8_nginx).strip('*')} with 8)",
    ]
    lines += ["", "Targets: " + "; ".join(verdict) + "."]
    history = [
        r["date"], info["commit"], r["label"],
        f"{fmt(hub_cold)} / {fmt(direct)} = {ratio(hub_cold, direct)}",
        f"{fmt(ttfb['hubgate'] and ttfb['hubgate'] * 1000, '.0f')} / {fmt(ttfb['direct'] * 1000, '.0f')} ms",
        f"{fmt(med(s, 'write floor', 'cold'))}",
        f"{ratio(wan_hub, wan_direct)}",
        " / ".join(f"{max(y.upstream_fetches or 0 for y in v)}× {med(s, k, 'c16', r['clients']):.0f}" if v else "–"
                   for k, v in c16.items()),
        f"{ratio(warm_hub, warm_nginx)} / {ratio(warm8_hub, warm8_nginx)}",
        f"{fmt(olah_cold)} / {fmt(warm_olah)}",
        f"{max(r['rss'].get(k, 0) for k in ('cold', 'wan', 'hubgate-w1', 'warm')) / MIB:.0f} MiB",
    ]
    return "\n".join(lines), "| " + " | ".join(history) + " |"


# --------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the file (default 1024)")
    parser.add_argument("--reps", type=int, default=5, help="cold repetitions (default 5)")
    parser.add_argument("--wan-reps", type=int, default=3, help="cold repetitions at WAN speed (default 3; 0: skip)")
    parser.add_argument("--wan-mbs", type=int, default=200, help="the throttled upstream's MB/s (default 200)")
    parser.add_argument("--warm-reps", type=int, default=5, help="warm repetitions (default 5)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent cold clients (default 16)")
    parser.add_argument("--c16-reps", type=int, default=3, help="repetitions of the concurrent cold test (default 3)")
    parser.add_argument("--no-olah", action="store_true", help="leave Olah out")
    parser.add_argument("--fetcher-from", metavar="REV",
                        help="diagnostics: hubgate runs with src/hubgate/mirror/fetcher.py as of git revision REV "
                             "(the rest of the working tree as is), e.g. to measure before/after a change")
    parser.add_argument("--label", default="", help="a note for the history row (e.g. what changed)")
    parser.add_argument("--no-doc", action="store_true", help="print the results only; leave docs/benchmarks.md")
    opts = parser.parse_args()
    if not opts.no_doc:
        require_clean_tree()  # before a long run, not only when writing
    if min(opts.reps, opts.c16_reps, opts.warm_reps, opts.clients, opts.size_mib) < 1 or opts.wan_reps < 0:
        parser.error("--reps, --c16-reps, --warm-reps, --clients and --size-mib must be at least 1")
    size = opts.size_mib * MIB
    command = "python bench/mirror.py" + "".join(f" {a}" for a in sys.argv[1:])

    began = time.monotonic()
    ensure_tools()
    olah_exe = None if opts.no_olah else ensure_olah()
    olah_error = "left out (--no-olah)" if olah_exe is None else (olah_exe if isinstance(olah_exe, str) else None)
    tmp = Path(tempfile.mkdtemp(prefix="hubgate-mirror-bench-"))
    running: list = []  # everything to stop at the end, newest last
    samples: list[Sample] = []
    rss: dict[str, int] = {}

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)

    def stop(server) -> None:
        server.stop()
        if server in running:
            running.remove(server)

    def hubgate(name: str, workers: int = 1) -> Hubgate:
        hub, sampler = start_hubgate(tmp / name, config, workers, override_env)
        hub.sampler = sampler  # type: ignore[attr-defined]
        running.append(hub)
        return hub

    def retire(hub: Hubgate, rss_key: str) -> None:
        hub.sampler.stop()  # type: ignore[attr-defined]
        rss[rss_key] = max(rss.get(rss_key, 0), hub.sampler.peak)  # type: ignore[attr-defined]
        stop(hub)
        shutil.rmtree(hub.data, ignore_errors=True)

    try:
        override_env = fetcher_override(opts.fetcher_from, tmp / "fetcher-override") if opts.fetcher_from else None
        log(f"starting the fake hub; writing a {opts.size_mib} MiB file in {tmp}")
        fake = start_fakehub(tmp / "fake")
        running.append(fake)
        big = make_large_file(tmp / FILE_NAME, size)
        commit = fake.add_repo(REPO_ID, {"config.json": b'{"model_type": "bench"}\n', FILE_NAME: big})
        sha256 = commit.files[FILE_NAME].sha256
        upstream = Upstream(fake, sha256)
        config = write_hubgate_config(tmp / "hubgate.toml", fake)
        direct_url = f"{fake.url}/{REPO_ID}/resolve/main/{FILE_NAME}"
        path = f"/{REPO_ID}/resolve/main/{FILE_NAME}"
        sha_mbs = sha256_rate()
        log(f"SHA-256 on one core: {sha_mbs:.0f} MB/s")

        # -- 1. cold, 1 client --------------------------------------------------------------
        olah: Olah | None = None
        for rep in range(opts.reps):
            hub = hubgate(f"hub-cold-{rep}")
            warm_metadata(hub.url)
            if olah_exe is not None and olah_error is None:
                if olah is not None:
                    stop(olah)
                    shutil.rmtree(olah.home, ignore_errors=True)
                try:
                    olah = Olah.start(olah_exe, tmp / f"olah-{rep}", fake)  # type: ignore[arg-type]
                    running.append(olah)
                    warm_metadata(olah.url)
                except Exception as exc:  # noqa: BLE001 - recorded in the report
                    olah_error = f"Olah failed: {exc}"[:1000]
                    log(olah_error)
                    olah = None
            order = ["direct", "hubgate", "olah", "write floor"]
            order = order[rep % len(order):] + order[: rep % len(order)]
            for target in order:
                if target == "direct":
                    samples.append(measure("direct", "cold", direct_url, size, fake.process.pid, upstream, follow=True))
                elif target == "hubgate":
                    samples.append(measure("hubgate", "cold", hub.url + path, size, hub.process.pid, upstream))
                elif target == "olah" and olah is not None:
                    try:
                        samples.append(measure("olah", "cold", olah.url + path, size, olah.process.pid, upstream,
                                               follow=True))
                    except RuntimeError as exc:
                        olah_error = f"Olah's cold download failed: {exc}"[:1000]
                        log(olah_error)
                elif target == "write floor":
                    samples.append(write_floor(tmp / f"floor-{rep}.bin", size))
            blob = hub.data / "blobs" / sha256[:2] / sha256[2:4] / sha256
            if not blob.is_file():
                raise RuntimeError(f"hubgate did not cache the file as {blob}")
            if rep == 0 and file_sha256(blob) != sha256:
                raise RuntimeError("hubgate cached different bytes")
            retire(hub, "cold")
            (tmp / f"floor-{rep}.bin").unlink(missing_ok=True)

        # -- 2. cold at WAN speed --------------------------------------------------------------
        if opts.wan_reps:
            fake.fault("throttle", bytes_per_second=opts.wan_mbs * MB, on=["cdn"])
            for rep in range(opts.wan_reps):
                hub = hubgate(f"hub-wan-{rep}")
                warm_metadata(hub.url)
                for target in (["direct", "hubgate"] if rep % 2 == 0 else ["hubgate", "direct"]):
                    if target == "direct":
                        samples.append(measure("direct", "wan", direct_url, size, fake.process.pid, upstream,
                                               follow=True))
                    else:
                        samples.append(measure("hubgate", "wan", hub.url + path, size, hub.process.pid, upstream))
                retire(hub, "wan")
            fake.reset(requests=False)

        # -- 3. concurrent cold clients -------------------------------------------------------
        keep: Hubgate | None = None
        for workers in (1, 2):
            for rep in range(opts.c16_reps):
                hub = hubgate(f"hub-c16-w{workers}-{rep}", workers)
                warm_metadata(hub.url)
                samples.append(measure(f"hubgate-w{workers}", "c16", hub.url + path, size, hub.process.pid, upstream,
                                       clients=opts.clients))
                if workers == 1 and rep == opts.c16_reps - 1:
                    hub.sampler.stop()  # type: ignore[attr-defined]
                    rss["hubgate-w1"] = max(rss.get("hubgate-w1", 0), hub.sampler.peak)  # type: ignore[attr-defined]
                    keep = hub  # serves the warm phase
                else:
                    retire(hub, f"hubgate-w{workers}")
        for rep in range(opts.c16_reps):
            samples.append(measure("direct", "c16", direct_url, size, fake.process.pid, upstream,
                                   clients=opts.clients, follow=True))

        # -- 4. warm -------------------------------------------------------------------------
        assert keep is not None
        sampler = RssSampler(keep.process.pid)
        sampler.start()
        nginx = Nginx.start(tmp / "nginx", keep.data / "blobs")
        running.append(nginx)
        warm = {"hubgate": (keep.url + path, keep.process.pid), "nginx":
                (f"{nginx.url}/{sha256[:2]}/{sha256[2:4]}/{sha256}", nginx.process.pid)}
        if olah is not None and olah_error is None:
            warm["olah"] = (olah.url + path, olah.process.pid)
        for name, (url, _) in warm.items():  # checks the bytes and warms the page cache for every server
            verify_download(url, None, sha256)
        for clients in (1, 8):
            names = list(warm) if clients == 1 else ["hubgate", "nginx"]
            for rep in range(opts.warm_reps):
                for name in names[rep % len(names):] + names[: rep % len(names)]:
                    url, pid = warm[name]
                    samples.append(measure(name, "warm", url, size, pid, clients=clients))
        sampler.stop()
        rss["warm"] = sampler.peak
        if olah is not None and olah.sampler is not None:
            olah.sampler.stop()
            rss["olah"] = olah.sampler.peak

        results = {
            "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "size": size,
            "reps": opts.reps,
            "wan_reps": opts.wan_reps,
            "wan_mbs": opts.wan_mbs,
            "warm_reps": opts.warm_reps,
            "clients": opts.clients,
            "c16_reps": opts.c16_reps,
            "sha256_mbs": sha_mbs,
            "samples": samples,
            "rss": rss,
            "olah_version": OLAH_VERSION if olah_error is None else f"{OLAH_VERSION} (failed)",
            "olah_error": olah_error,
            "label": opts.label or (f"fetcher.py as of {opts.fetcher_from}" if opts.fetcher_from else "–"),
            "fetcher_from": opts.fetcher_from,
            "elapsed": time.monotonic() - began,
        }
        section, history_row = render(results, machine(), command)
        publish(section, history_row, "mirror", write=not opts.no_doc)
        return 0
    finally:
        for server in reversed(running):
            try:
                server.stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                log(f"stopping {type(server).__name__} failed: {exc}")
        shutil.rmtree(tmp, ignore_errors=True)
        log("stopped everything it started, removed the temporary folder")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as stopped:
        log(f"interrupted ({stopped or 'Ctrl-C'}); everything it started was stopped")
        sys.exit(130)

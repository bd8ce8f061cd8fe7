"""Prometheus metrics of one server: requests, bytes served and file answers by path (sendfile,
chunked, stream, memory, redirect, x-accel), authentication failures, and
the mirror's shared counters (cache hits and misses, single-flight waits, upstream bytes, integrity errors, evictions).

Request metrics live in the process that answered. With several worker processes they go to
prometheus_client's multiprocess files (`PROMETHEUS_MULTIPROC_DIR`, set by `serve` to the data
folder's `tmp/metrics/` before the workers start), so `/metrics` from any worker adds them all up.
The mirror's counters are already shared by every process and replica: they are read from the
database when scraped.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def prepare_multiprocess(tmp_dir: Path) -> None:
    """Before worker processes start: an empty folder for their metric files, named in the
    environment they inherit (files of an earlier run would add stale counts)."""
    folder = tmp_dir / "metrics"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(folder)


class _SharedCounters(Collector):
    """The mirror's counters from the metadata store, as `hubgate_mirror_<name>_total`."""

    def __init__(self, read: Callable[[], Mapping[str, int]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        for name, value in sorted(self.read().items()):
            yield CounterMetricFamily(f"hubgate_mirror_{name}", f"Mirror counter {name} (all processes)", value=value)


class Metrics:
    def __init__(self, shared_counters: Callable[[], Mapping[str, int]] | None = None) -> None:
        # In multiprocess mode values go to files (whatever the registry) and a scrape reads them all.
        self._multiprocess = MULTIPROC_ENV in os.environ
        self.requests = Counter("hubgate_requests", "Answered requests", ["route", "method", "status"], registry=None)
        self.bytes_served = Counter("hubgate_response_bytes", "Response body bytes, by how they were sent", ["path"],
                                    registry=None)
        self.file_answers = Counter("hubgate_file_responses", "File answers, by how their body went: sendfile, chunked,"
                                    " stream, memory, redirect or x-accel", ["path"], registry=None)
        self.auth_failures = Counter("hubgate_auth_failures", "Requests refused for bad credentials", registry=None)
        self._shared = _SharedCounters(shared_counters) if shared_counters is not None else None

    def answered(self, route: str, method: str, status: int, sent: int, path: str | None, auth_failed: bool) -> None:
        """Count one answer; `path`: how a file answer's body went (None: not a file answer, or no body)."""
        self.requests.labels(route, method, str(status)).inc()
        if sent:
            self.bytes_served.labels(path or "memory").inc(sent)
        if path is not None:
            self.file_answers.labels(path).inc()
        if auth_failed:
            self.auth_failures.inc()

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric (all worker processes in multiprocess mode)."""
        registry = CollectorRegistry()  # one per scrape: scrapes run side by side in threads
        if self._multiprocess:
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            for own in (self.requests, self.bytes_served, self.file_answers, self.auth_failures):
                registry.register(own)
        if self._shared is not None:
            registry.register(self._shared)
        return generate_latest(registry)

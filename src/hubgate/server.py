"""Run the ASGI app under uvicorn; workers rebuild the Hub from `HUBGATE_*` variables."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os

import uvicorn

from hubgate import __version__, logs, runstate
from hubgate.config import Settings
from hubgate.http.app import HubgateApp, create_app
from hubgate.hub import Hub
from hubgate.metrics import prepare_multiprocess
from hubgate.mirror.leftovers import check_part_files


def steady_memory() -> None:
    """Keep glibc from growing its heap for good under bursts of megabyte buffers, without a page
    fault for every byte received.

    glibc serves a large allocation by mmap() and returns it on free, until the first such free
    raises its threshold (up to 32 MiB): from then on file chunks held for slow clients land in
    the heap, fragment it, and RSS climbs a few MiB with every wave of clients. A fixed threshold
    above the socket reads and below the file chunks (`STREAM_CHUNK`) keeps those chunks in mmap(),
    so RSS goes back down once they are freed, while the receive path's buffers (256 KiB socket reads
    and h11's and uvicorn's copies of them) are reused from the heap: at 128 KiB each of those copies
    was a fresh mmap(), and receiving an upload cost ~6 s of page faults per GiB (docs/benchmarks.md).
    The trim threshold keeps a few MiB of freed heap for the next reads instead of returning and
    faulting it back each time. No-op elsewhere.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    except (OSError, AttributeError):
        pass


_M_TRIM_THRESHOLD = -1  # glibc's mallopt() parameter numbers
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 512 * 1024
TRIM_THRESHOLD = 8 * 1024 * 1024


def app_from_env() -> HubgateApp:
    """Factory used by uvicorn in each worker process."""
    os.umask(0o077)  # as `hubgate` itself sets it, for servers started as `uvicorn --factory ...`
    steady_memory()
    settings = Settings.load()
    logs.configure(settings)  # a worker process starts with no logging of its own
    return create_app(Hub(settings))


def serve(settings: Settings) -> None:
    # Workers are separate processes: hand them the resolved settings through the environment.
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            os.environ[f"HUBGATE_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    hub = Hub(settings)  # create the data folder, schema and signing key once, before workers start
    hub.settings.signing_key()
    hub.blobs.remove_partial_writes()  # uploads cut off by a crash: never visible, now gone
    hub.blobs.recover_deletes()  # a garbage collection cut off by a crash: its blob put back
    check_part_files(settings.tmp_dir)  # fetches cut off by a crash: kept only if whole and verified
    hub.close()
    if settings.workers > 1:  # every worker's request metrics in files /metrics adds up
        prepare_multiprocess(settings.tmp_dir)
    logs.configure(settings)
    logs.log_start(settings)
    runstate.publish(settings.data, {
        "version": __version__, "listen": f"{settings.host}:{settings.port}", "offline": settings.offline,
        "workers": settings.workers, "config": str(settings.config.absolute()) if settings.config else None,
    })
    try:
        uvicorn.run(
            "hubgate.server:app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            log_config=logs.config_dict(settings),
            access_log=False,  # hubgate writes its own access lines (http/access.py)
            http="httptools" if settings.uvicorn_http == "httptools" else "hubgate.http.protocol:GuardedH11Protocol",
            proxy_headers=bool(settings.http.trusted_proxies),
            forwarded_allow_ips=settings.http.trusted_proxies or None,
            timeout_keep_alive=settings.http.keep_alive,
        )
    finally:
        runstate.withdraw(settings.data)

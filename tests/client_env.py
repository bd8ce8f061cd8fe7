"""Helpers for tests that run real Hub clients (sentence-transformers, datasets) in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

from conftest import Server


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any HF_*/HUGGING_FACE_* setting, plus EXTRA."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE_"))}
    env.update(DISABLE_SAFETENSORS_CONVERSION="1", HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false",
               HF_DATASETS_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    env.update(extra)
    return env


def run_python(code: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def wait_for_log(server: Server, wanted: Callable[[str], bool], timeout: float = 30) -> list[str]:
    """Poll the server's log (filled by a reader thread) until a line satisfies WANTED; return that log."""
    deadline = time.monotonic() + timeout
    while True:
        lines = list(server.log)
        if any(wanted(line) for line in lines):
            return lines
        if time.monotonic() > deadline:
            raise AssertionError("no such line in the server log:\n" + "".join(lines[-40:]))
        time.sleep(0.02)

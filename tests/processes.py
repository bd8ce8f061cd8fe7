"""Child servers of the test run: each in a session of its own, started against a deadline, stopped
with its whole process group, and checked for at the end of the run.

Every child inherits `HUBGATE_TEST_RUN=<id of this run>`; `leftovers()` finds the processes that
still carry it (conftest fails the session on any), and `reap()` kills them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

RUN_MARK = "HUBGATE_TEST_RUN"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


_RUN_ID: list[str] = []  # this process's, once made


def run_id() -> str:
    """This run's id, set once in the environment every child inherits. Made by each pytest
    process (each pytest-xdist worker), never inherited: a worker must not take another's live
    servers for its own leftovers."""
    if not _RUN_ID:
        _RUN_ID.append(f"{os.getpid()}-{uuid.uuid4().hex[:12]}")
        os.environ[RUN_MARK] = _RUN_ID[0]
    return _RUN_ID[0]


class Child:
    """A server process whose combined stdout/stderr is read into `log` by a thread."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> None:
        self.args = list(args)
        self.log: list[str] = []
        self._changed = threading.Condition()
        self._eof = False
        self.process = subprocess.Popen(
            self.args, cwd=cwd, env={**env, RUN_MARK: run_id()}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.log.append(line)
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def wait_for(self, ready: Callable[[list[str]], bool], timeout: float = START_TIMEOUT, what: str = "start") -> None:
        """Return once `ready(log)` holds; stop the child and raise with its log if it exits first
        or `timeout` seconds pass."""
        with self._changed:
            self._changed.wait_for(lambda: ready(self.log) or self._eof, timeout)
            if ready(self.log):
                return
        self.stop()
        reason = "exited" if self._eof else f"did not {what} within {timeout:.0f}s"
        raise RuntimeError(f"{' '.join(self.args[:4])} ... {reason}:\n" + "".join(self.log[-80:]))

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        stop_group(self.process, timeout)


def until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def stop_group(process: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the process group led by `process`, SIGKILL it after `timeout` seconds; any member
    left once the leader is gone is killed too."""
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
    _signal_group(process.pid, signal.SIGKILL)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def leftovers() -> dict[int, str]:
    """{pid: command line} of live processes started by this run (this process excluded)."""
    mark = f"{RUN_MARK}={run_id()}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if mark not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if state != "Z":
            found[int(entry.name)] = cmdline
    return found


def reap(pids: dict[int, str]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

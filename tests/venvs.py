"""Virtual environments with pinned huggingface_hub releases, created once and reused.

Each environment lives in `<repo>/.venvs/<name>` (gitignored). It is built with `python -m venv`
and `pip install` from the package registry, and is marked complete by a small JSON stamp
written last; a later run reuses it when the stamp names the same requirements and the
installed huggingface_hub reports the pinned version. A file lock keeps two concurrent test
runs from building the same environment at once.

Run `python tests/venvs.py` to build every client environment ahead of a test run.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_ROOT = Path(os.environ.get("HUBGATE_TEST_VENVS", ROOT / ".venvs"))
STAMP = "hubgate-venv.json"
INSTALL_TIMEOUT = 1200


@dataclass(frozen=True)
class ClientSpec:
    """One pinned client: a venv name, the pip requirements, and the version to expect."""

    name: str
    hub_version: str
    requirements: tuple[str, ...]

    @property
    def path(self) -> Path:
        return VENV_ROOT / self.name


def hub_client(version: str) -> ClientSpec:
    return ClientSpec(f"hf-hub-{version}", version, (f"huggingface_hub[hf_xet]=={version}",))


# 2.4.0: the current release (httpx2, Xet uploads); 1.33.0: a 1.x after the switch to Xet
# uploads (1.20); 1.19.0: the last 1.x that asks the LFS batch endpoint; 0.36.2: `requests`.
CLIENTS: dict[str, ClientSpec] = {
    spec.hub_version: spec for spec in map(hub_client, ("2.4.0", "1.33.0", "1.19.0", "0.36.2"))
}


@dataclass(frozen=True)
class Venv:
    path: Path
    spec: ClientSpec
    created: bool  # True when this call built it, False when an existing one was reused
    seconds: float

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.path / "bin" / name


def _installed_version(python: Path, distribution: str) -> str | None:
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({distribution!r}))"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def _is_ready(spec: ClientSpec) -> bool:
    stamp = spec.path / STAMP
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    if recorded.get("requirements") != list(spec.requirements):
        return False
    return _installed_version(spec.path / "bin" / "python", "huggingface_hub") == spec.hub_version


def _run(args: list[str], log: list[str]) -> None:
    done = subprocess.run(args, check=False, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    log.append(f"$ {' '.join(args)}\n{done.stdout}{done.stderr}")
    if done.returncode != 0:
        raise RuntimeError(f"command failed ({done.returncode}):\n" + "\n".join(log))


def ensure(spec: ClientSpec) -> Venv:
    """The venv for `spec`, built now if it is missing, incomplete or holds another version."""
    started = time.monotonic()
    VENV_ROOT.mkdir(parents=True, exist_ok=True)
    with open(VENV_ROOT / f"{spec.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_ready(spec):
            return Venv(spec.path, spec, False, time.monotonic() - started)
        shutil.rmtree(spec.path, ignore_errors=True)
        log: list[str] = []
        try:
            _run([sys.executable, "-m", "venv", str(spec.path)], log)
            python = str(spec.path / "bin" / "python")
            _run(
                [
                    python,
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--prefer-binary",
                    *spec.requirements,
                ],
                log,
            )
            found = _installed_version(spec.path / "bin" / "python", "huggingface_hub")
            if found != spec.hub_version:
                raise RuntimeError(f"{spec.name}: pip installed huggingface_hub {found}, expected {spec.hub_version}")
        except BaseException:
            shutil.rmtree(spec.path, ignore_errors=True)
            raise
        (spec.path / STAMP).write_text(json.dumps({"requirements": list(spec.requirements), "log": log[-1][-4000:]}))
        return Venv(spec.path, spec, True, time.monotonic() - started)


def ensure_many(specs: list[ClientSpec]) -> dict[str, Venv | BaseException]:
    """Build or reuse several venvs in parallel; a failure is returned in place of its Venv."""

    def one(spec: ClientSpec) -> Venv | BaseException:
        try:
            return ensure(spec)
        except Exception as exc:  # noqa: BLE001 - reported by the test that needs this venv
            return exc

    with ThreadPoolExecutor(max_workers=max(1, len(specs))) as pool:
        return dict(zip((s.hub_version for s in specs), pool.map(one, specs)))


if __name__ == "__main__":
    wanted = [CLIENTS[v] for v in sys.argv[1:]] or list(CLIENTS.values())
    for version, result in ensure_many(wanted).items():
        if isinstance(result, BaseException):
            print(f"{version}: FAILED\n{result}")
        else:
            print(f"{version}: {'created' if result.created else 'reused'} {result.path} in {result.seconds:.1f}s")

"""Virtual environments with pinned huggingface_hub releases, created once and reused.

Each environment lives in `<repo>/.venvs/<name>` (gitignored). It is built with `python -m venv`
and `pip install` from the package registry, every dependency pinned by
`tests/client-constraints.txt` (hf_xet, httpx, requests and the rest; a spec may override some of
those pins, e.g. an older hf_xet), and is marked complete by
a small JSON stamp written last; a later run reuses it when the stamp names the same
requirements and the installed huggingface_hub and every constrained package report the pinned
versions. A file lock keeps two concurrent test
runs from building the same environment at once.

Run `python tests/venvs.py` to build every client environment ahead of a test run.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
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
CONSTRAINTS = Path(__file__).resolve().parent / "client-constraints.txt"
INSTALL_TIMEOUT = 1200


@dataclass(frozen=True)
class ClientSpec:
    """One pinned client: a venv name, the pip requirements, the version to expect, and the
    constraints it pins otherwise than `client-constraints.txt` ({distribution: version})."""

    name: str
    hub_version: str
    requirements: tuple[str, ...]
    overrides: tuple[tuple[str, str], ...] = ()

    @property
    def path(self) -> Path:
        return VENV_ROOT / self.name

    def pins(self) -> dict[str, str]:
        """{distribution: version} this venv must hold besides huggingface_hub."""
        found = pins()
        for name, version in self.overrides:
            found = {k: v for k, v in found.items() if _normal(k) != _normal(name)}
            found[name] = version
        return found


def hub_client(version: str) -> ClientSpec:
    return ClientSpec(f"hf-hub-{version}", version, (f"huggingface_hub[hf_xet]=={version}",))


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# 2.4.0: the current release (httpx2, Xet uploads); 1.33.0: a 1.x after the switch to Xet
# uploads (1.20); 1.19.0: the last 1.x that asks the LFS batch endpoint; 0.36.2: `requests`.
CLIENTS: dict[str, ClientSpec] = {
    spec.hub_version: spec for spec in map(hub_client, ("2.4.0", "1.33.0", "1.19.0", "0.36.2"))
}
# 2.4.0 with the oldest hf_xet it accepts (>=1.6): no xorb upload grants, which 1.8 asks for first.
HF_XET_1_6 = ClientSpec("hf-hub-2.4.0-hf-xet-1.6.0", "2.4.0", ("huggingface_hub[hf_xet]==2.4.0",),
                        (("hf-xet", "1.6.0"),))


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


PROBE = """
import importlib.metadata as m, json, sys
found = {}
for name in sys.argv[1:]:
    try:
        found[name] = m.version(name)
    except m.PackageNotFoundError:
        found[name] = None
print(json.dumps(found))
"""


def pins() -> dict[str, str]:
    """{distribution: version} from the constraints file."""
    found = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            found[name.strip()] = version.strip()
    return found


def _installed(python: Path, names: list[str]) -> dict[str, str | None] | None:
    """{distribution: installed version or None} in the venv of `python`; None if it cannot run."""
    if not python.exists():
        return None
    probe = subprocess.run([str(python), "-c", PROBE, *names], check=False, capture_output=True, text=True, timeout=120)
    return json.loads(probe.stdout) if probe.returncode == 0 else None


def drift(spec: ClientSpec) -> list[str]:
    """How the venv differs from its pins (empty: it matches them)."""
    wanted = {"huggingface_hub": spec.hub_version, **spec.pins()}
    found = _installed(spec.path / "bin" / "python", list(wanted))
    if found is None:
        return ["no working python"]
    if found["huggingface_hub"] is None:
        return ["huggingface_hub missing"]
    return [f"{name} {found[name]} != {version}" for name, version in wanted.items()
            if found[name] is not None and found[name] != version]


def _is_ready(spec: ClientSpec) -> bool:
    stamp = spec.path / STAMP
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return recorded.get("requirements") == _recorded(spec) and not drift(spec)


def _recorded(spec: ClientSpec) -> list[str]:
    """What the stamp records: the requirements, and the overridden pins if any."""
    return [*spec.requirements, *(f"{name}=={version}" for name, version in spec.overrides)]


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
            constraints = spec.path / "constraints.txt"  # the shared pins, with this venv's overrides
            constraints.write_text("".join(f"{name}=={version}\n" for name, version in spec.pins().items()))
            _run(
                [
                    python,
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--prefer-binary",
                    "--constraint",
                    str(constraints),
                    *spec.requirements,
                ],
                log,
            )
            wrong = drift(spec)
            if wrong:
                raise RuntimeError(f"{spec.name}: pip installed other versions than pinned: {', '.join(wrong)}")
        except BaseException:
            shutil.rmtree(spec.path, ignore_errors=True)
            raise
        (spec.path / STAMP).write_text(json.dumps({"requirements": _recorded(spec), "log": log[-1][-4000:]}))
        return Venv(spec.path, spec, True, time.monotonic() - started)


def ensure_many(specs: list[ClientSpec]) -> dict[str, Venv | BaseException]:
    """Build or reuse several venvs in parallel, by spec name; a failure is returned in place of its Venv."""

    def one(spec: ClientSpec) -> Venv | BaseException:
        try:
            return ensure(spec)
        except Exception as exc:  # noqa: BLE001 - reported by the test that needs this venv
            return exc

    with ThreadPoolExecutor(max_workers=max(1, len(specs))) as pool:
        return dict(zip((s.name for s in specs), pool.map(one, specs), strict=True))


if __name__ == "__main__":
    every = {spec.name: spec for spec in [*CLIENTS.values(), HF_XET_1_6]}
    wanted = [CLIENTS[v] if v in CLIENTS else every[v] for v in sys.argv[1:]] or list(every.values())
    for name, result in ensure_many(wanted).items():
        if isinstance(result, BaseException):
            print(f"{name}: FAILED\n{result}")
        else:
            print(f"{name}: {'created' if result.created else 'reused'} {result.path} in {result.seconds:.1f}s")

"""`hubgate lock | pull | verify | bundle` against real hubgate servers: an origin and a mirror of it."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import tarfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, snapshot_download

from client_env import clean_env, run_python
from conftest import Server, start_server
from test_mirror_hubgate import start_mirror

WEIGHTS_23 = os.urandom(3_000_000)
WEIGHTS_24 = os.urandom(3_100_000)
V23 = {"config.json": b'{"v": 23}', "tokenizer.json": b'{"tok": 1}', "nested/notes.txt": b"hello",
       "model.safetensors": WEIGHTS_23}
# v24 changes the weights and the config, removes the notes and adds a file.
V24 = {"config.json": b'{"v": 24}', "tokenizer.json": b'{"tok": 1}', "extra.txt": b"new", "model.safetensors": WEIGHTS_24}
SERVER_MODULES = ("starlette", "sqlalchemy", "dulwich", "uvicorn", "alembic", "pydantic_settings")

# Load a file offline from an HF cache by the revision name, as from_pretrained does.
LOAD = """
import sys
from huggingface_hub import hf_hub_download
print(open(hf_hub_download(sys.argv[1], sys.argv[2], revision=sys.argv[3], cache_dir=sys.argv[4]), "rb").read().hex())
"""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hubgate(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hubgate", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=clean_env(**(env or {})))


def load_offline(cache: Path, repo: str, filename: str, revision: str) -> bytes:
    done = run_python(LOAD, repo, filename, revision, str(cache), env=clean_env(HF_HUB_OFFLINE="1"))
    assert done.returncode == 0, done.stderr
    return bytes.fromhex(done.stdout.strip())


def publish(api: HfApi, repo: str, files: dict[str, bytes], tag: str, delete: tuple[str, ...] = ()) -> str:
    ops = [CommitOperationAdd(path, data) for path, data in files.items()]
    ops += [CommitOperationDelete(path) for path in delete]
    commit = api.create_commit(repo, ops, commit_message=tag).oid
    api.create_tag(repo, tag=tag, revision=commit)
    return commit


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, dict[str, str]]]:
    """An upstream with team/voice at v23 and v24, and a private repo."""
    with start_server(tmp_path_factory.mktemp("origin")) as srv:  # stopped even if the set-up fails
        srv.add_user("team")
        token = srv.token("team", "write")
        api = HfApi(endpoint=srv.url, token=token)
        api.create_repo("team/voice")
        commits = {"v23": publish(api, "team/voice", V23, "v23")}
        commits["v24"] = publish(api, "team/voice", V24, "v24", delete=("nested/notes.txt",))
        api.create_repo("team/secret", private=True)
        commits["secret"] = publish(api, "team/secret", {"w.bin": b"s" * 100}, "v1")
        yield srv, token, commits


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory, origin) -> Iterator[Server]:
    with start_mirror(tmp_path_factory.mktemp("mirror"), origin[0], origin[1], revision_ttl=0) as srv:
        yield srv


def test_lock_records_the_commit_and_every_file(mirror: Server, origin, tmp_path: Path) -> None:
    done = hubgate("lock", "team/voice@v23", "--endpoint", mirror.url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lock = tomllib.loads((tmp_path / "hubgate.lock").read_text())
    (repo,) = lock["repo"]
    assert (repo["id"], repo["type"], repo["revision"], repo["commit"]) == ("team/voice", "model", "v23", origin[2]["v23"])
    files = {f["path"]: f for f in repo["files"]}
    assert set(files) == {".gitattributes", *V23}
    for path, data in V23.items():
        assert files[path]["sha256"] == sha256(data) and files[path]["size"] == len(data)
    assert files["model.safetensors"]["lfs"] is True and files["config.json"]["lfs"] is False
    assert files["config.json"]["blob"] == hashlib.sha1(b"blob 9\0" + V23["config.json"]).hexdigest()
    lines = [line for line in (tmp_path / "hubgate.lock").read_text().splitlines() if line.startswith("  { path = ")]
    assert [tomllib.loads(f"f = {line.rstrip(',')}")["f"]["path"] for line in lines] == sorted(files)  # one line per file

    narrowed = hubgate("lock", "team/voice@v23", "--include", "*.json", "--exclude", "tok*", "-o", "json.lock",
                       "--endpoint", mirror.url, cwd=tmp_path)
    assert narrowed.returncode == 0, narrowed.stderr
    (repo,) = tomllib.loads((tmp_path / "json.lock").read_text())["repo"]
    assert [f["path"] for f in repo["files"]] == ["config.json"] and repo["include"] == ["*.json"]

    (tmp_path / "models.toml").write_text('[[repo]]\nid = "team/voice"\nrevision = "v23"\ninclude = ["*.json"]\nexclude = ["tok*"]\n')
    from_spec = hubgate("lock", "--spec", "models.toml", "-o", "spec.lock", "--endpoint", mirror.url, cwd=tmp_path)
    assert from_spec.returncode == 0, from_spec.stderr
    assert tomllib.loads((tmp_path / "spec.lock").read_text())["repo"] == [repo]


def test_moved_tag_pull_gets_the_locked_commit_and_check_notices(origin, mirror: Server, tmp_path: Path) -> None:
    upstream, token, _ = origin
    api = HfApi(endpoint=upstream.url, token=token)
    api.create_repo("team/moving")
    first = publish(api, "team/moving", {"w.bin": b"first weights"}, "stable")
    assert hubgate("lock", "team/moving@stable", "--endpoint", mirror.url, cwd=tmp_path).returncode == 0
    assert hubgate("lock", "--check", cwd=tmp_path).returncode == 0

    second = api.create_commit("team/moving", [CommitOperationAdd("w.bin", b"other weights!")], commit_message="retrain").oid
    api.delete_tag("team/moving", tag="stable")
    api.create_tag("team/moving", tag="stable", revision=second)

    check = hubgate("lock", "--check", cwd=tmp_path)
    assert check.returncode == 1 and f"commit {first} -> {second}" in check.stdout and "changed  w.bin" in check.stdout
    cache = tmp_path / "cache"
    pulled = hubgate("pull", "--cache-dir", cache, cwd=tmp_path)
    assert pulled.returncode == 0, pulled.stderr
    assert load_offline(cache, "team/moving", "w.bin", "stable") == b"first weights"
    assert (cache / "models--team--moving" / "refs" / "stable").read_text() == first

    upgraded = hubgate("lock", "--upgrade", cwd=tmp_path)
    assert upgraded.returncode == 0 and "changed  w.bin (13 B -> 14 B)" in upgraded.stdout
    assert tomllib.loads((tmp_path / "hubgate.lock").read_text())["repo"][0]["commit"] == second


def test_verify_names_changed_missing_and_extra_files(mirror: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert hubgate("lock", "team/voice@v23", "--endpoint", mirror.url, cwd=tmp_path).returncode == 0
    assert hubgate("pull", "--cache-dir", cache, "-q", cwd=tmp_path).returncode == 0
    ok = hubgate("verify", "--cache-dir", cache, cwd=tmp_path)
    assert ok.returncode == 0 and "5 files match" in ok.stdout, ok.stdout

    snapshot = next((cache / "models--team--voice" / "snapshots").iterdir())
    (snapshot / "config.json").resolve().write_bytes(b'{"v": 99}')  # same size, other bytes
    (snapshot / "nested" / "notes.txt").unlink()
    (snapshot / "stray.txt").write_text("?")
    bad = hubgate("verify", "--cache-dir", cache, cwd=tmp_path)
    assert bad.returncode == 1
    assert "changed  team/voice@" in bad.stdout and "config.json" in bad.stdout
    assert any(line.startswith("missing") and "nested/notes.txt" in line for line in bad.stdout.splitlines())
    assert any(line.startswith("extra") and "stray.txt" in line for line in bad.stdout.splitlines())
    assert "1 missing, 1 changed" in bad.stderr

    (cache / "models--team--voice" / "refs" / "v23").write_text("0" * 40)  # `hf download` after the tag moved
    moved = hubgate("verify", "--cache-dir", cache, cwd=tmp_path)
    assert "changed  team/voice@v23: " in moved.stdout and f"not the locked {snapshot.name}" in moved.stdout
    assert "1 missing, 2 changed" in moved.stderr
    assert hubgate("pull", "--cache-dir", cache, "-q", "--rehash", cwd=tmp_path).returncode == 0  # repairs all of it
    assert hubgate("verify", "--cache-dir", cache, cwd=tmp_path).returncode == 0


def test_v23_and_v24_side_by_side_in_one_cache(mirror: Server, origin, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for tag in ("v23", "v24"):
        assert hubgate("lock", f"team/voice@{tag}", "-o", f"{tag}.lock", "--endpoint", mirror.url, cwd=tmp_path).returncode == 0
        pulled = hubgate("pull", "--lock", f"{tag}.lock", "--cache-dir", cache, cwd=tmp_path)
        assert pulled.returncode == 0, pulled.stderr
    second = hubgate("pull", "--lock", "v24.lock", "--cache-dir", cache, cwd=tmp_path)
    assert "0 files fetched" in second.stdout and "5 already present" in second.stdout  # a no-op pull
    for tag in ("v23", "v24"):
        assert hubgate("verify", "--lock", f"{tag}.lock", "--cache-dir", cache, cwd=tmp_path).returncode == 0
    assert load_offline(cache, "team/voice", "model.safetensors", "v23") == WEIGHTS_23
    assert load_offline(cache, "team/voice", "model.safetensors", "v24") == WEIGHTS_24
    assert load_offline(cache, "team/voice", "config.json", origin[2]["v23"]) == b'{"v": 23}'
    # the unchanged tokenizer is stored once
    assert len(list((cache / "models--team--voice" / "blobs").iterdir())) == len({*V23.values(), *V24.values()}) + 1


def test_an_endpoint_down_fails_over_and_parallel_ranges(mirror: Server, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    assert hubgate("lock", "team/voice@v23", "--endpoint", mirror.url, cwd=tmp_path).returncode == 0
    pulled = hubgate("pull", "--endpoint", dead_url, "--endpoint", mirror.url, "--local-dir", tmp_path / "out",
                     "--range-size", "1000000", cwd=tmp_path)
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "out" / "team" / "voice" / "model.safetensors").read_bytes() == WEIGHTS_23
    assert not list((tmp_path / "out").rglob("*.hubgate-part"))
    assert hubgate("verify", "--local-dir", tmp_path / "out", cwd=tmp_path).returncode == 0


def test_refused_token_is_a_clear_error(origin, tmp_path: Path) -> None:
    upstream, token, _ = origin
    locked = hubgate("lock", "team/secret@v1", "--endpoint", f"{upstream.url}#ORIGIN", cwd=tmp_path, env={"ORIGIN": token})
    assert locked.returncode == 0, locked.stderr
    refused = hubgate("pull", "--cache-dir", tmp_path / "c", "-q", cwd=tmp_path, env={"ORIGIN": "hg_not_a_token"})
    assert refused.returncode == 1
    assert "team/secret" in refused.stderr and "token refused" in refused.stderr, refused.stderr
    anonymous = hubgate("pull", "--endpoint", upstream.url, "--cache-dir", tmp_path / "c", "-q", cwd=tmp_path)
    assert anonymous.returncode == 1 and "no token sent" in anonymous.stderr, anonymous.stderr
    assert not (tmp_path / "c" / "models--team--secret" / "snapshots").exists()


def test_bundle_into_a_fresh_server_without_upstream(mirror: Server, origin, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert hubgate("lock", "team/voice@v23", "--endpoint", mirror.url, cwd=tmp_path).returncode == 0
    assert hubgate("pull", "--cache-dir", cache, "-q", cwd=tmp_path).returncode == 0
    exported = hubgate("bundle", "export", "-o", "models.tar", "--cache-dir", cache, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    with tarfile.open(tmp_path / "models.tar") as tar:
        assert sorted(tar.getnames()) == sorted(["hubgate.lock", *(f"blobs/{sha256(d)}" for d in {*V23.values()}),
                                                 f"blobs/{sha256((cache / 'models--team--voice' / 'snapshots' / origin[2]['v23'] / '.gitattributes').read_bytes())}"])

    tampered = tmp_path / "tampered.tar"
    data = bytearray((tmp_path / "models.tar").read_bytes())
    data[data.index(WEIGHTS_23[:64]) + 100] ^= 0xFF
    tampered.write_bytes(bytes(data))
    refused = hubgate("bundle", "import", tampered, "--data", tmp_path / "site", cwd=tmp_path)
    assert refused.returncode == 1 and "does not match" in refused.stderr
    assert not [p for p in (tmp_path / "site").rglob("*") if p.is_file() and "blobs" in p.parts]

    imported = hubgate("bundle", "import", "models.tar", "--data", tmp_path / "site", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    site = start_server(tmp_path / "site", "--offline")
    try:
        snap = snapshot_download("team/voice", revision="v23", endpoint=site.url, token=False, cache_dir=tmp_path / "c2")
        assert (Path(snap) / "model.safetensors").read_bytes() == WEIGHTS_23
        assert (Path(snap) / "nested" / "notes.txt").read_bytes() == b"hello"
        assert Path(snap).name == origin[2]["v23"]
    finally:
        site.stop()

    fetched = hubgate("bundle", "export", "-o", "fetched.tar", "--endpoint", mirror.url, cwd=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    with tarfile.open(tmp_path / "fetched.tar") as ours, tarfile.open(tmp_path / "models.tar") as theirs:
        assert ours.getnames() == theirs.getnames()

    into_cache = hubgate("bundle", "import", "models.tar", "--cache-dir", tmp_path / "c3", cwd=tmp_path)
    assert into_cache.returncode == 0, into_cache.stderr
    assert load_offline(tmp_path / "c3", "team/voice", "model.safetensors", "v23") == WEIGHTS_23


def test_sbom_lists_the_locked_models(mirror: Server, origin, tmp_path: Path) -> None:
    done = hubgate("lock", "team/voice@v23", "--sbom", "sbom.json", "--endpoint", mirror.url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    bom = json.loads((tmp_path / "sbom.json").read_text())
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5"
    (model,) = bom["components"]
    assert model["purl"].startswith(f"pkg:huggingface/team/voice@{origin[2]['v23']}?repository_url=")
    assert model["type"] == "machine-learning-model"
    hashes = {c["name"]: c["hashes"][0]["content"] for c in model["components"]}
    assert hashes["model.safetensors"] == sha256(WEIGHTS_23)


def test_client_commands_load_none_of_the_server(mirror: Server, tmp_path: Path) -> None:
    """`hubgate pull --help`, a no-op pull and verify, as the `hubgate` entry point runs them."""
    assert hubgate("lock", "team/voice@v23", "--endpoint", mirror.url, cwd=tmp_path).returncode == 0
    assert hubgate("pull", "--cache-dir", tmp_path / "c", "-q", cwd=tmp_path).returncode == 0
    code = ("import sys\nfrom hubgate.__main__ import main\nforbidden = set(sys.argv[2:])\n"
            "for args in (['pull', '--help'], ['pull', '--cache-dir', sys.argv[1], '-q'], ['verify', '--cache-dir', sys.argv[1]]):\n"
            "    sys.argv = ['hubgate', *args]\n"
            "    try:\n        main()\n    except SystemExit as exit:\n        assert not exit.code, (args, exit.code)\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & forbidden))\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "c"), *SERVER_MODULES, "typer", "pydantic", "httpx"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60, env=clean_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_partial_bundle_keeps_the_listing_a_mirror_holds(mirror: Server, origin, tmp_path: Path) -> None:
    commit = origin[2]["v23"]
    tree = f"{mirror.url}/api/models/team/voice/tree/{commit}"
    full = {e["path"] for e in httpx.get(tree, params={"recursive": "true"}).json()}
    assert hubgate("lock", "team/voice@v23", "--include", "*.json", "--endpoint", mirror.url, cwd=tmp_path).returncode == 0
    assert hubgate("bundle", "export", "-o", "json.tar", "--endpoint", mirror.url, cwd=tmp_path).returncode == 0
    imported = hubgate("bundle", "import", "json.tar", "--data", mirror.data, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert {e["path"] for e in httpx.get(tree, params={"recursive": "true"}).json()} == full


# What the client package may import from hubgate: itself and the modules it shares with the server.
CLIENT_MAY_IMPORT = ("hubgate.client", "hubgate.errors", "hubgate.constants", "hubgate.ids", "hubgate.git.blobid")


def test_the_client_package_imports_no_server_module() -> None:
    """Static: every `import hubgate...` under src/hubgate/client (lazy ones included) stays in the
    client package or the shared modules; `bundle import --data` gets server code from the entry point."""
    import ast

    import hubgate.client.commands

    found = []
    for source in Path(hubgate.client.commands.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if name == "hubgate" and isinstance(node, ast.ImportFrom):
                    names_from = [f"hubgate.{a.name}" for a in node.names]
                else:
                    names_from = [name]
                found += [(source.name, n) for n in names_from if n.startswith("hubgate")
                          and not any(n == ok or n.startswith(ok + ".") for ok in CLIENT_MAY_IMPORT)
                          and n != "hubgate.__version__"]
    assert found == []

"""One full round trip against a hubgate server with whatever huggingface_hub is installed.

Run with a client venv's python (never imported by pytest):

    HUBGATE_URL=http://127.0.0.1:PORT HUBGATE_OWNER_TOKEN=... HUBGATE_OUTSIDER_TOKEN=... \
        python scenario.py REPO_NAME WORK_DIR

It must run unchanged on huggingface_hub 0.36 (requests), 1.x (httpx) and 2.x (httpx2). Each step
is printed as it starts; any failure ends the script with a traceback and a non-zero exit code.
The last line printed on success is `SCENARIO-RESULT {json}` with the facts the calling test
checks on the server side (commit ids, LFS oids).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import traceback
from pathlib import Path

import huggingface_hub
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

ENDPOINT = os.environ["HUBGATE_URL"]
OWNER_TOKEN = os.environ["HUBGATE_OWNER_TOKEN"]
OUTSIDER_TOKEN = os.environ["HUBGATE_OUTSIDER_TOKEN"]
BIG_SIZE = 11 * 1024 * 1024  # above the server's 10 MiB LFS threshold, whatever .gitattributes says

_cache_counter = 0


def step(message: str) -> None:
    print(f"[{huggingface_hub.__version__}] {message}", flush=True)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expect_error(kind: type[BaseException], action, what: str) -> BaseException:  # type: ignore[no-untyped-def]
    try:
        action()
    except kind as exc:
        step(f"  ok: {what} raised {type(exc).__name__}")
        return exc
    except Exception as exc:
        raise AssertionError(f"{what}: expected {kind.__name__}, got {type(exc).__name__}: {exc}") from exc
    raise AssertionError(f"{what}: expected {kind.__name__}, but it succeeded")


def fresh_cache(work: Path, label: str) -> Path:
    global _cache_counter
    _cache_counter += 1
    return work / "caches" / f"{_cache_counter:02d}-{label.replace('/', '_')}"


def make_folder(root: Path) -> dict[str, bytes]:
    """Small text files, an empty file, a nested folder, a pattern-LFS file and a >10 MiB binary."""
    files = {
        "README.md": b"---\nlicense: mit\ntags:\n- hubgate-test\n---\n# Client matrix\n",
        "config.json": json.dumps({"hidden_size": 8, "client": huggingface_hub.__version__}).encode(),
        "empty.txt": b"",
        "nested/data.json": b'{"rows": [1, 2, 3]}\n',
        "nested/deep/notes.txt": "caf\u00e9 \u2603 notes\n".encode(),
        "nested/deep/weights.bin": os.urandom(300_000),
        "model.safetensors": os.urandom(BIG_SIZE),
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def compare_tree(label: str, folder: Path, expected: dict[str, bytes]) -> None:
    """Every expected file is in `folder` with the same sha256, and nothing else but .gitattributes."""
    found = {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not p.relative_to(folder).as_posix().startswith(".cache/")
    }
    check(
        found == set(expected) | {".gitattributes"},
        f"{label}: files {sorted(found)} != {sorted(set(expected))} + .gitattributes",
    )
    for name, data in expected.items():
        got = (folder / name).read_bytes()
        check(sha256(got) == sha256(data), f"{label}: {name} differs (got {len(got)} bytes, expected {len(data)})")


def download_one(repo_id: str, filename: str, revision: str, work: Path, token: object = OWNER_TOKEN) -> bytes:
    path = hf_hub_download(
        repo_id, filename, revision=revision, endpoint=ENDPOINT, token=token, cache_dir=fresh_cache(work, revision)
    )
    return Path(path).read_bytes()


def tree_listing(api: HfApi, repo_id: str, revision: str) -> dict[str, object]:
    return {entry.path: entry for entry in api.list_repo_tree(repo_id, revision=revision, recursive=True)}


def dataset_round_trip(api: HfApi, anonymous: HfApi, repo_id: str, work: Path) -> dict[str, object]:
    """A private dataset repo: the `datasets/` prefix on every file, LFS and API path."""
    step(f"dataset repo {repo_id}: create, upload, download, list, delete")
    api.create_repo(repo_id, repo_type="dataset", private=True)
    folder = work / "dataset"
    files = {
        "README.md": b"---\nconfigs:\n- config_name: default\n  data_files: data/*.csv\n---\n# data\n",
        "data/train.csv": b"text,label\nhello,1\nworld,0\n",
        "data/train.parquet": os.urandom(1024 * 1024),
    }
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    sha = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset").oid
    listed = sorted(api.list_repo_files(repo_id, repo_type="dataset"))
    check(listed == sorted(set(files) | {".gitattributes"}), f"dataset list_repo_files = {listed}")
    for revision in ("main", sha):
        path = hf_hub_download(
            repo_id,
            "data/train.parquet",
            repo_type="dataset",
            revision=revision,
            endpoint=ENDPOINT,
            token=OWNER_TOKEN,
            cache_dir=fresh_cache(work, f"ds-{revision}"),
        )
        check(Path(path).read_bytes() == files["data/train.parquet"], f"dataset parquet at {revision} differs")
    snap = snapshot_download(
        repo_id, repo_type="dataset", endpoint=ENDPOINT, token=OWNER_TOKEN, cache_dir=fresh_cache(work, "ds-snap")
    )
    compare_tree("dataset snapshot", Path(snap), files)
    lfs = api.dataset_info(repo_id, files_metadata=True).siblings
    lfs_files = sorted(s.rfilename for s in lfs if s.lfs is not None)
    check(lfs_files == ["data/train.parquet"], f"dataset LFS files {lfs_files}")
    expect_error(RepositoryNotFoundError, lambda: anonymous.dataset_info(repo_id), "anonymous dataset_info")
    api.delete_repo(repo_id, repo_type="dataset")
    expect_error(RepositoryNotFoundError, lambda: api.dataset_info(repo_id), "dataset_info after delete_repo")
    return {"repo_id": repo_id, "commit": sha, "lfs_oids": {"data/train.parquet": sha256(files["data/train.parquet"])}}


def run(repo_name: str, work: Path) -> dict[str, object]:
    api = HfApi(endpoint=ENDPOINT, token=OWNER_TOKEN)
    anonymous = HfApi(endpoint=ENDPOINT, token=False)
    outsider = HfApi(endpoint=ENDPOINT, token=OUTSIDER_TOKEN)

    step("whoami")
    owner = api.whoami()["name"]
    repo_id = f"{owner}/{repo_name}"

    step(f"create private repo {repo_id}")
    url = api.create_repo(repo_id, private=True)
    check(str(url).rstrip("/").endswith(repo_id), f"create_repo returned {url!r}")
    api.create_repo(repo_id, private=True, exist_ok=True)  # the 409 answer still carries the url
    info = api.model_info(repo_id)
    check(info.private is True, f"new repo should be private, info says private={info.private!r}")
    initial = info.sha

    step("upload_folder to main")
    folder = work / "upload"
    files = make_folder(folder)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="Add the matrix folder")
    main_sha = commit.oid
    check(len(main_sha) == 40 and main_sha != initial, f"upload_folder returned commit {main_sha!r}")
    check(api.model_info(repo_id).sha == main_sha, "main does not point at the upload commit")

    step("repo info siblings")
    info = api.model_info(repo_id, files_metadata=True)
    siblings = {s.rfilename: s for s in info.siblings}
    check(set(siblings) == set(files) | {".gitattributes"}, f"siblings {sorted(siblings)}")
    big = siblings["model.safetensors"]
    check(big.size == BIG_SIZE, f"model.safetensors size {big.size}")
    check(
        big.lfs is not None and big.lfs.sha256 == sha256(files["model.safetensors"]), f"model.safetensors lfs {big.lfs}"
    )

    step("create tag v1 and branch dev at the upload commit")
    api.create_tag(repo_id, tag="v1", revision=main_sha)
    api.create_branch(repo_id, branch="dev", revision=main_sha)

    step("upload_file to dev")
    dev_text = b"only on the dev branch\n"
    dev1 = api.upload_file(
        path_or_fileobj=dev_text,
        path_in_repo="dev-only.txt",
        repo_id=repo_id,
        revision="dev",
        commit_message="Add dev-only.txt",
    ).oid
    step("create_commit on dev: add an LFS file, delete nested/data.json (with parent_commit)")
    extra = os.urandom(2 * 1024 * 1024)
    dev2 = api.create_commit(
        repo_id,
        operations=[CommitOperationAdd("extra.bin", extra), CommitOperationDelete("nested/data.json")],
        commit_message="Add extra.bin, drop data.json",
        revision="dev",
        parent_commit=dev1,
    ).oid
    dev_files = {k: v for k, v in files.items() if k != "nested/data.json"}
    dev_files.update({"dev-only.txt": dev_text, "extra.bin": extra})

    step("snapshot_download by branch, tag, commit sha, and dev branch")
    for revision in ("main", "v1", main_sha):
        snap = snapshot_download(
            repo_id,
            revision=revision,
            endpoint=ENDPOINT,
            token=OWNER_TOKEN,
            cache_dir=fresh_cache(work, f"snap-{revision}"),
        )
        check(Path(snap).name == main_sha, f"snapshot of {revision} is {Path(snap).name}, expected {main_sha}")
        compare_tree(f"snapshot {revision}", Path(snap), files)
    snap = snapshot_download(
        repo_id, revision="dev", endpoint=ENDPOINT, token=OWNER_TOKEN, cache_dir=fresh_cache(work, "snap-dev")
    )
    check(Path(snap).name == dev2, f"snapshot of dev is {Path(snap).name}, expected {dev2}")
    compare_tree("snapshot dev", Path(snap), dev_files)
    local = work / "local-dir"
    snapshot_download(
        repo_id, endpoint=ENDPOINT, token=OWNER_TOKEN, local_dir=str(local), cache_dir=fresh_cache(work, "local")
    )
    compare_tree("snapshot local_dir", local, files)
    partial = snapshot_download(
        repo_id,
        endpoint=ENDPOINT,
        token=OWNER_TOKEN,
        allow_patterns=["nested/*"],
        cache_dir=fresh_cache(work, "partial"),
    )
    got = sorted(p.relative_to(partial).as_posix() for p in Path(partial).rglob("*") if p.is_file())
    check(got == ["nested/data.json", "nested/deep/notes.txt", "nested/deep/weights.bin"], f"allow_patterns gave {got}")

    step("hf_hub_download by branch, tag and commit sha")
    for revision in ("main", "v1", main_sha):
        for name in ("model.safetensors", "nested/deep/notes.txt", "empty.txt", "nested/deep/weights.bin"):
            data = download_one(repo_id, name, revision, work)
            check(sha256(data) == sha256(files[name]), f"hf_hub_download {name}@{revision}: {len(data)} bytes differ")
    for name in ("dev-only.txt", "extra.bin"):
        check(download_one(repo_id, name, "dev", work) == dev_files[name], f"hf_hub_download {name}@dev differs")
    # The same cache twice: the second call must come from the cache and still be right.
    cache = fresh_cache(work, "reuse")
    for _ in range(2):
        path = hf_hub_download(repo_id, "model.safetensors", endpoint=ENDPOINT, token=OWNER_TOKEN, cache_dir=cache)
        check(sha256(Path(path).read_bytes()) == sha256(files["model.safetensors"]), "cached model.safetensors differs")

    step("missing file and missing revision")
    expect_error(
        EntryNotFoundError,
        lambda: download_one(repo_id, "no/such/file.txt", "main", work),
        "hf_hub_download of a missing file",
    )
    expect_error(
        RevisionNotFoundError,
        lambda: download_one(repo_id, "config.json", "no-such-branch", work),
        "hf_hub_download at a missing revision",
    )

    step("list_repo_files and list_repo_tree")
    listed = sorted(api.list_repo_files(repo_id))
    check(listed == sorted(set(files) | {".gitattributes"}), f"list_repo_files(main) = {listed}")
    listed = sorted(api.list_repo_files(repo_id, revision="dev"))
    check(listed == sorted(set(dev_files) | {".gitattributes"}), f"list_repo_files(dev) = {listed}")
    tree = tree_listing(api, repo_id, "main")
    folders = sorted(p for p, e in tree.items() if type(e).__name__ == "RepoFolder")
    check(folders == ["nested", "nested/deep"], f"recursive tree folders {folders}")
    check(
        sorted(p for p in tree if p not in folders) == sorted(set(files) | {".gitattributes"}),
        f"recursive tree {sorted(tree)}",
    )
    for name, data in files.items():
        entry = tree[name]
        check(entry.size == len(data), f"tree size of {name}: {entry.size} != {len(data)}")
    for name in ("model.safetensors", "nested/deep/weights.bin"):
        lfs = tree[name].lfs
        check(
            lfs is not None and lfs.sha256 == sha256(files[name]) and lfs.size == len(files[name]),
            f"tree lfs of {name}: {lfs}",
        )
    git_blob = hashlib.sha1(b"blob %d\x00" % len(files["config.json"]) + files["config.json"]).hexdigest()
    check(
        tree["config.json"].blob_id == git_blob and tree["config.json"].lfs is None,
        f"tree entry config.json {tree['config.json']}",
    )
    shallow = sorted(e.path for e in api.list_repo_tree(repo_id, path_in_repo="nested"))
    check(shallow == ["nested/data.json", "nested/deep"], f"list_repo_tree(nested) = {shallow}")
    paths = {e.path for e in api.get_paths_info(repo_id, ["config.json", "nested", "missing.txt"])}
    check(paths == {"config.json", "nested"}, f"get_paths_info = {paths}")

    step("list_repo_refs")
    refs = api.list_repo_refs(repo_id)
    branches = {b.name: b.target_commit for b in refs.branches}
    tags = {t.name: t.target_commit for t in refs.tags}
    check(branches == {"main": main_sha, "dev": dev2}, f"branches {branches}")
    check(tags == {"v1": main_sha}, f"tags {tags}")

    step("list_repo_commits")
    main_log = [c.commit_id for c in api.list_repo_commits(repo_id)]
    check(main_log == [main_sha, initial], f"main history {main_log}")
    dev_log = api.list_repo_commits(repo_id, revision="dev")
    check(
        [c.commit_id for c in dev_log] == [dev2, dev1, main_sha, initial],
        f"dev history {[c.commit_id for c in dev_log]}",
    )
    check(dev_log[0].title == "Add extra.bin, drop data.json", f"dev head title {dev_log[0].title!r}")

    step("delete_file on main")
    deleted = api.delete_file("config.json", repo_id, commit_message="Remove config.json").oid
    check(
        sorted(api.list_repo_files(repo_id)) == sorted(set(files) - {"config.json"} | {".gitattributes"}),
        "config.json still listed after delete_file",
    )
    expect_error(
        EntryNotFoundError,
        lambda: download_one(repo_id, "config.json", "main", work),
        "hf_hub_download of the deleted file",
    )
    check(download_one(repo_id, "config.json", "v1", work) == files["config.json"], "config.json at v1 changed")
    check(
        api.file_exists(repo_id, "README.md") and not api.file_exists(repo_id, "config.json"), "file_exists disagrees"
    )

    step("privacy: anonymous and outsider see nothing")
    expect_error(RepositoryNotFoundError, lambda: anonymous.model_info(repo_id), "anonymous model_info")
    expect_error(RepositoryNotFoundError, lambda: anonymous.list_repo_files(repo_id), "anonymous list_repo_files")
    expect_error(
        RepositoryNotFoundError,
        lambda: download_one(repo_id, "README.md", "main", work, token=False),
        "anonymous hf_hub_download",
    )
    expect_error(RepositoryNotFoundError, lambda: outsider.model_info(repo_id), "outsider model_info")
    expect_error(RepositoryNotFoundError, lambda: outsider.list_repo_refs(repo_id), "outsider list_repo_refs")
    expect_error(
        RepositoryNotFoundError,
        lambda: download_one(repo_id, "README.md", "main", work, token=OUTSIDER_TOKEN),
        "outsider hf_hub_download",
    )
    expect_error(
        RepositoryNotFoundError,
        lambda: snapshot_download(
            repo_id, endpoint=ENDPOINT, token=OUTSIDER_TOKEN, cache_dir=fresh_cache(work, "outsider")
        ),
        "outsider snapshot_download",
    )
    expect_error(
        RepositoryNotFoundError,
        lambda: outsider.upload_file(path_or_fileobj=b"x", path_in_repo="intruder.txt", repo_id=repo_id),
        "outsider upload_file",
    )
    check(not anonymous.repo_exists(repo_id), "repo_exists is True for an anonymous caller")

    dataset = dataset_round_trip(api, anonymous, f"{repo_id}-data", work)

    step("delete_repo")
    api.delete_repo(repo_id)
    expect_error(RepositoryNotFoundError, lambda: api.model_info(repo_id), "model_info after delete_repo")
    check(not api.repo_exists(repo_id), "repo_exists after delete_repo")

    return {
        "version": huggingface_hub.__version__,
        "repo_id": repo_id,
        "commits": {"initial": initial, "main": main_sha, "dev1": dev1, "dev2": dev2, "deleted": deleted},
        "dataset": dataset,
        "lfs_oids": {
            "model.safetensors": sha256(files["model.safetensors"]),
            "nested/deep/weights.bin": sha256(files["nested/deep/weights.bin"]),
            "extra.bin": sha256(extra),
        },
    }


def main() -> int:
    repo_name, work = sys.argv[1], Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = run(repo_name, work)
    except BaseException:  # noqa: BLE001 - any failure, reported with its traceback
        print(f"SCENARIO-FAILED with huggingface_hub {huggingface_hub.__version__}", flush=True)
        traceback.print_exc()
        return 1
    print("SCENARIO-RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

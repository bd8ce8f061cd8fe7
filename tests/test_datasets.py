"""`datasets.load_dataset` against private dataset repos on hubgate, downloaded and streamed (Range GETs).

The `datasets` library runs in subprocesses so that HF_ENDPOINT / HF_TOKEN / HF_HOME apply from the start.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.hf_api import RepoFile

from client_env import clean_env, run_python, wait_for_log
from conftest import Server

CSV_REPO = "alice/ds"
PARQUET_REPO = "alice/pq"
STREAM_REPO = "alice/pq-stream"  # same files; only the streaming test reads it, so all its GETs must be ranges
CSV_ROWS = [{"id": i, "name": f"name-{i}", "score": i * 1.5} for i in range(25)]
TRAIN_ROWS = 3000  # in two shards of several row groups each, so streaming reads them by ranges
TEST_ROWS = 400

README = f"""---
license: mit
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*.parquet
  - split: test
    path: data/test-*.parquet
---
# A dataset on hubgate
{TRAIN_ROWS} train rows, {TEST_ROWS} test rows.
"""

# argv: repo, then a JSON dict of load_dataset keyword arguments; prints one JSON summary line.
LOAD = """
import json, sys
import datasets
repo, kwargs = sys.argv[1], json.loads(sys.argv[2])
loaded = datasets.load_dataset(repo, **kwargs)
def summary(ds):
    if kwargs.get("streaming"):
        rows = list(ds)
        return {"rows": rows, "columns": sorted(rows[0])}
    return {"rows": ds.to_list(), "columns": sorted(ds.column_names), "num_rows": ds.num_rows}
if isinstance(loaded, (datasets.DatasetDict, datasets.IterableDatasetDict)):
    print(json.dumps({name: summary(split) for name, split in loaded.items()}))
else:
    print(json.dumps(summary(loaded)))
"""


def parquet_rows(start: int, count: int) -> list[dict]:
    return [{"idx": i, "text": f"row {i} " + "x" * (i % 17), "value": i * 0.25} for i in range(start, start + count)]


def parquet_bytes(rows: list[dict]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(pd.DataFrame(rows)), buffer, row_group_size=250)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def datasets_on_server(server: Server, alice_token: str) -> Server:
    api = HfApi(endpoint=server.url, token=alice_token)
    api.create_repo(CSV_REPO, repo_type="dataset", private=True)
    csv = pd.DataFrame(CSV_ROWS).to_csv(index=False).encode()
    api.upload_file(path_or_fileobj=csv, path_in_repo="data.csv", repo_id=CSV_REPO, repo_type="dataset")

    half = TRAIN_ROWS // 2
    files = {
        "README.md": README.encode(),
        "data/train-00000-of-00002.parquet": parquet_bytes(parquet_rows(0, half)),
        "data/train-00001-of-00002.parquet": parquet_bytes(parquet_rows(half, TRAIN_ROWS - half)),
        "data/test-00000-of-00001.parquet": parquet_bytes(parquet_rows(100_000, TEST_ROWS)),
    }
    for repo in (PARQUET_REPO, STREAM_REPO):
        api.create_repo(repo, repo_type="dataset", private=True)
        api.create_commit(repo, repo_type="dataset", commit_message="train and test splits",
                          operations=[CommitOperationAdd(path, data) for path, data in files.items()])
    return server


def load(server: Server, home: Path, repo: str, token: str | None, **kwargs: object) -> dict:
    env = clean_env(HF_ENDPOINT=server.url, HF_HOME=str(home), **({"HF_TOKEN": token} if token else {}))
    done = run_python(LOAD, repo, json.dumps(kwargs), env=env)
    assert done.returncode == 0, done.stderr[-5000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_csv_dataset_downloads_and_streams(datasets_on_server: Server, alice_token: str, tmp_path: Path) -> None:
    server = datasets_on_server
    loaded = load(server, tmp_path / "home", CSV_REPO, alice_token, split="train")
    assert loaded["num_rows"] == len(CSV_ROWS)
    assert loaded["columns"] == ["id", "name", "score"]
    assert loaded["rows"] == CSV_ROWS

    streamed = load(server, tmp_path / "home-stream", CSV_REPO, alice_token, split="train", streaming=True)
    assert streamed["rows"] == CSV_ROWS
    wait_for_log(server, lambda line: f"GET /datasets/{CSV_REPO}/resolve/" in line and "/data.csv " in line
                 and " 206 " in line)


def test_parquet_dataset_with_readme_splits(datasets_on_server: Server, alice_token: str, tmp_path: Path) -> None:
    server = datasets_on_server
    api = HfApi(endpoint=server.url, token=alice_token)
    files = {e.path: e for e in api.list_repo_tree(PARQUET_REPO, repo_type="dataset", recursive=True)
             if isinstance(e, RepoFile)}
    assert all(files[p].lfs is not None for p in files if p.endswith(".parquet")), "*.parquet is LFS by .gitattributes"

    loaded = load(server, tmp_path / "home", PARQUET_REPO, alice_token)
    assert sorted(loaded) == ["test", "train"]
    assert loaded["train"]["num_rows"] == TRAIN_ROWS
    assert loaded["test"]["num_rows"] == TEST_ROWS
    assert loaded["train"]["columns"] == ["idx", "text", "value"]
    assert sorted(r["idx"] for r in loaded["train"]["rows"]) == list(range(TRAIN_ROWS))
    assert sorted(loaded["test"]["rows"], key=lambda r: r["idx"]) == parquet_rows(100_000, TEST_ROWS)


def test_parquet_dataset_streams_by_ranges(datasets_on_server: Server, alice_token: str, tmp_path: Path) -> None:
    server = datasets_on_server
    streamed = load(server, tmp_path / "home", STREAM_REPO, alice_token, split="train", streaming=True)
    assert sorted(streamed["rows"], key=lambda r: r["idx"]) == parquet_rows(0, TRAIN_ROWS)
    log = wait_for_log(server, lambda line: f"/datasets/{STREAM_REPO}/resolve/" in line
                       and "train-00001-of-00002.parquet " in line and " 206 " in line)
    gets = [line for line in log if f"GET /datasets/{STREAM_REPO}/resolve/" in line and ".parquet " in line]
    assert len(gets) >= 2 and all(" 206 " in line for line in gets), "streaming must be served by ranges"
    assert not any("test-00000-of-00001.parquet" in line for line in gets), "only the train split was asked for"
    # Streaming reads the parquet files remotely: none of them lands in the download cache.
    assert not list((tmp_path / "home").glob("hub/datasets--alice--pq-stream/snapshots/*/data/*"))


@pytest.mark.parametrize("who", ["anonymous", "outsider"])
def test_private_dataset_refused(datasets_on_server: Server, bob_token: str, tmp_path: Path, who: str) -> None:
    token = bob_token if who == "outsider" else None
    env = clean_env(HF_ENDPOINT=datasets_on_server.url, HF_HOME=str(tmp_path / "home"),
                    **({"HF_TOKEN": token} if token else {}))
    done = run_python(LOAD, CSV_REPO, json.dumps({"split": "train"}), env=env)
    assert done.returncode != 0
    assert "DatasetNotFoundError" in done.stderr, done.stderr[-3000:]
    assert "name-3" not in done.stdout

"""One client step against a hubgate server with whatever huggingface_hub (and hf_xet) is installed.

Run with a client venv's python (never imported by pytest), HF_ENDPOINT / HF_TOKEN / HF_HOME set:

    python xet_steps.py upload REPO_ID PATH_IN_REPO LOCAL_FILE
    python xet_steps.py download REPO_ID PATH_IN_REPO REVISION
    python xet_steps.py range REPO_ID PATH_IN_REPO START LENGTH

It must run unchanged on huggingface_hub 0.36 (requests), 1.x (httpx) and 2.x (httpx2). The last line
printed on success is `STEP-RESULT {json}`: the commit of an upload, the sha256 and size of what a
download or a range read returned; a failure ends it with a traceback and a non-zero exit code.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import huggingface_hub
from huggingface_hub import HfApi, HfFileSystem, hf_hub_download


def upload(repo_id: str, path_in_repo: str, local: str) -> dict[str, object]:
    info = HfApi().upload_file(path_or_fileobj=local, path_in_repo=path_in_repo, repo_id=repo_id)
    return {"commit": info.oid}


def download(repo_id: str, path_in_repo: str, revision: str) -> dict[str, object]:
    data = Path(hf_hub_download(repo_id, path_in_repo, revision=revision)).read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def read_range(repo_id: str, path_in_repo: str, start: str, length: str) -> dict[str, object]:
    with HfFileSystem().open(f"{repo_id}/{path_in_repo}", "rb") as handle:
        handle.seek(int(start))
        data = handle.read(int(length))
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


STEPS = {"upload": upload, "download": download, "range": read_range}

if __name__ == "__main__":
    result = STEPS[sys.argv[1]](*sys.argv[2:])
    print("STEP-RESULT " + json.dumps({"version": huggingface_hub.__version__, **result}), flush=True)

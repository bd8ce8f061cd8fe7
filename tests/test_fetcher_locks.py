"""The fetcher's per-file download lock is released whatever fails while a download starts: a
locked descriptor left open would block that file in this process for the rest of its life."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hubgate.config import Settings, UpstreamConfig
from hubgate.hub import Hub
from hubgate.mirror.fetcher import Fetcher, FileSource
from hubgate.mirror.upstream import UpstreamError

SRC = FileSource("ab" * 20, 10, False, "/hub/model/resolve/" + "0" * 40 + "/f.txt")


@pytest.fixture()
def fetcher(tmp_path: Path) -> Iterator[Fetcher]:
    hub = Hub(Settings.load(data=tmp_path / "data", upstream=[UpstreamConfig(name="up", url="http://127.0.0.1:9")]))
    try:
        assert hub.mirror is not None
        yield hub.mirror.fetcher
    finally:
        hub.close()


def _refuse(*_args: object, **_kwargs: object) -> None:
    raise OSError("refused by the test")


@pytest.mark.parametrize("failing", [(threading.Thread, "start"), (Path, "touch")], ids=["thread start", "part touch"])
def test_a_download_that_fails_to_start_releases_its_lock(fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch,
                                                          failing: tuple[type, str]) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(*failing, _refuse)
        with pytest.raises(OSError, match="refused by the test"):
            fetcher.start(SRC, lambda _upstream: None)
    assert not fetcher.downloading(SRC)  # nobody holds the file's lock
    again = fetcher.start(SRC, lambda _upstream: None)  # a new download starts, and fails: no upstream answers
    assert again is not None
    with pytest.raises(UpstreamError):
        again.wait(60)


def test_fetch_now_releases_its_lock_when_it_cannot_start(fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(Path, "touch", _refuse)
        with pytest.raises(OSError, match="refused by the test"):
            fetcher.fetch_now(SRC, lambda _upstream: None)
    assert not fetcher.downloading(SRC)

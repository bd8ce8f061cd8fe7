"""Failed authentications are limited per client address, across worker processes: the Hub's 429."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from conftest import start_server

http = httpx.Client(timeout=60)


def test_failed_authentications_limited_across_workers(tmp_path: Path) -> None:
    config = tmp_path / "hubgate.toml"
    config.write_text("[auth]\nmax_failures = 5\nfailure_window = 600\n")
    with start_server(tmp_path / "data", "--workers", "2", config=config) as server:
        server.add_user("val")
        good = server.token("val", "write")
        bad = {"Authorization": "Bearer hg_guessed-token"}
        # fresh connections each time, spread over both workers; the count lives in the database
        statuses = [httpx.get(f"{server.url}/api/whoami-v2", headers=bad).status_code for _ in range(5)]
        assert statuses == [401] * 5
        limited = httpx.get(f"{server.url}/api/whoami-v2", headers=bad)
        assert limited.status_code == 429
        assert 0 < int(limited.headers["Retry-After"]) <= 600
        assert "Too many failed authentications" in limited.json()["error"]
        # the address is held off for every token until the window ends, through huggingface_hub too
        with pytest.raises(HfHubHTTPError) as refused:
            HfApi(endpoint=server.url, token=good).whoami()
        assert refused.value.response.status_code == 429
        # anonymous requests are not authentications: they still work
        assert httpx.get(f"{server.url}/api/models").status_code == 200
        pids = {line.split("[")[1].split("]")[0] for line in server.log if "Started server process" in line}
        assert len(pids) == 2

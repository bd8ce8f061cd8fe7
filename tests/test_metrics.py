"""GET /metrics: Prometheus text for server administrators, adding up every worker process."""

from __future__ import annotations

from pathlib import Path

import httpx
from huggingface_hub import HfApi
from prometheus_client.parser import text_string_to_metric_families

from conftest import start_server, through_lfs

BIG = bytes(range(256)) * 4096 * 12  # 12 MiB: above the LFS threshold, so a file in the blob store


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_requests_bytes_and_auth_failures_across_workers(tmp_path: Path) -> None:
    with start_server(tmp_path / "data", "--workers", "2") as server:
        server.add_user("alice")
        token = server.token("alice", "write")
        api = HfApi(endpoint=server.url, token=token)
        api.create_repo("alice/m")
        with through_lfs():  # a plain blob: its answers count as sendfile or chunked
            api.upload_file(path_or_fileobj=BIG, path_in_repo="big.bin", repo_id="alice/m")
        api.upload_file(path_or_fileobj=b"small", path_in_repo="small.txt", repo_id="alice/m")
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, timeout=60) as http:  # new connections: spread over the workers
            for _ in range(6):
                assert http.get("/alice/m/resolve/main/big.bin", headers={**auth, "Connection": "close"}).content == BIG
            assert http.get("/alice/m/resolve/main/small.txt", headers=auth).content == b"small"
            assert http.get("/api/whoami-v2", headers={"Authorization": "Bearer hg_wrong"}).status_code == 401
            assert http.get("/metrics").status_code == 401
            assert http.get("/metrics", headers=auth).status_code == 403
            response = http.get("/metrics", headers=server.admin_headers())
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        found = samples(response.text)
        resolved = found[("hubgate_requests_total", (("method", "GET"), ("route", "resolve"), ("status", "200")))]
        assert resolved == 7
        by_path = {labels[0][1]: value for (name, labels), value in found.items() if name == "hubgate_response_bytes_total"}
        assert by_path.get("sendfile", 0) + by_path.get("chunked", 0) >= 6 * len(BIG)
        assert by_path["memory"] >= len(b"small")
        assert found[("hubgate_auth_failures_total", ())] >= 1


def test_metrics_show_the_mirrors_hits_misses_and_upstream_fetches(tmp_path: Path) -> None:
    with start_server(tmp_path / "origin") as origin:
        origin.add_user("team")
        token = origin.token("team", "write")
        api = HfApi(endpoint=origin.url, token=token)
        api.create_repo("team/m")
        api.upload_file(path_or_fileobj=BIG, path_in_repo="big.bin", repo_id="team/m")
        config = tmp_path / "hubgate.toml"
        config.write_text(f'[[upstream]]\nname = "origin"\nurl = "{origin.url}"\ntoken_env = "ORIGIN_TOKEN"\n')
        with start_server(tmp_path / "mirror", config=config, env={"ORIGIN_TOKEN": token}) as mirror:
            for _ in range(3):
                assert httpx.get(f"{mirror.url}/team/m/resolve/main/big.bin", timeout=60).content == BIG
            found = samples(httpx.get(f"{mirror.url}/metrics", headers=mirror.admin_headers()).text)
    assert found[("hubgate_mirror_upstream_fetches_total", ())] == 1
    assert found[("hubgate_mirror_upstream_bytes_total", ())] == len(BIG)
    assert found[("hubgate_mirror_misses_total", ())] >= 1 and found[("hubgate_mirror_hits_total", ())] >= 2
    assert ("hubgate_mirror_upstream_failures_total", ()) not in found

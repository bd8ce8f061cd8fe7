"""hubgate on PostgreSQL: migrations under concurrent starts, and a representative part of the
API, mirror, access, token and Xet tests run again against servers whose metadata lives in
PostgreSQL (tests/test_postgresql_s3.py runs the same again with their blobs in S3 too).

The tests below imported from other modules run here unchanged under the module's `stores`
fixture: with "postgresql", HUBGATE_TEST_DATABASE=postgresql, so every server `start_server` starts
(the shared `server` too, overridden here per module) gets a fresh PostgreSQL database; with
"postgresql+s3" (the other module) HUBGATE_TEST_BLOBS=s3 too, so each also keeps its blobs under a
key prefix of its own in the bucket. The whole suite runs on PostgreSQL with
`HUBGATE_TEST_DATABASE=postgresql`; `HUBGATE_TEST_BLOBS=s3` starts its servers on S3 (see the README).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import seaweed
from conftest import Server, shared_server
from databases import DATABASES, HOST, PORT, USER, unavailable
from hubgate.storage.metadata import MetadataStore
from hubgate.storage.schema import MIGRATION_LOCK
from test_access import (  # noqa: F401  (tests and fixtures collected here again)
    repos,
    test_org_read_member_reads_but_cannot_write,
    test_outsider_on_private_is_404_repo_not_found,
    test_revoked_token,
)
from test_api_read import repo, test_hf_hub_download_regular_and_lfs, test_ranges  # noqa: F401
from test_api_write import (  # noqa: F401
    test_concurrent_commits_lose_nothing,
    test_create_conflict_has_url_and_exist_ok_works,
    test_hf_api_round_trip_with_folder_ops,
    test_lfs_basic_upload,
    test_parent_commit_mismatch,
)
from test_mirror_hubgate import mirror, origin, test_download_by_branch_tag_and_commit  # noqa: F401
from test_schema import assert_schema_matches_models
from test_tokens import srv, test_http_api, test_states_revoke_twice_unknown_and_by_name  # noqa: F401
from test_xet_cas import (  # noqa: F401
    cas,
    test_a_shard_naming_a_missing_xorb_or_with_a_wrong_proof_is_refused,
    test_gc_collects_uncommitted_xorbs_and_files_and_keeps_committed_ones,
    test_upload_register_reconstruct_and_fetch_ranges,
)
from test_xet_plain import hub, test_a_plain_download_keeps_a_copy_the_next_one_is_served_from  # noqa: F401


def use_stores(kind: str) -> Iterator[str]:
    """The environment under which a module's servers keep their metadata in PostgreSQL (and
    their blobs in S3 for "postgresql+s3"); the module is skipped where that cannot run."""
    reason = unavailable() or (kind.endswith("+s3") and seaweed.unavailable())
    if reason:
        pytest.skip(reason)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HUBGATE_TEST_DATABASE", "postgresql")
        patch.setenv("HUBGATE_TEST_BLOBS", "s3" if kind.endswith("+s3") else "local")
        yield kind


@pytest.fixture(scope="module", autouse=True)
def stores() -> Iterator[str]:
    yield from use_stores("postgresql")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, stores: str) -> Iterator[Server]:
    with shared_server(tmp_path_factory.mktemp("pg")) as started:
        yield started


def _write_token_of(user: str):  # the session's token fixtures, per module here (as `server` is)
    @pytest.fixture(scope="module", name=f"{user}_token")
    def token(server: Server) -> str:
        return server.token(user, "write")
    return token


alice_token, bob_token, carol_token = (_write_token_of(user) for user in ("alice", "bob", "carol"))


def test_the_servers_here_keep_their_metadata_in_postgresql(server: Server, stores: str) -> None:
    url = server.env["HUBGATE_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://") and url in DATABASES.urls.values()
    assert not (server.data / "hubgate.db").exists()
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as connection:
        assert connection.execute("SELECT count(*) FROM users WHERE name = 'alice'").fetchone() == (1,)


def test_concurrent_starts_migrate_once_under_the_advisory_lock(tmp_path: Path) -> None:
    """Three processes start on an empty database while the migration lock is held: all three
    wait for it; once it is released exactly one migrates and the others find the schema done."""
    url = DATABASES.fresh()
    name = url.rsplit("/", 1)[1]
    script = "import sys; from hubgate.storage.metadata import MetadataStore; print(MetadataStore(sys.argv[1]).migrated)"
    with psycopg.connect(host=HOST, port=PORT, user=USER, dbname=name, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        starts = [subprocess.Popen([sys.executable, "-c", script, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True) for _ in range(3)]
        try:
            deadline = time.monotonic() + 60
            while _waiting(holder) < 3:
                assert all(p.poll() is None for p in starts), [p.communicate() for p in starts]
                assert time.monotonic() < deadline, "the three starts never all waited for the migration lock"
                time.sleep(0.05)
            assert holder.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'users'").fetchone() == (0,)
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
            outputs = [p.communicate(timeout=60) for p in starts]
    assert all(p.returncode == 0 for p in starts), outputs
    assert sorted(out.strip() for out, _ in outputs) == ["False", "False", "True"], outputs
    store = MetadataStore(url)
    assert not store.migrated
    assert_schema_matches_models(store)
    store.dispose()


def _waiting(connection: psycopg.Connection) -> int:
    """Sessions of this database waiting for an advisory lock."""
    row = connection.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchone()
    return int(row[0]) if row else 0


def test_the_blobs_here_live_where_stores_says(server: Server, repo: dict, stores: str) -> None:  # noqa: F811
    """`repo` (test_api_read's) holds an LFS file: in the data folder, or only in the bucket."""
    local = [path for path in (server.data / "blobs").rglob("*") if path.is_file()]
    assert server.stored_blobs()
    if stores.endswith("+s3"):
        assert json.loads(server.env["HUBGATE_BLOBS"])["backend"] == "s3" and local == []
    else:
        assert "HUBGATE_BLOBS" not in server.env and {path.name for path in local} == server.stored_blobs()

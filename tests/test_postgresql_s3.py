"""hubgate on PostgreSQL + S3: the tests of tests/test_postgresql.py that run on any store (the
API, mirror, access, token and Xet tests it borrows, and its own checks of where metadata and
blobs live) again, with every server's blobs under a key prefix of its own in the run's SeaweedFS.

A module of its own so that a parallel run (pytest-xdist, by file) takes it on another worker.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
from test_postgresql import (  # noqa: F401
    alice_token,
    bob_token,
    carol_token,
    server,
    test_the_blobs_here_live_where_stores_says,
    test_the_servers_here_keep_their_metadata_in_postgresql,
    use_stores,
)
from test_tokens import srv, test_http_api, test_states_revoke_twice_unknown_and_by_name  # noqa: F401
from test_xet_cas import (  # noqa: F401
    cas,
    test_a_shard_naming_a_missing_xorb_or_with_a_wrong_proof_is_refused,
    test_gc_collects_uncommitted_xorbs_and_files_and_keeps_committed_ones,
    test_upload_register_reconstruct_and_fetch_ranges,
)


@pytest.fixture(scope="module", autouse=True)
def stores() -> Iterator[str]:
    yield from use_stores("postgresql+s3")

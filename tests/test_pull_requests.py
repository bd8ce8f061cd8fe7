"""Pull requests and discussions on hosted repos, through huggingface_hub's own calls and HfFileSystem."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, HfFileSystem, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

from conftest import Server
from fakehub import start_fakehub
from test_mirror_faults import mirror_of


def new_repo(server: Server, token: str, files: dict[str, bytes] | None = None) -> str:
    repo = f"alice/pr-{uuid.uuid4().hex[:8]}"
    api = HfApi(endpoint=server.url, token=token)
    api.create_repo(repo)
    api.create_commit(repo, [CommitOperationAdd(p, d) for p, d in (files or {"README.md": b"# hello\n"}).items()],
                      commit_message="start")
    return repo


def test_create_pr_commit_review_and_merge(server: Server, alice_token: str, bob_token: str, tmp_path: Path) -> None:
    repo = new_repo(server, alice_token, {"README.md": b"# hello\n", "keep.txt": b"keep\n"})
    owner, outsider = HfApi(endpoint=server.url, token=alice_token), HfApi(endpoint=server.url, token=bob_token)
    main_before = owner.model_info(repo).sha
    # Anyone who can read a public repo proposes a change with create_pr=True.
    info = outsider.create_commit(repo, [CommitOperationAdd("README.md", b"# hello, world\n")],
                                  commit_message="Say hello to the world", create_pr=True)
    assert info.pr_url and info.pr_revision == "refs/pr/1" and info.pr_num == 1
    assert owner.model_info(repo).sha == main_before  # main is untouched
    pr_file = hf_hub_download(repo, "README.md", revision="refs/pr/1", endpoint=server.url, cache_dir=tmp_path)
    assert Path(pr_file).read_bytes() == b"# hello, world\n"
    # Its author goes on committing to refs/pr/1; others may not.
    outsider.upload_file(path_or_fileobj=b"new\n", path_in_repo="new.txt", repo_id=repo, revision="refs/pr/1")
    with pytest.raises(HfHubHTTPError):
        HfApi(endpoint=server.url, token=server.token("carol")).upload_file(
            path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo, revision="refs/pr/1")
    refs = owner.list_repo_refs(repo, include_pull_requests=True)
    assert [r.ref for r in refs.pull_requests or []] == ["refs/pr/1"]
    # Details, with the diff.
    details = owner.get_discussion_details(repo, 1)
    assert details.is_pull_request and details.status == "open" and details.target_branch == "refs/heads/main"
    assert details.author == "bob" and details.title == "Say hello to the world"
    assert "+# hello, world" in (details.diff or "") and "b/new.txt" in (details.diff or "")
    assert [e.type for e in details.events].count("commit") == 2
    owner.comment_discussion(repo, 1, "Looks good")
    # Only writers merge.
    with pytest.raises(HfHubHTTPError):
        outsider.merge_pull_request(repo, 1)
    owner.merge_pull_request(repo, 1, comment="Thanks!")
    merged = owner.get_discussion_details(repo, 1)
    assert merged.status == "merged" and merged.merge_commit_oid == owner.model_info(repo).sha
    files = {f: Path(hf_hub_download(repo, f, endpoint=server.url, cache_dir=tmp_path / "m")).read_bytes()
             for f in ("README.md", "new.txt", "keep.txt")}
    assert files == {"README.md": b"# hello, world\n", "new.txt": b"new\n", "keep.txt": b"keep\n"}
    assert owner.list_repo_commits(repo)[0].commit_id == merged.merge_commit_oid


def test_discussions_comments_status_and_listing(server: Server, alice_token: str, bob_token: str) -> None:
    repo = new_repo(server, alice_token)
    owner, outsider = HfApi(endpoint=server.url, token=alice_token), HfApi(endpoint=server.url, token=bob_token)
    talk = outsider.create_discussion(repo, title="A question", description="Why?")
    assert talk.num == 1 and not talk.is_pull_request and talk.events[0].content == "Why?"
    pr = owner.create_pull_request(repo, title="Draft work", description="wip")
    assert pr.num == 2 and pr.is_pull_request
    owner.create_commit(repo, [CommitOperationAdd("draft.txt", b"d")], commit_message="draft", revision=pr.git_reference)
    outsider.comment_discussion(repo, 1, "Anyone?")
    outsider.change_discussion_status(repo, 1, "closed", comment="Never mind")  # its author may
    with pytest.raises(HfHubHTTPError):
        outsider.change_discussion_status(repo, 2, "closed")  # not its author, not a writer
    owner.change_discussion_status(repo, 1, "open")
    owner.rename_discussion(repo, 2, "Finished work")
    listed = list(owner.get_repo_discussions(repo))
    assert [(d.num, d.title, d.is_pull_request, d.status) for d in listed] == [
        (2, "Finished work", True, "open"), (1, "A question", False, "open")]
    assert [d.num for d in owner.get_repo_discussions(repo, discussion_type="pull_request")] == [2]
    assert [d.num for d in owner.get_repo_discussions(repo, author="bob")] == [1]
    events = [e.type for e in owner.get_discussion_details(repo, 1).events]
    assert events == ["comment", "comment", "comment", "status-change", "status-change"]
    owner.create_tag(repo, tag="pr-2-tag", revision=pr.git_reference)
    assert owner.list_repo_refs(repo).tags[0].target_commit == owner.list_repo_refs(
        repo, include_pull_requests=True).pull_requests[0].target_commit
    anonymous = httpx.post(f"{server.url}/api/models/{repo}/discussions", json={"title": "hi"})
    assert anonymous.status_code == 401


def test_conflicting_pull_requests_are_not_merged(server: Server, alice_token: str) -> None:
    repo = new_repo(server, alice_token)
    api = HfApi(endpoint=server.url, token=alice_token)
    api.create_commit(repo, [CommitOperationAdd("README.md", b"theirs\n")], commit_message="pr", create_pr=True)
    api.create_commit(repo, [CommitOperationAdd("README.md", b"ours\n")], commit_message="main moves on")
    with pytest.raises(HfHubHTTPError) as caught:
        api.merge_pull_request(repo, 1)
    assert caught.value.response.status_code == 409 and "README.md" in caught.value.response.text
    assert api.get_discussion_details(repo, 1).status == "open"


def test_hf_file_system_opens_pull_requests(server: Server, alice_token: str, bob_token: str) -> None:
    repo = new_repo(server, alice_token)
    fs = HfFileSystem(endpoint=server.url, token=bob_token)
    HfApi(endpoint=server.url, token=bob_token).create_commit(
        repo, [CommitOperationAdd("from-bob.txt", b"bob")], commit_message="bob's idea", create_pr=True)
    assert fs.read_bytes(f"{repo}@refs%2Fpr%2F1/from-bob.txt") == b"bob"
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{repo}@refs%2Fpr%2F1", detail=False)) == [
        ".gitattributes", "README.md", "from-bob.txt"]


def test_mirrored_repos_serve_upstream_pull_requests_read_only(tmp_path: Path) -> None:
    fake = start_fakehub(tmp_path / "hub", xet=False)
    try:
        fake.add_repo("up/model", {"config.json": "{}"}, xet=False)
        fake.add_repo("up/model", {"config.json": '{"pr": 1}'}, branch="refs/pr/1", xet=False)
        mirror = mirror_of(tmp_path, fake, token=None)
        try:
            api = HfApi(endpoint=mirror.url)
            refs = api.list_repo_refs("up/model", include_pull_requests=True)
            assert [r.ref for r in refs.pull_requests or []] == ["refs/pr/1"]
            path = hf_hub_download("up/model", "config.json", revision="refs/pr/1", endpoint=mirror.url,
                                   cache_dir=tmp_path / "cache")
            assert Path(path).read_text() == '{"pr": 1}'
            assert list(api.get_repo_discussions("up/model")) == []
            mirror.add_user("dora")
            token = mirror.token("dora", "write")
            answer = httpx.post(f"{mirror.url}/api/models/up/model/discussions", json={"title": "hi"},
                                headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 403 and "read-only" in answer.json()["error"]
        finally:
            mirror.stop()
    finally:
        fake.stop()


def test_a_pull_request_whose_commit_fails_is_not_left_behind(server: Server, alice_token: str) -> None:
    repo = new_repo(server, alice_token)
    api = HfApi(endpoint=server.url, token=alice_token)
    with pytest.raises(HfHubHTTPError):
        api.create_commit(repo, [CommitOperationDelete("missing.txt")], commit_message="oops", create_pr=True)
    assert list(api.get_repo_discussions(repo)) == []
    assert not api.list_repo_refs(repo, include_pull_requests=True).pull_requests


def test_concurrent_merges_make_one_merge_commit(server: Server, alice_token: str, bob_token: str) -> None:
    repo = new_repo(server, alice_token)
    owner = HfApi(endpoint=server.url, token=alice_token)
    HfApi(endpoint=server.url, token=bob_token).create_commit(repo, [CommitOperationAdd("b.txt", b"b")],
                                                              commit_message="add b", create_pr=True)
    start = threading.Barrier(6)

    def merge(_: int) -> int:
        with httpx.Client(timeout=60) as client:
            start.wait(timeout=60)
            return client.post(f"{server.url}/api/models/{repo}/discussions/1/merge", json={},
                               headers={"Authorization": f"Bearer {alice_token}"}).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(pool.map(merge, range(6)))
    assert statuses == [200, 400, 400, 400, 400, 400]
    merges = [c for c in owner.list_repo_commits(repo) if c.title.startswith("Merge pull request #1")]
    details = owner.get_discussion_details(repo, 1)
    assert len(merges) == 1 and details.merge_commit_oid == merges[0].commit_id
    assert [e.new_status for e in details.events if e.type == "status-change"] == ["merged"]

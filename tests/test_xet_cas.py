"""The Xet CAS of a real `hubgate serve` (issue 11): xorb and shard uploads, reconstruction, signed
xorb ranges, the CAS token checks, every negative case (a clear 4xx and nothing stored), and garbage
collection of what no repo keeps.

The CAS tokens are minted here with the server's key, as the hub's xet-*-token endpoints do.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from client_env import clean_env
from conftest import Server, start_server
from hubgate.auth.castokens import CasTokens
from hubgate.ids import RepoRef
from hubgate.signing import Signer
from hubgate.xet.hashing import chunk_hash, dedup_eligible, file_hash, hash_to_str, verification_hash, xorb_hash
from hubgate.xet.shard import FileEntry, Term, XorbEntry, build_shard, parse_shard
from hubgate.xet.xorb import build_xorb, canonical_xorb, decode_chunk_records
from processes import until

CAS = "/xet-cas"


@dataclass
class Xorb:
    chunks: list[bytes]

    @property
    def body(self) -> bytes:
        return build_xorb(self.chunks)

    @property
    def stored(self) -> bytes:
        """The bytes the server keeps: its own encoding of the chunks."""
        return canonical_xorb(self.body, self.hash)[0]

    @property
    def pairs(self) -> list[tuple[bytes, int]]:
        return [(chunk_hash(c), len(c)) for c in self.chunks]

    @property
    def hash(self) -> bytes:
        return xorb_hash(self.pairs)

    @property
    def name(self) -> str:
        return hash_to_str(self.hash)

    def entry(self) -> XorbEntry:
        return XorbEntry(self.hash, tuple(self.pairs))

    def term(self, start: int, end: int) -> tuple[Term, bytes]:
        """A term over chunks start..end and its verification hash."""
        used = self.pairs[start:end]
        return Term(self.hash, sum(size for _, size in used), start, end), verification_hash([h for h, _ in used])


def file_of(*parts: tuple[Xorb, int, int], sha256: str | None = None) -> tuple[FileEntry, bytes]:
    """The shard entry of a file made of chunk ranges of xorbs, and the file's bytes."""
    terms, proofs, data, nodes = [], [], b"", []
    for xorb, start, end in parts:
        term, proof = xorb.term(start, end)
        terms.append(term)
        proofs.append(proof)
        data += b"".join(xorb.chunks[start:end])
        nodes += xorb.pairs[start:end]
    digest = sha256 or hashlib.sha256(data).hexdigest()
    return FileEntry(file_hash(nodes), tuple(terms), tuple(proofs), digest), data


def random_xorb(sizes: list[int]) -> Xorb:
    return Xorb([os.urandom(size) for size in sizes])


@dataclass
class Cas:
    server: Server
    tokens: CasTokens
    signer: Signer
    repos: dict[str, int]

    def token(self, repo: str, scope: str = "write", ttl: int = 600) -> dict[str, str]:
        token, _ = self.tokens.mint(self.repos[repo], RepoRef.parse("model", repo), scope, ttl)
        return {"Authorization": f"Bearer {token}"}

    def url(self, path: str) -> str:
        return f"{self.server.url}{CAS}{path}"

    def put_xorb(self, xorb: Xorb, repo: str = "alice/xet", body: bytes | None = None) -> httpx.Response:
        return httpx.post(self.url(f"/v1/xorbs/default/{xorb.name}"), content=xorb.body if body is None else body,
                          headers=self.token(repo), timeout=60)

    def put_shard(self, files: list[FileEntry], xorbs: list[XorbEntry], repo: str = "alice/xet",
                  scope: str = "write") -> httpx.Response:
        return httpx.post(self.url("/v1/shards"), content=build_shard(files, xorbs), headers=self.token(repo, scope),
                          timeout=60)

    def reconstruction(self, file: bytes, repo: str = "alice/xet", byte_range: str | None = None,
                       scope: str = "read") -> httpx.Response:
        headers = self.token(repo, scope) | ({"Range": byte_range} if byte_range else {})
        return httpx.get(self.url(f"/v1/reconstructions/{hash_to_str(file)}"), headers=headers, timeout=60)

    def rows(self, table: str) -> int:
        return int(self.server.sql(f"SELECT count(*) FROM {table}")[0][0])

    def blobs(self) -> int:
        return len(self.server.stored_blobs())


def open_cas(data: Path, config: Path | None = None, env: dict[str, str] | None = None) -> tuple[Server, Cas]:
    srv = start_server(data, config=config, env=env)
    try:
        srv.add_user("alice")
        token = srv.token("alice")
        for name in ("xet", "other"):
            answer = httpx.post(f"{srv.url}/api/repos/create", json={"name": name},
                                headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200, answer.text
        pks = dict(srv.sql("SELECT namespace || '/' || name, id FROM repos"))
        signer = Signer(bytes.fromhex((data / "secret.key").read_text().strip()))
        return srv, Cas(srv, CasTokens(signer), signer, {str(k): int(v) for k, v in pks.items()})
    except BaseException:
        srv.stop()
        raise


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory, stores: str) -> Iterator[Cas]:
    srv, found = open_cas(tmp_path_factory.mktemp("xetcas"))
    with srv:
        yield found


def rebuild(answer: dict[str, object], length: int) -> bytes:
    """The bytes a client rebuilds from a v1 reconstruction answer, fetching each range's URL."""
    fetched: dict[tuple[str, int, int], list[bytes]] = {}
    for xorb, entries in answer["fetch_info"].items():  # type: ignore[attr-defined]
        for entry in entries:
            first, last = entry["url_range"]["start"], entry["url_range"]["end"]
            got = httpx.get(entry["url"], headers={"Range": f"bytes={first}-{last}"}, timeout=60)
            assert got.status_code == 206, got.text
            assert len(got.content) == last - first + 1
            fetched[(xorb, entry["range"]["start"], entry["range"]["end"])] = list(decode_chunk_records(got.content))
    out = b""
    for term in answer["terms"]:  # type: ignore[attr-defined]
        start, end = term["range"]["start"], term["range"]["end"]
        key = next(k for k in fetched if k[0] == term["hash"] and k[1] <= start and end <= k[2])
        piece = b"".join(fetched[key][start - key[1] : end - key[1]])
        assert len(piece) == term["unpacked_length"]
        out += piece
    skip = answer["offset_into_first_range"]
    assert isinstance(skip, int)
    return out[skip : skip + length]


# -- the happy path ------------------------------------------------------------------------------

def test_upload_register_reconstruct_and_fetch_ranges(cas: Cas) -> None:
    xorb = random_xorb([70_000, 20_000, 131_072, 5_000])
    blobs = cas.blobs()
    first = cas.put_xorb(xorb)
    assert first.status_code == 200 and first.json() == {"was_inserted": True}, first.text
    assert cas.blobs() == blobs + 1
    again = cas.put_xorb(xorb)
    assert again.status_code == 200 and again.json() == {"was_inserted": False}
    audited = httpx.get(f"{cas.server.url}/api/audit?kind=xet-xorb", headers=cas.server.admin_headers()).json()
    assert any(r["repo"] == "alice/xet" and r["path"].endswith(xorb.name) and r["status"] == 200 for r in audited), audited
    assert cas.blobs() == blobs + 1  # nothing stored twice

    entry, data = file_of((xorb, 0, 4))
    registered = cas.put_shard([entry], [xorb.entry()])
    assert registered.status_code == 200 and registered.json() == {"result": 1}, registered.text
    known = cas.put_shard([entry], [])
    assert known.status_code == 200 and known.json() == {"result": 0}

    whole = cas.reconstruction(entry.file_hash, byte_range=f"bytes=0-{len(data) - 1}")
    assert whole.status_code == 200, whole.text
    assert rebuild(whole.json(), len(data)) == data
    assert rebuild(cas.reconstruction(entry.file_hash).json(), len(data)) == data  # no Range: the whole file
    # A window inside the second and third chunks: only those are fetched.
    start, end = 75_000, 100_000
    part = cas.reconstruction(entry.file_hash, byte_range=f"bytes={start}-{end}").json()
    assert [(t["range"]["start"], t["range"]["end"]) for t in part["terms"]] == [(1, 3)]
    assert rebuild(part, end - start + 1) == data[start : end + 1]
    tail = cas.reconstruction(entry.file_hash, byte_range=f"bytes={len(data) - 10}-{len(data) + 1000}").json()
    assert rebuild(tail, 10) == data[-10:]


def test_a_file_of_overlapping_terms_gets_merged_fetch_ranges(cas: Cas) -> None:
    zeros = Xorb([bytes(131_072), bytes(37_856)])
    assert cas.put_xorb(zeros).status_code == 200
    entry, data = file_of((zeros, 0, 1), (zeros, 0, 2))  # 300 000 zero bytes, as the client cuts them
    assert cas.put_shard([entry], [zeros.entry()]).json() == {"result": 1}
    answer = cas.reconstruction(entry.file_hash, byte_range=f"bytes=0-{len(data) - 1}").json()
    assert len(answer["fetch_info"][zeros.name]) == 1  # one range holding both terms' chunks
    assert rebuild(answer, len(data)) == data


def test_a_file_reusing_another_repos_xorb_needs_its_shard_there(cas: Cas) -> None:
    xorb = random_xorb([9_000, 12_000])
    assert cas.put_xorb(xorb, repo="alice/other").status_code == 200
    entry, data = file_of((xorb, 0, 2))
    assert cas.put_shard([entry], [xorb.entry()], repo="alice/other").json() == {"result": 1}
    # Not registered for alice/xet: its read token cannot tell it from an unknown file.
    hidden = cas.reconstruction(entry.file_hash)
    unknown = cas.reconstruction(bytes(range(32)))
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["error"].replace(hash_to_str(entry.file_hash), "H") == unknown.json()["error"].replace(
        hash_to_str(bytes(range(32))), "H")
    # The same file's shard uploaded for alice/xet (proving possession): now it reads there too.
    assert cas.put_shard([entry], [], repo="alice/xet").json() == {"result": 1}
    assert rebuild(cas.reconstruction(entry.file_hash).json(), len(data)) == data


def test_the_unoffered_endpoints_and_unknown_chunks_answer_404_at_once(cas: Cas) -> None:
    read, write = cas.token("alice/xet", "read"), cas.token("alice/xet")
    some = "0" * 64
    for method, path, headers in (
        ("GET", f"/v1/chunks/default/{some}", read), ("GET", f"/v1/chunks/default-merkledb/{some}", read),  # unknown
        ("POST", f"/v1/xorb-grants/default/{some}", write), ("POST", "/v2/shards", write),
        ("GET", f"/v2/reconstructions/{some}", read),
    ):
        answer = httpx.request(method, cas.url(path), headers=headers, content=b"{}" if method == "POST" else None)
        assert answer.status_code == 404, (path, answer.text)
        assert isinstance(answer.json()["error"], str)


# -- refusals: a clear 4xx, nothing stored --------------------------------------------------------

def test_bad_xorb_bytes_or_hash_are_refused_and_nothing_is_stored(cas: Cas) -> None:
    xorb, other = random_xorb([10_000, 10_000]), random_xorb([3_000])
    blobs, rows = cas.blobs(), cas.rows("xet_xorbs")
    mismatch = cas.put_xorb(xorb, body=other.body)
    assert mismatch.status_code == 400 and "hash" in mismatch.json()["error"], mismatch.text
    garbage = cas.put_xorb(xorb, body=os.urandom(5_000))
    assert garbage.status_code == 400 and "xorb" in garbage.json()["error"].lower()
    truncated = cas.put_xorb(xorb, body=xorb.body[:-7])
    assert truncated.status_code == 400
    empty = cas.put_xorb(xorb, body=b"")
    assert empty.status_code == 400
    bad_name = httpx.post(cas.url("/v1/xorbs/default/NOT-A-HASH"), content=xorb.body, headers=cas.token("alice/xet"))
    assert bad_name.status_code == 400 and "hash" in bad_name.json()["error"]
    assert (cas.blobs(), cas.rows("xet_xorbs")) == (blobs, rows)


def test_a_shard_naming_a_missing_xorb_or_with_a_wrong_proof_is_refused(cas: Cas) -> None:
    stored, missing = random_xorb([8_000, 9_000]), random_xorb([7_000])
    assert cas.put_xorb(stored).status_code == 200
    files = cas.rows("xet_files"), cas.rows("xet_repo_files")
    entry, _ = file_of((stored, 0, 2), (missing, 0, 1))
    answer = cas.put_shard([entry], [stored.entry()])
    assert answer.status_code == 400 and missing.name in answer.json()["error"], answer.text
    listed_only = cas.put_shard([], [missing.entry()])
    assert listed_only.status_code == 400 and missing.name in listed_only.json()["error"]
    good, _ = file_of((stored, 0, 2))
    wrong_proof = FileEntry(good.file_hash, good.terms, (bytes(32),), good.sha256)
    refused = cas.put_shard([wrong_proof], [])
    assert refused.status_code == 400 and "verification" in refused.json()["error"], refused.text
    no_proof = FileEntry(good.file_hash, good.terms, None, good.sha256)
    assert cas.put_shard([no_proof], []).status_code == 400
    wrong_hash = FileEntry(bytes(32), good.terms, good.verification, good.sha256)
    assert cas.put_shard([wrong_hash], []).status_code == 400
    outside = FileEntry(good.file_hash, (Term(stored.hash, good.terms[0].unpacked_size, 0, 3),), good.verification, None)
    assert cas.put_shard([outside], []).status_code == 400
    disagreeing = XorbEntry(stored.hash, ((bytes(32), 8_000), stored.pairs[1]))
    assert cas.put_shard([good], [disagreeing]).status_code == 400
    garbage = httpx.post(cas.url("/v1/shards"), content=os.urandom(500), headers=cas.token("alice/xet"))
    assert garbage.status_code == 400 and "shard" in garbage.json()["error"].lower()
    assert (cas.rows("xet_files"), cas.rows("xet_repo_files")) == files


def test_tokens_are_checked_on_every_call(cas: Cas) -> None:
    xorb = random_xorb([4_000])
    path = f"/v1/xorbs/default/{xorb.name}"
    other_key = CasTokens(Signer(b"not the server key")).mint(cas.repos["alice/xet"], RepoRef.parse("model", "alice/xet"),
                                                              "write", 600)[0]
    expired = cas.token("alice/xet", ttl=-5)
    rows = cas.rows("xet_xorbs")
    for headers in ({}, {"Authorization": "Bearer xetcas_garbage.sig"}, {"Authorization": f"Bearer {other_key}"},
                    expired, {"Authorization": f"Bearer {cas.server.token('alice')}"}):
        answer = httpx.post(cas.url(path), content=xorb.body, headers=headers)
        assert answer.status_code == 401, (headers, answer.text)
        assert isinstance(answer.json()["error"], str)
    assert "expired" in httpx.post(cas.url(path), content=xorb.body, headers=expired).json()["error"]
    body, _, sig = cas.token("alice/xet", "read")["Authorization"].removeprefix("Bearer xetcas_").partition(".")
    fields = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode().replace("\nread\n", "\nwrite\n")
    tampered = f"xetcas_{base64.urlsafe_b64encode(fields.encode()).decode().rstrip('=')}.{sig}"
    assert httpx.post(cas.url(path), content=xorb.body, headers={"Authorization": f"Bearer {tampered}"}).status_code == 401
    read = cas.token("alice/xet", "read")
    for upload in (path, "/v1/shards"):
        refused = httpx.post(cas.url(upload), content=xorb.body, headers=read)
        assert refused.status_code == 403 and "read-only" in refused.json()["error"], refused.text
    assert httpx.get(cas.url(f"/v1/reconstructions/{'0' * 64}")).status_code == 401
    assert cas.rows("xet_xorbs") == rows


def test_a_cas_token_dies_with_the_hubgate_token_it_was_issued_to(cas: Cas) -> None:
    cas.server.cli("user", "add", "bob", check=False)
    cas.server.cli("repo", "collaborator", "add", "alice/xet", "bob", "--role", "write")
    secret = cas.server.token("bob")
    (listed,) = [json.loads(line) for line in cas.server.cli("token", "list", "bob", "--json").stdout.splitlines()]
    hub = {"Authorization": f"Bearer {secret}"}
    granted = httpx.get(f"{cas.server.url}/api/models/alice/xet/xet-write-token/main", headers=hub)
    assert granted.status_code == 200, granted.text
    headers = {"Authorization": f"Bearer {granted.json()['accessToken']}"}
    xorb = random_xorb([3_000])
    stored = httpx.post(cas.url(f"/v1/xorbs/default/{xorb.name}"), content=xorb.body, headers=headers)
    assert stored.status_code == 200, stored.text
    audited = httpx.get(f"{cas.server.url}/api/audit?kind=xet-xorb", headers=cas.server.admin_headers()).json()
    assert any(r["path"].endswith(xorb.name) and r["user"] == "bob" and r["token_id"] == listed["id"] for r in audited)
    cas.server.cli("token", "revoke", str(listed["id"]))
    other = random_xorb([3_000])
    refused = httpx.post(cas.url(f"/v1/xorbs/default/{other.name}"), content=other.body, headers=headers)
    assert refused.status_code == 401 and "revoked" in refused.json()["error"], refused.text


def test_signed_ranges_expire_and_stay_inside_the_xorb(cas: Cas) -> None:
    xorb = random_xorb([6_000, 6_000])
    assert cas.put_xorb(xorb).status_code == 200
    entry, _ = file_of((xorb, 0, 2))
    assert cas.put_shard([entry], [xorb.entry()]).status_code == 200
    answer = cas.reconstruction(entry.file_hash).json()
    url = answer["fetch_info"][xorb.name][0]["url"]
    size = len(xorb.stored)
    assert httpx.get(url, headers={"Range": "bytes=0-9"}).content == xorb.stored[:10]
    beyond = httpx.get(url, headers={"Range": f"bytes={size}-{size + 10}"})
    assert beyond.status_code == 416
    past_end = httpx.get(url, headers={"Range": f"bytes={size - 4}-{size + 100}"})
    assert past_end.status_code == 206 and past_end.content == xorb.stored[-4:]
    expires, sig = cas.signer.sign("xet-data", xorb.name, ttl=-5)
    stale = httpx.get(cas.url(f"/data/{xorb.name}?exp={expires}&sig={sig}"), headers={"Range": "bytes=0-9"})
    assert stale.status_code == 403 and "expired" in stale.json()["error"]
    forged = httpx.get(url.replace("sig=", "sig=0"), headers={"Range": "bytes=0-9"})
    assert forged.status_code == 403
    other = random_xorb([100])
    swapped = httpx.get(url.replace(xorb.name, other.name), headers={"Range": "bytes=0-9"})
    assert swapped.status_code == 403  # signed for one xorb only


def test_a_range_past_the_end_answers_416(cas: Cas) -> None:
    xorb = random_xorb([5_000])
    assert cas.put_xorb(xorb).status_code == 200
    entry, data = file_of((xorb, 0, 1))
    assert cas.put_shard([entry], [xorb.entry()]).status_code == 200
    answer = cas.reconstruction(entry.file_hash, byte_range=f"bytes={len(data)}-{len(data) + 5}")
    assert answer.status_code == 416, answer.text
    assert isinstance(answer.json()["error"], str)


def test_signed_urls_and_tokens_never_reach_the_log(cas: Cas) -> None:
    xorb = random_xorb([3_000])
    headers = cas.token("alice/xet")
    assert cas.put_xorb(xorb).status_code == 200
    entry, _ = file_of((xorb, 0, 1))
    assert cas.put_shard([entry], [xorb.entry()]).status_code == 200
    url = cas.reconstruction(entry.file_hash).json()["fetch_info"][xorb.name][0]["url"]
    assert httpx.get(url, headers={"Range": "bytes=0-3"}).status_code == 206
    sig = url.rpartition("sig=")[2]
    token = headers["Authorization"].removeprefix("Bearer ")
    until(lambda: any(f"/xet-cas/data/{xorb.name}" in line for line in cas.server.log), "the access line")
    logged = "\n".join(cas.server.log)
    assert "sig=REDACTED" in logged  # the line is there, without its credentials
    assert sig not in logged and token not in logged


# -- garbage collection ---------------------------------------------------------------------------

def test_gc_collects_uncommitted_xorbs_and_files_and_keeps_committed_ones(tmp_path: Path) -> None:
    srv, cas = open_cas(tmp_path / "data")
    with srv:
        kept, orphan, dropped = random_xorb([11_000, 2_000]), random_xorb([4_000]), random_xorb([5_000])
        for xorb in (kept, orphan, dropped):
            assert cas.put_xorb(xorb).status_code == 200
        committed_file, data = file_of((kept, 0, 2))
        uncommitted_file, _ = file_of((dropped, 0, 1))
        assert cas.put_shard([committed_file, uncommitted_file], [kept.entry(), dropped.entry()]).status_code == 200
        # The committed file's SHA-256 named by a commit, as the hub's commit of a Xet upload names it.
        token = srv.token("alice")
        inline = httpx.post(f"{srv.url}/api/models/alice/xet/commit/main", headers={"Authorization": f"Bearer {token}"},
                            content="\n".join(['{"key": "header", "value": {"summary": "add"}}', _inline("w.bin", data)]))
        assert inline.status_code == 200, inline.text
        assert srv.sql("SELECT count(*) FROM git_objects WHERE lfs_sha256 = :s", s=committed_file.sha256) == [(1,)]
        # ... and its bytes verified against it (XetStore.confirm at the commit).
        assert srv.sql("UPDATE xet_repo_files SET verified = :v WHERE sha256 = :s RETURNING file_hash", v=True,
                       s=committed_file.sha256) == [(hash_to_str(committed_file.file_hash),)]

        young = srv.cli("gc")  # default grace periods: everything is too young
        assert "0 xorbs" in young.stdout, young.stdout
        assert cas.rows("xet_xorbs") == 3
        result = srv.cli("gc", "--grace", "0", "--upload-grace", "0")
        assert "1 Xet file links, 1 Xet files, 2 xorbs" in result.stdout, result.stdout
        names = {row[0] for row in srv.sql("SELECT hash FROM xet_xorbs")}
        assert names == {kept.name}
        assert rebuild(cas.reconstruction(committed_file.file_hash).json(), len(data)) == data
        assert cas.reconstruction(uncommitted_file.file_hash).status_code == 404
        stored = {row[0] for row in srv.sql("SELECT blob_sha256 FROM xet_xorbs")}
        assert not {hashlib.sha256(xorb.stored).hexdigest() for xorb in (orphan, dropped)} & srv.stored_blobs()
        assert stored <= srv.stored_blobs()
        fsck = srv.cli("fsck", check=False)
        assert fsck.returncode == 0 and "fsck: clean" in fsck.stdout, fsck.stdout


def test_a_deleted_repos_files_and_xorbs_are_collected(tmp_path: Path) -> None:
    srv, cas = open_cas(tmp_path / "data")
    with srv:
        xorb = random_xorb([7_000])
        assert cas.put_xorb(xorb, repo="alice/other").status_code == 200
        entry, _ = file_of((xorb, 0, 1))
        assert cas.put_shard([entry], [xorb.entry()], repo="alice/other").status_code == 200
        token = srv.token("alice")
        deleted = httpx.request("DELETE", f"{srv.url}/api/repos/delete", json={"name": "other"},
                                headers={"Authorization": f"Bearer {token}"})
        assert deleted.status_code == 200, deleted.text
        assert cas.rows("xet_repo_files") == 0  # at once
        late = cas.put_shard([entry], [], repo="alice/other")
        assert late.status_code == 403  # its tokens are worth nothing now
        result = srv.cli("gc", "--grace", "0")
        assert "1 Xet files, 1 xorbs" in result.stdout, result.stdout
        assert cas.rows("xet_xorbs") == 0 and cas.rows("xet_files") == 0


def _inline(path: str, data: bytes) -> str:
    return json.dumps({"key": "file", "value": {"path": path, "encoding": "base64", "content": base64.b64encode(data).decode()}})


def test_a_reupload_renews_a_collectable_xorb(tmp_path: Path) -> None:
    """A xorb re-uploaded (was_inserted false) after it became garbage is young again: gc keeps it and
    the shard that follows registers."""
    srv, cas = open_cas(tmp_path / "data")
    with srv:
        xorb = random_xorb([6_000])
        assert cas.put_xorb(xorb).status_code == 200
        assert srv.sql("UPDATE xet_xorbs SET touched_at = :t RETURNING hash", t=time.time() - 7200) == [(xorb.name,)]
        assert cas.put_xorb(xorb).json() == {"was_inserted": False}  # renews it
        result = srv.cli("gc")  # an hour of grace: the renewed xorb stays
        assert "0 xorbs" in result.stdout, result.stdout
        entry, data = file_of((xorb, 0, 1))
        assert cas.put_shard([entry], [xorb.entry()]).json() == {"result": 1}
        assert rebuild(cas.reconstruction(entry.file_hash).json(), len(data)) == data


def test_refused_uploads_leave_the_connection_usable(cas: Cas) -> None:
    """hf_xet sends a whole shard to /v2/shards, gets 404 and sends it again to /v1/shards on the same
    keep-alive connection; a refused xorb body is followed by the next xorb the same way."""
    xorb = random_xorb([20_000, 30_000])
    entry, _ = file_of((xorb, 0, 2))
    shard = build_shard([entry], [xorb.entry()])
    headers = cas.token("alice/xet")
    with httpx.Client(headers=headers, timeout=60) as client:
        grant = client.post(cas.url(f"/v1/xorb-grants/default/{xorb.name}"), json={"length": len(xorb.body)})
        assert grant.status_code == 404
        bad = client.post(cas.url(f"/v1/xorbs/default/{xorb.name}"), content=os.urandom(len(xorb.body)))
        assert bad.status_code == 400
        assert client.post(cas.url(f"/v1/xorbs/default/{xorb.name}"), content=xorb.body).status_code == 200
        assert client.post(cas.url("/v2/shards"), content=shard + bytes(1_000_000)).status_code == 404
        answer = client.post(cas.url("/v1/shards"), content=shard)
        assert answer.status_code == 200 and answer.json() == {"result": 1}, answer.text


def test_xorbs_live_in_the_s3_bucket(tmp_path: Path) -> None:
    """With `[blobs] backend = "s3"` (even serving files by redirect), xorb bytes go to the bucket and the
    signed xorb ranges are answered from it; gc removes them from the bucket."""
    import seaweed

    if seaweed.unavailable():
        pytest.skip(seaweed.unavailable())
    store, prefix = seaweed.shared(), seaweed.new_prefix("xet")
    config = tmp_path / "hubgate.toml"
    table = seaweed.blobs_table(store, prefix, serve="redirect")
    config.write_text("[blobs]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in table.items()))
    srv, cas = open_cas(tmp_path / "data", config=config, env=seaweed.ENV)
    with srv:
        xorb = random_xorb([50_000, 60_000])
        assert cas.put_xorb(xorb).json() == {"was_inserted": True}
        digest = hashlib.sha256(xorb.stored).hexdigest()
        assert any(key.endswith(digest) for key in store.keys(prefix))
        assert cas.blobs() == 0  # nothing on the local disk
        entry, data = file_of((xorb, 0, 2))
        assert cas.put_shard([entry], [xorb.entry()]).json() == {"result": 1}
        answer = cas.reconstruction(entry.file_hash, byte_range=f"bytes=10-{len(data) - 1}")
        assert rebuild(answer.json(), len(data) - 10) == data[10:]
        result = srv.cli("gc", "--grace", "0", "--upload-grace", "0", "--config", str(config))  # the same bucket
        assert "1 xorbs, 1 blobs" in result.stdout, result.stdout
        assert not any(key.endswith(digest) for key in store.keys(prefix))


def test_gc_during_uploads_never_takes_what_a_registered_file_uses(tmp_path: Path) -> None:
    """Collections with no grace period at all run back to back while xorbs are uploaded and named by
    shards (old collectable ones uploaded again, and fresh ones). A xorb may go between its upload and
    its shard (the shard is then refused: "not uploaded"), but a file whose shard was accepted keeps
    every xorb and byte it uses: it reads whole, and fsck finds nothing missing."""
    srv, cas = open_cas(tmp_path / "data")
    with srv:
        old = [random_xorb([3_000 + i, 2_000]) for i in range(6)]
        for xorb in old:
            assert cas.put_xorb(xorb).status_code == 200
        files: list[tuple[FileEntry, bytes]] = []
        errors: list[str] = []
        refused = 0
        done = threading.Event()

        def upload_loop() -> None:  # each turn: an old xorb again and a fresh one, in a new file
            nonlocal refused
            try:
                for turn in range(1000):
                    if done.is_set():
                        return
                    xorb, fresh = old[turn % len(old)], random_xorb([1_000])
                    for body in (xorb, fresh):
                        answer = cas.put_xorb(body)
                        if answer.status_code != 200:
                            errors.append(answer.text)
                            return
                    entry, data = file_of((xorb, 0, 2), (fresh, 0, 1))
                    registered = cas.put_shard([entry], [fresh.entry()])
                    if registered.status_code == 400 and "was not uploaded" in registered.text:
                        refused += 1  # collected in between: the client uploads it again
                    elif registered.status_code != 200:
                        errors.append(registered.text)
                        return
                    else:
                        files.append((entry, data))
            except Exception as exc:  # reported by the main thread
                errors.append(repr(exc))

        worker = threading.Thread(target=upload_loop)
        worker.start()
        try:
            for _ in range(3):  # collections back to back, all of them while the uploads go on
                subprocess.run([sys.executable, "-m", "hubgate", "gc", "--grace", "0", "--data", str(srv.data)],
                               env=srv.env, check=True, capture_output=True, timeout=120)
        finally:
            done.set()
            worker.join()
        assert not errors, errors
        assert files, f"every one of {refused} shards was refused"
        srv.cli("gc", "--grace", "0")
        for entry, data in files:
            assert rebuild(cas.reconstruction(entry.file_hash).json(), len(data)) == data
        fsck = srv.cli("fsck", check=False)
        assert fsck.returncode == 0 and "fsck: clean" in fsck.stdout, fsck.stdout


def test_the_server_stores_its_own_encoding_of_a_xorb(cas: Cas) -> None:
    """A valid xorb in an unusual LZ4 framing is stored re-encoded, and a later upload in another
    encoding of the same chunks changes nothing: every client downloads the same, plain bytes."""
    import lz4.frame

    chunks = [b"weights " * 4_000, os.urandom(9_000)]
    odd = b"".join(
        bytes([0]) + len(p).to_bytes(3, "little") + bytes([1]) + len(c).to_bytes(3, "little") + p
        for c in chunks for p in [lz4.frame.compress(c, content_checksum=True, block_checksum=True)]
    )
    xorb = Xorb(chunks)
    assert odd != xorb.stored
    first = cas.put_xorb(xorb, body=odd)
    assert first.json() == {"was_inserted": True}, first.text
    assert cas.put_xorb(xorb, body=build_xorb(chunks, 0)).json() == {"was_inserted": False}  # raw: same chunks
    entry, data = file_of((xorb, 0, 2))
    assert cas.put_shard([entry], [xorb.entry()]).status_code == 200
    answer = cas.reconstruction(entry.file_hash).json()
    url = answer["fetch_info"][xorb.name][0]["url"]
    assert httpx.get(url, headers={"Range": f"bytes=0-{len(xorb.stored) - 1}"}).content == xorb.stored
    assert rebuild(answer, len(data)) == data


def test_global_dedup_lists_the_xorbs_the_repo_may_read(cas: Cas) -> None:
    """GET /v1/chunks answers, for a file's first chunk or a chunk clients ask about, a complete shard
    naming the xorbs holding it with keyed chunk hashes; only xorbs of files registered for the
    token's repo, else 404 (as for a chunk nobody stored)."""
    xorb = random_xorb([10_000, 20_000, 30_000])
    assert cas.put_xorb(xorb).status_code == 200
    entry, _ = file_of((xorb, 1, 3))  # a file starting at the xorb's second chunk
    first = hash_to_str(xorb.pairs[1][0])
    url = cas.url(f"/v1/chunks/default/{first}")
    assert httpx.get(url, headers=cas.token("alice/xet", "read")).status_code == 404  # no file yet
    assert cas.put_shard([entry], [xorb.entry()]).status_code == 200
    for prefix in ("default", "default-merkledb"):
        answer = httpx.get(cas.url(f"/v1/chunks/{prefix}/{first}"), headers=cas.token("alice/xet", "read"))
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/octet-stream"
        listed = parse_shard(answer.content)
        assert listed.files == () and [x.xorb for x in listed.xorbs] == [xorb.hash]
        sizes = [size for _, size in listed.xorbs[0].chunks]
        assert sizes == [size for _, size in xorb.pairs]
        assert not {h for h, _ in listed.xorbs[0].chunks} & {h for h, _ in xorb.pairs}  # keyed, not raw
    assert httpx.get(url, headers=cas.token("alice/other", "read")).status_code == 404  # not that repo's
    unasked = hash_to_str(xorb.pairs[2][0])
    if dedup_eligible(xorb.pairs[2][0]):  # one chunk in 1024 is one clients ask about
        return
    assert httpx.get(cas.url(f"/v1/chunks/default/{unasked}"), headers=cas.token("alice/xet", "read")).status_code == 404


# -- the real client (hf_xet, as huggingface_hub drives it, against this CAS with its tokens) ---------------------------

UPLOAD = """
import os, sys
import hf_xet
hf_xet.upload_files(sys.argv[2:], sys.argv[1], (os.environ["CAS_TOKEN"], int(os.environ["CAS_EXP"])), None, None, "model")
"""
DOWNLOAD = """
import os, sys
import hf_xet
wanted = [hf_xet.PyXetDownloadInfo(sys.argv[i], sys.argv[i + 1], int(sys.argv[i + 2])) for i in range(2, len(sys.argv), 3)]
hf_xet.download_files(wanted, sys.argv[1], (os.environ["CAS_TOKEN"], int(os.environ["CAS_EXP"])), None, None)
"""


def hf_xet_run(cas: Cas, code: str, repo: str, scope: str, home: Path, *args: str) -> None:
    token, expires = cas.tokens.mint(cas.repos[repo], RepoRef.parse("model", repo), scope, 3600)
    env = clean_env(HF_HOME=str(home), CAS_TOKEN=token, CAS_EXP=str(expires))
    done = subprocess.run([sys.executable, "-c", code, cas.url(""), *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def test_hf_xet_uploads_downloads_and_dedups_an_edited_copy_globally(cas: Cas, tmp_path: Path) -> None:
    """hf_xet 1.8.0 uploads a file (xorbs, shard), downloads it back through reconstructions and signed
    ranges, and, with an EMPTY cache, uploads an edited copy sending only the changed chunks: the
    global dedup answers point it at the first upload's xorb."""
    original = random.Random(11).randbytes(3_000_000)
    edited = bytearray(original)
    edited[1_500_000:1_500_010] = b"0123456789"
    (tmp_path / "v1.bin").write_bytes(original)
    (tmp_path / "v2.bin").write_bytes(edited)

    def stored_bytes() -> int:
        return int(cas.server.sql("SELECT coalesce(sum(size), 0) FROM xet_xorbs")[0][0])

    def file_hash_of(data: bytes) -> str:
        rows = cas.server.sql("SELECT file_hash FROM xet_repo_files WHERE sha256 = :s", s=hashlib.sha256(data).hexdigest())
        assert len(rows) == 1, rows
        return str(rows[0][0])

    before = stored_bytes()
    hf_xet_run(cas, UPLOAD, "alice/xet", "write", tmp_path / "home-1", str(tmp_path / "v1.bin"))
    first = stored_bytes() - before
    assert first >= len(original) * 0.99  # random bytes: stored whole
    hf_xet_run(cas, UPLOAD, "alice/xet", "write", tmp_path / "home-2", str(tmp_path / "v2.bin"))  # a fresh cache
    assert stored_bytes() - before - first < 300_000  # the changed chunk, not the file again
    for name, data in (("v1", original), ("v2", bytes(edited))):
        hf_xet_run(cas, DOWNLOAD, "alice/xet", "read", tmp_path / f"home-down-{name}", str(tmp_path / f"back-{name}"),
                   file_hash_of(data), str(len(data)))
        assert (tmp_path / f"back-{name}").read_bytes() == data, name


def test_mutated_xorbs_and_shards_get_a_clear_answer_never_a_server_error(cas: Cas) -> None:
    rng = random.Random(5)
    xorb = random_xorb([3_000, 4_000, 5_000])
    entry, _ = file_of((xorb, 0, 3))
    twice, _ = file_of((xorb, 0, 1), (xorb, 0, 3))
    bodies = {"xorb": xorb.body, "shard": build_shard([entry, twice, entry], [xorb.entry(), xorb.entry()])}
    assert cas.put_xorb(xorb).status_code == 200
    for kind, body in bodies.items():
        for _ in range(40):
            mutated = bytearray(body)
            for _ in range(rng.randint(1, 4)):
                at = rng.randrange(len(mutated))
                if rng.random() < 0.2:
                    del mutated[at : at + rng.randint(1, 64)]
                else:
                    mutated[at] ^= 1 << rng.randrange(8)
            path = f"/v1/xorbs/default/{xorb.name}" if kind == "xorb" else "/v1/shards"
            answer = httpx.post(cas.url(path), content=bytes(mutated), headers=cas.token("alice/xet"), timeout=60)
            assert answer.status_code in (200, 400), (kind, answer.status_code, answer.text)
            if answer.status_code == 400:
                assert kind in answer.json()["error"].lower(), answer.text
    assert cas.put_shard([entry, twice, entry], [xorb.entry(), xorb.entry()]).status_code == 200  # duplicates are fine


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_parallel_xorb_uploads_are_checked_as_they_arrive_in_bounded_memory(tmp_path: Path) -> None:
    """Six 48 MiB xorbs uploaded at once raise the server's peak memory by far less than one of them: each is checked
    and written as it arrives (docs/xet-storage.md), not held whole; a bad record at the end still stores nothing."""
    srv, cas = open_cas(tmp_path / "data")
    with srv:
        xorbs = [random_xorb([65536] * 768) for _ in range(6)]
        bodies = [x.body for x in xorbs]
        peak = _peak_rss(srv.process.pid)
        answers: list[httpx.Response] = []

        def upload(xorb: Xorb, body: bytes) -> None:
            answers.append(httpx.post(cas.url(f"/v1/xorbs/default/{xorb.name}"), content=body,
                                      headers=cas.token("alice/xet"), timeout=300))

        threads = [threading.Thread(target=upload, args=(x, b)) for x, b in zip(xorbs, bodies, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        grown = _peak_rss(srv.process.pid) - peak
        print(f"peak RSS grew by {grown / 2**20:.0f} MiB during 6 parallel 48 MiB xorb uploads")
        assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
        assert all(a.json() == {"was_inserted": True} for a in answers)
        assert grown < 48 * 1024 * 1024, f"peak RSS grew by {grown / 2**20:.0f} MiB"
        stored = cas.blobs(), cas.rows("xet_xorbs")
        late = random_xorb([65536] * 64)
        broken = late.body[:-1] + bytes([late.body[-1] ^ 1])  # the last chunk's last byte: found at the very end
        refused = cas.put_xorb(late, body=broken)
        assert refused.status_code == 400 and "Invalid xorb" in refused.json()["error"], refused.text
        assert (cas.blobs(), cas.rows("xet_xorbs")) == stored

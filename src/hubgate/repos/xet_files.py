"""Contents hosted repos hold as Xet files, and the check a commit makes before pointing at one.

huggingface_hub commits a file uploaded through Xet as an ordinary `lfsFile` (sha256 oid and size):
the repo's tree gets the usual LFS pointer, and the bytes stay in xorbs (not in the blob store). The
server learned sha256 -> Xet file only from the shard uploaded for the repo just before (its
FileMetadataExt), which is the client's claim: a file is committed once its reconstructed bytes
hash to the oid, and `XetStore.confirm` then marks the repo's link to it verified (docs/xet.md has
the threat model). A verified link is what makes a repo serve a content as that Xet file; a file
already verified for the same sha256 (by any repo's commit) is not hashed again.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from hubgate.errors import BadRequest
from hubgate.storage.metadata import MetadataStore
from hubgate.storage.xettables import XetFileTerms, XetRepoFile
from hubgate.xet.store import XetStore

BATCH = 500
Held = tuple[str, int]  # (Xet file hash in the 64-hex string form, size)


def held(session: Session, repo_pk: int, sha256s: Iterable[str]) -> dict[str, Held]:
    """{sha256: (file hash, size)} for the contents of `sha256s` the repo holds as verified Xet files."""
    wanted = sorted(set(sha256s))
    found: dict[str, Held] = {}
    for start in range(0, len(wanted), BATCH):
        rows = session.execute(
            select(XetRepoFile.sha256, XetRepoFile.file_hash, XetFileTerms.size)
            .join(XetFileTerms, XetFileTerms.hash == XetRepoFile.file_hash)
            .where(XetRepoFile.repo_pk == repo_pk, XetRepoFile.verified.is_(True),
                   XetRepoFile.sha256.in_(wanted[start : start + BATCH]))
            .order_by(XetRepoFile.file_hash)
        )
        for sha256, file_hash, size in rows:
            if sha256 is not None:
                found.setdefault(sha256, (file_hash, size))
    return found


def _verified_anywhere(session: Session, sha256: str, file_hash: str) -> bool:
    query = select(XetRepoFile.repo_pk).where(
        XetRepoFile.file_hash == file_hash, XetRepoFile.sha256 == sha256, XetRepoFile.verified.is_(True)
    ).limit(1)
    return session.scalar(query) is not None


def resolve(metadata: MetadataStore, xet: XetStore, repo_pk: int, oids: Iterable[str]) -> dict[str, Held]:
    """{sha256: (file hash, size)} for each oid: a Xet file uploaded for the repo, whose bytes hash to
    that oid. BadRequest for an oid that is not (then nothing is committed)."""
    found: dict[str, Held] = {}
    for sha256 in sorted(set(oids)):
        file = xet.file_for_sha256(sha256, repo_pk)
        if file is None:  # the same words as for an LFS object that was not uploaded
            raise BadRequest(f"LFS object {sha256} was not uploaded")
        if not file.verified:
            with metadata.session() as session:
                known = _verified_anywhere(session, sha256, file.name)
            actual = sha256 if known else xet.sha256(file)
            if actual != sha256:
                raise BadRequest(f"The file uploaded through Xet as {sha256} hashes to {actual}: nothing was committed")
            xet.confirm(repo_pk, file.file_hash, sha256)
        found[sha256] = (file.name, file.size)
    return found

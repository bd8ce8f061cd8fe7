"""Consistency check: every stored byte re-hashed, every reference resolved, and what nothing uses.

Findings that make the store unclean: a blob whose bytes do not hash to its name (damaged), a git
object whose data does not hash to its id, a git object or blob content a hosted repo reaches but
the store lacks, a mirror cache record whose blob is gone. Unreferenced blobs are reported too, but
are garbage for `hubgate gc`, not damage (a crash between writing a blob and committing it leaves
one). With `repair`, damaged blobs are quarantined (moved aside, never served: a hosted file then
answers a clear error until it is uploaded again, a mirrored one is fetched again) and mirror
records without a blob are dropped, so those files are fetched again on their next request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import delete, select

from hubgate.maintenance.reach import Reach, roots, walk
from hubgate.storage.blobs import BlobStore
from hubgate.storage.metadata import GitObject, MetadataStore, MirrorFile, RepoLfsObject
from hubgate.storage.xettables import XetPlainCopy, XetRepoFile, XetXorb

READ = 1024 * 1024
BATCH = 500


@dataclass(frozen=True)
class Finding:
    problem: str  # damaged-blob | damaged-object | missing-object | missing-content | missing-cached | unreferenced
    subject: str  # sha256 or git sha1
    detail: str
    repaired: bool = False

    @property
    def unclean(self) -> bool:
        return self.problem != "unreferenced" and not self.repaired

    def line(self) -> str:
        state = " (repaired)" if self.repaired else ""
        return f"{self.problem} {self.subject}: {self.detail}{state}"


@dataclass
class FsckReport:
    findings: list[Finding] = field(default_factory=list)
    blobs_checked: int = 0
    objects_checked: int = 0

    @property
    def clean(self) -> bool:
        return not any(f.unclean for f in self.findings)

    def summary(self) -> str:
        unreferenced = sum(1 for f in self.findings if f.problem == "unreferenced")
        problems = sum(1 for f in self.findings if f.unclean)
        state = "clean" if self.clean else f"unclean: {problems} problem(s)"
        return (
            f"fsck: {state}; {self.blobs_checked} blobs and {self.objects_checked} git objects checked, "
            f"{unreferenced} unreferenced blob(s) for gc"
        )


class Fsck:
    def __init__(self, metadata: MetadataStore, blobs: BlobStore) -> None:
        self.metadata = metadata
        self.blobs = blobs

    def run(self, *, repair: bool = False, scrub: bool = True) -> FsckReport:
        report = FsckReport()
        stored: set[str] = set()
        for blob in self.blobs.scan():
            report.blobs_checked += 1
            actual = self._hash(blob.sha256) if scrub else blob.sha256
            if actual is None:  # gone since it was listed (collected, or evicted from the mirror)
                continue
            if actual != blob.sha256:
                if repair:
                    self.blobs.quarantine(blob.sha256, f"fsck: its bytes hash to {actual}")
                report.findings.append(Finding("damaged-blob", blob.sha256, f"its bytes hash to {actual}", repair))
                if repair:
                    continue
            stored.add(blob.sha256)
        reach = Reach()
        with self.metadata.session() as session:
            walk(session, roots(session), reach)
        report.findings += [Finding("missing-object", sha1, f"reached from {where}") for sha1, where in reach.missing]
        if scrub:
            report.findings += self._scrub_objects(report)
        with self.metadata.session() as session:  # contents uploaded through Xet: in xorbs, checked below
            in_xet = set(session.scalars(select(XetRepoFile.sha256).where(XetRepoFile.verified.is_(True))))
        for sha256, where in sorted(reach.content.items()):
            if sha256 not in stored and sha256 not in in_xet:
                report.findings.append(Finding("missing-content", sha256, f"the content of {where}"))
        report.findings += self._mirror_records(stored, repair)
        with self.metadata.session() as session:
            linked = set(session.scalars(select(RepoLfsObject.oid)))
            cached = set(session.scalars(select(MirrorFile.sha256)))
            xorbs = {blob: xorb for blob, xorb in session.execute(select(XetXorb.blob_sha256, XetXorb.hash))}
            copies = set(session.scalars(select(XetPlainCopy.sha256)))  # a cache: no finding when evicted
        for sha256, xorb in sorted(xorbs.items()):
            if sha256 not in stored:
                report.findings.append(Finding("missing-content", sha256, f"the bytes of xorb {xorb}"))
        for sha256 in sorted(stored - set(reach.content) - linked - cached - set(xorbs) - copies):
            report.findings.append(Finding("unreferenced", sha256, "no repo, upload or mirror record uses it"))
        return report

    def _hash(self, sha256: str) -> str | None:
        digest = hashlib.sha256()
        try:
            with self.blobs.open(sha256) as handle:
                while chunk := handle.read(READ):
                    digest.update(chunk)
        except FileNotFoundError:
            return None
        return digest.hexdigest()

    def _scrub_objects(self, report: FsckReport) -> list[Finding]:
        found = []
        for sha1, kind, data, content in self._objects():
            report.objects_checked += 1
            if content is not None:
                continue  # its bytes are a blob, checked with the blob store
            actual = hashlib.sha1(b"%s %d\0" % (kind.encode(), len(data)) + data).hexdigest()
            if actual != sha1:
                found.append(Finding("damaged-object", sha1, f"its {kind} data hashes to {actual}"))
        return found

    def _objects(self) -> Iterator[tuple[str, str, bytes, str | None]]:
        last = ""
        while True:
            with self.metadata.session() as session:
                rows = session.execute(
                    select(GitObject.sha1, GitObject.kind, GitObject.data, GitObject.content_sha256)
                    .where(GitObject.sha1 > last)
                    .order_by(GitObject.sha1)
                    .limit(BATCH)
                ).all()
            if not rows:
                return
            yield from ((sha1, kind, data, content) for sha1, kind, data, content in rows)
            last = rows[-1][0]

    def _mirror_records(self, stored: set[str], repair: bool) -> list[Finding]:
        with self.metadata.session() as session:
            rows = session.execute(select(MirrorFile.oid, MirrorFile.sha256)).all()
        lost = [(oid, sha256) for oid, sha256 in rows if sha256 not in stored]
        if lost and repair:
            with self.metadata.session() as session:
                session.execute(delete(MirrorFile).where(MirrorFile.oid.in_([oid for oid, _ in lost])))
        return [
            Finding("missing-cached", sha256, f"the mirror's cached file {oid} (fetched again on its next request)", repair)
            for oid, sha256 in lost
        ]

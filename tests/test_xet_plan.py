"""Xet reconstruction (issue 11): a range of a file is trimmed to the chunks that hold it, the chunk ranges of a xorb
are merged when they overlap or touch, a start past the end is a 416, and the bytes rebuilt from the stored xorbs
are exactly the file's."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubgate.xet.chunking import chunk_boundaries
from hubgate.xet.hashing import chunk_hash, xorb_hash
from hubgate.xet.plan import FetchRange, RangeNotSatisfiable, StoredDataError, plan
from hubgate.xet.reconstruct import digest_file, file_bytes
from hubgate.xet.shard import Term
from hubgate.xet.xorb import (
    ChunkEntry,
    IndexView,
    canonical_xorb,
    decode_chunk_records,
    encode_record,
    pack_index,
)


class Store:
    """xorb hash -> (serialized bytes, chunk index), as the CAS keeps them."""

    def __init__(self) -> None:
        self.bodies: dict[bytes, bytes] = {}
        self.indexes: dict[bytes, list[ChunkEntry]] = {}
        self.pieces = 1 << 20
        self.reads: list[tuple[bytes, int, int]] = []
        self.packed = False  # answer with IndexView over the packed index, as the CAS does

    def add(self, chunks: Sequence[bytes], schemes: Sequence[int] | None = None) -> bytes:
        body = b"".join(encode_record(c, s) for c, s in zip(chunks, schemes or [1] * len(chunks), strict=True))
        xorb = xorb_hash([(chunk_hash(c), len(c)) for c in chunks])
        self.bodies[xorb], self.indexes[xorb] = canonical_xorb(body, xorb)  # as the CAS stores it
        return xorb

    def index(self, xorb: bytes) -> Sequence[ChunkEntry] | None:
        found = self.indexes.get(xorb)
        return IndexView(pack_index(found)) if self.packed and found is not None else found

    def read(self, xorb: bytes, first: int, last: int) -> Iterator[bytes]:
        self.reads.append((xorb, first, last))
        body = self.bodies[xorb][first : last + 1]
        for at in range(0, len(body), self.pieces):
            yield body[at : at + self.pieces]

    def term(self, xorb: bytes, start: int, end: int) -> Term:
        return Term(xorb, sum(c.unpacked_size for c in self.indexes[xorb][start:end]), start, end)

    def data(self, term: Term) -> bytes:
        body = self.bodies[term.xorb]
        return b"".join(self._chunk(body, entry) for entry in self.indexes[term.xorb][term.start : term.end])

    @staticmethod
    def _chunk(body: bytes, entry: ChunkEntry) -> bytes:
        return next(decode_chunk_records(body[entry.offset : entry.offset + entry.stored_size]))


def _rebuild(store: Store, terms: Sequence[Term], start: int, end: int | None) -> bytes:
    return b"".join(file_bytes(terms, store.index, store.read, start, end))


@pytest.fixture()
def zeros() -> tuple[Store, list[Term]]:
    """300000 zero bytes as hf_xet uploads them: one xorb [A, B], terms [0,1) and [0,2)."""
    ends = chunk_boundaries(bytes(300000))
    assert ends == [131072, 262144, 300000]
    store = Store()
    xorb = store.add([bytes(131072), bytes(37856)], [2, 0])
    return store, [store.term(xorb, 0, 1), store.term(xorb, 0, 2)]


def test_overlapping_terms_are_merged(zeros: tuple[Store, list[Term]]) -> None:
    store, terms = zeros
    xorb = terms[0].xorb
    index = store.indexes[xorb]
    whole = plan(terms, store.index, 0, 299999)
    assert whole.offset_into_first_range == 0
    assert whole.terms == terms
    assert whole.fetch == {xorb: [FetchRange(0, 2, 0, len(store.bodies[xorb]) - 1)]}
    assert index[1].offset + index[1].stored_size == len(store.bodies[xorb])
    assert plan(terms, store.index, 0, None) == whole
    assert plan(terms, store.index, 0, 10**12) == whole
    assert _rebuild(store, terms, 0, None) == bytes(300000)


def test_trimming(zeros: tuple[Store, list[Term]]) -> None:
    store, terms = zeros
    xorb = terms[0].xorb
    a, b = store.indexes[xorb]
    # the second term only, from 5 bytes into its first chunk
    later = plan(terms, store.index, 131072 + 5, None)
    assert later.offset_into_first_range == 5
    assert later.terms == [Term(xorb, 131072 + 37856, 0, 2)]
    # inside the first term: the second is dropped
    early = plan(terms, store.index, 10, 20)
    assert (early.offset_into_first_range, early.terms) == (10, [Term(xorb, 131072, 0, 1)])
    assert early.fetch == {xorb: [FetchRange(0, 1, 0, a.stored_size - 1)]}
    # the last 3 bytes: only chunk B of the second term
    tail = plan(terms, store.index, 299997, 299999)
    assert (tail.offset_into_first_range, tail.terms) == (37856 - 3, [Term(xorb, 37856, 1, 2)])
    assert tail.fetch == {xorb: [FetchRange(1, 2, b.offset, b.offset + b.stored_size - 1)]}
    # a window spanning both terms but not B
    mid = plan(terms, store.index, 131000, 131072 + 100)
    assert mid.terms == [Term(xorb, 131072, 0, 1), Term(xorb, 131072, 0, 1)]
    assert mid.fetch == {xorb: [FetchRange(0, 1, 0, a.stored_size - 1)]}
    assert _rebuild(store, terms, 131000, 131072 + 100) == bytes(173)


def test_416(zeros: tuple[Store, list[Term]]) -> None:
    store, terms = zeros
    for start, end in [(300000, None), (300000, 300005), (10**9, None), (-1, 5), (10, 9)]:
        with pytest.raises(RangeNotSatisfiable) as refused:
            plan(terms, store.index, start, end)
        assert refused.value.size == 300000
        with pytest.raises(RangeNotSatisfiable):
            file_bytes(terms, store.index, store.read, start, end)
    with pytest.raises(RangeNotSatisfiable):
        plan([], store.index, 0, None)
    assert _rebuild(store, terms, 299999, 299999) == b"\0"


def test_touching_ranges_merge_and_gaps_do_not() -> None:
    store = Store()
    rng = random.Random(1)
    x = store.add([rng.randbytes(100 + i) for i in range(6)])
    y = store.add([rng.randbytes(50)])
    idx = store.indexes[x]

    def span(first: int, last: int) -> FetchRange:
        return FetchRange(first, last, idx[first].offset, idx[last - 1].offset + idx[last - 1].stored_size - 1)

    terms = [store.term(x, 2, 4), store.term(y, 0, 1), store.term(x, 0, 2), store.term(x, 5, 6), store.term(x, 3, 4)]
    result = plan(terms, store.index, 0, None)
    assert result.fetch == {x: [span(0, 4), span(5, 6)], y: [FetchRange(0, 1, 0, len(store.bodies[y]) - 1)]}
    assert list(result.fetch) == [x, y]
    expected = b"".join(store.data(t) for t in terms)
    assert _rebuild(store, terms, 0, None) == expected


def test_missing_or_damaged_xorbs_are_a_server_fault(zeros: tuple[Store, list[Term]]) -> None:
    store, terms = zeros
    xorb = terms[0].xorb
    body = store.bodies[xorb]
    store.bodies[xorb] = body[:-1] + bytes([body[-1] ^ 1])
    with pytest.raises(StoredDataError, match="damaged"):
        _rebuild(store, terms, 0, None)
    store.bodies[xorb] = body[:-10]
    with pytest.raises(StoredDataError, match="damaged"):
        _rebuild(store, terms, 0, None)
    store.bodies[xorb] = body
    lying = [Term(xorb, 5, 0, 1)]
    with pytest.raises(StoredDataError, match="disagrees"):
        plan(lying, store.index, 0, None)
    with pytest.raises(StoredDataError, match="missing"):
        plan([Term(bytes(32), 5, 0, 1)], store.index, 0, None)


def _random_file(rng: random.Random) -> tuple[Store, list[Term], bytes]:
    store = Store()
    xorbs = []
    for _ in range(rng.randint(1, 3)):
        chunks = [rng.randbytes(rng.randint(1, 700)) if rng.random() < 0.7 else bytes(rng.randint(1, 700))
                  for _ in range(rng.randint(1, 8))]
        xorbs.append(store.add(chunks, [rng.choice([0, 1, 2]) for _ in chunks]))
    terms = []
    for _ in range(rng.randint(1, 7)):
        x = rng.choice(xorbs)
        n = len(store.indexes[x])
        start = rng.randrange(n)
        terms.append(store.term(x, start, rng.randint(start + 1, n)))
    return store, terms, b"".join(store.data(t) for t in terms)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.integers(0, 2**32), st.data())
def test_random_ranges_rebuild_the_original_bytes(seed: int, data: st.DataObject) -> None:
    store, terms, original = _random_file(random.Random(seed))
    store.pieces = data.draw(st.integers(1, 2000))
    store.packed = data.draw(st.booleans())
    start = data.draw(st.integers(0, len(original) - 1))
    end = data.draw(st.none() | st.integers(start, len(original) + 50))
    assert _rebuild(store, terms, start, end) == original[start : None if end is None else end + 1]
    result = plan(terms, store.index, start, end)
    # every kept term lies inside one fetch range of its xorb, and a xorb's ranges neither overlap nor touch
    for term in result.terms:
        assert any(r.chunk_start <= term.start and term.end <= r.chunk_end for r in result.fetch[term.xorb])
    for ranges in result.fetch.values():
        for before, after in zip(ranges, ranges[1:], strict=False):
            assert before.chunk_end < after.chunk_start
    first = result.terms[0]
    assert result.offset_into_first_range < store.indexes[first.xorb][first.start].unpacked_size


def test_whole_xorb_reads_are_bounded_per_term() -> None:
    rng = random.Random(9)
    store = Store()
    chunks = [rng.randbytes(1000) for _ in range(50)]
    x = store.add(chunks)
    terms = [store.term(x, 0, 50)]
    store.pieces = 4096
    out = list(file_bytes(terms, store.index, store.read, 0, None))
    assert b"".join(out) == b"".join(chunks) and max(map(len, out)) == 1000
    assert store.reads == [(x, 0, len(store.bodies[x]) - 1)]
    assert len(store.bodies[x]) == sum(8 + len(c) for c in chunks)  # random bytes: stored raw (canonical_xorb)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), pieces=st.integers(1, 3000), flip=st.integers(0, 2**32 - 1))
def test_digest_file_hashes_what_a_rebuild_gives(seed: int, pieces: int, flip: int) -> None:
    """digest_file (the commit's SHA-256 check) hashes the bytes file_bytes rebuilds, in pieces of any size; a flipped
    byte in a stored xorb gives another digest or a StoredDataError, unless the record still decodes to the same chunk."""
    store, terms, original = _random_file(random.Random(seed))
    store.pieces = pieces
    digest = hashlib.sha256()
    digest_file(terms, store.index, store.read, digest)
    assert digest.hexdigest() == hashlib.sha256(original).hexdigest()
    term = terms[flip % len(terms)]
    entry = store.indexes[term.xorb][term.start + flip % (term.end - term.start)]
    body = store.bodies[term.xorb]
    at = entry.offset + flip % entry.stored_size  # a byte of a record the file uses
    store.bodies[term.xorb] = body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1 :]
    damaged = hashlib.sha256()
    try:
        digest_file(terms, store.index, store.read, damaged)
    except StoredDataError:
        return
    if damaged.hexdigest() == hashlib.sha256(original).hexdigest():  # LZ4 frames are not unique: a flip inside one
        # can decode to the same chunk, which the checked rebuild (BLAKE3 per chunk) then accepts too
        assert b"".join(file_bytes(terms, store.index, store.read, 0, None)) == original

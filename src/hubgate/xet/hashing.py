"""Xet hashes (xet-protocol.md §3.1, §3.3-§3.6): keyed BLAKE3 over chunks, the aggregated tree, verification.

Every hash is 32 raw bytes; `hash_to_str` gives the 64-hex form used on the wire.
"""

from __future__ import annotations

from collections.abc import Sequence

from blake3 import blake3

HASH_SIZE = 32

DATA_KEY = bytes(
    [102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28,
     157, 228, 33, 16, 155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41]
)  # fmt: skip
NODE_KEY = bytes(
    [1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230,
     93, 221, 83, 111, 55, 199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63]
)  # fmt: skip
VERIFY_KEY = bytes(
    [127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243,
     164, 205, 38, 213, 181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195]
)  # fmt: skip
ZERO_HASH = bytes(HASH_SIZE)

# The aggregation cuts a group after a node whose last word is divisible by this (§3.4).
_BRANCHING = 4
_MAX_GROUP = 2 * _BRANCHING + 1
_HEX = frozenset("0123456789abcdef")


def hash_to_str(h: bytes) -> str:
    """The Xet string form: each 8-byte word printed as a little-endian u64 in lowercase hex."""
    if len(h) != HASH_SIZE:
        raise ValueError(f"a Xet hash has {HASH_SIZE} bytes, not {len(h)}")
    return b"".join(h[i : i + 8][::-1] for i in range(0, HASH_SIZE, 8)).hex()


def str_to_hash(s: str) -> bytes:
    """The inverse of `hash_to_str`; ValueError unless `s` is 64 lowercase hex digits."""
    if len(s) != 2 * HASH_SIZE or not _HEX.issuperset(s):
        raise ValueError("a Xet hash is 64 lowercase hexadecimal digits")
    raw = bytes.fromhex(s)
    return b"".join(raw[i : i + 8][::-1] for i in range(0, HASH_SIZE, 8))


def chunk_hash(data: bytes | bytearray | memoryview) -> bytes:
    return blake3(data, key=DATA_KEY).digest()


def _cut(nodes: Sequence[tuple[bytes, int]], start: int) -> int:
    """The end (exclusive) of the group that starts at `start`."""
    remaining = len(nodes) - start
    if remaining <= 2:
        return len(nodes)
    end = min(_MAX_GROUP, remaining)
    for i in range(2, end):
        if int.from_bytes(nodes[start + i][0][24:32], "little") % _BRANCHING == 0:
            return start + i + 1
    return start + end


def _merge(group: Sequence[tuple[bytes, int]]) -> tuple[bytes, int]:
    text = "".join(f"{hash_to_str(h)} : {size}\n" for h, size in group)
    return blake3(text.encode(), key=NODE_KEY).digest(), sum(size for _, size in group)


def aggregate(nodes: Sequence[tuple[bytes, int]]) -> bytes:
    """The aggregated ("merkle") hash of (hash, size) nodes; 32 zero bytes for none."""
    level = list(nodes)
    if not level:
        return ZERO_HASH
    while len(level) > 1:
        merged: list[tuple[bytes, int]] = []
        start = 0
        while start < len(level):
            end = _cut(level, start)
            merged.append(_merge(level[start:end]))
            start = end
        level = merged
    return level[0][0]


def xorb_hash(chunks: Sequence[tuple[bytes, int]]) -> bytes:
    """A xorb's hash: the aggregation over its (chunk hash, unpacked size) in stored order."""
    return aggregate(chunks)


def file_hash(chunks: Sequence[tuple[bytes, int]]) -> bytes:
    """A file's hash over all its (chunk hash, size) in file order; all zeros for an empty file."""
    if not chunks:
        return ZERO_HASH
    return blake3(aggregate(chunks), key=ZERO_HASH).digest()


def verification_hash(chunk_hashes: Sequence[bytes]) -> bytes:
    """The term verification hash (§3.6) over a xorb's chunk hashes [start, end)."""
    return blake3(b"".join(chunk_hashes), key=VERIFY_KEY).digest()

"""Xet hashes (xet-protocol.md §3.1, §3.3-§3.6): keyed BLAKE3 over chunks, the aggregated tree, verification.

Every hash is 32 raw bytes; `hash_to_str` gives the 64-hex form used on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
_DEDUP_MODULUS = 1024
_HEX = frozenset("0123456789abcdef")


def _swap_words(h: bytes) -> bytes:
    """Reverse the bytes within each 8-byte word (its own inverse)."""
    return h[7::-1] + h[15:7:-1] + h[23:15:-1] + h[31:23:-1]


def hash_to_str(h: bytes) -> str:
    """The Xet string form: each 8-byte word printed as a little-endian u64 in lowercase hex."""
    if len(h) != HASH_SIZE:
        raise ValueError(f"a Xet hash has {HASH_SIZE} bytes, not {len(h)}")
    return _swap_words(h).hex()


def str_to_hash(s: str) -> bytes:
    """The inverse of `hash_to_str`; ValueError unless `s` is 64 lowercase hex digits."""
    if len(s) != 2 * HASH_SIZE or not _HEX.issuperset(s):
        raise ValueError("a Xet hash is 64 lowercase hexadecimal digits")
    return _swap_words(bytes.fromhex(s))


def chunk_hash(data: bytes | bytearray | memoryview) -> bytes:
    return blake3(data, key=DATA_KEY).digest()


def _closes_group(h: bytes) -> bool:
    return int.from_bytes(h[24:32], "little") % _BRANCHING == 0


def _merge(group: Sequence[tuple[bytes, int]]) -> tuple[bytes, int]:
    text = "".join(f"{hash_to_str(h)} : {size}\n" for h, size in group)
    return blake3(text.encode(), key=NODE_KEY).digest(), sum(size for _, size in group)


class Aggregator:
    """The aggregated ("merkle") hash of (hash, size) nodes fed one at a time (§3.4), in bounded memory.

    Each tree level holds only its open group (under 9 nodes): a group closes after the first node at position 2 or
    later whose last word is divisible by 4, or at 9 nodes, exactly where the level-by-level rule cuts it; what is
    left open at the end forms the level's last group. Use once: add() every node, then root() or file_hash().
    """

    def __init__(self) -> None:
        self._open: list[list[tuple[bytes, int]]] = []  # per level: its open group
        self._seen: list[int] = []  # per level: nodes it has received

    def add(self, h: bytes, size: int) -> None:
        self._push(0, (h, size))

    def _push(self, level: int, node: tuple[bytes, int]) -> None:
        if level == len(self._open):
            self._open.append([])
            self._seen.append(0)
        group = self._open[level]
        group.append(node)
        self._seen[level] += 1
        if len(group) == _MAX_GROUP or (len(group) > 2 and _closes_group(node[0])):
            self._open[level] = []
            self._push(level + 1, _merge(group))

    def root(self) -> bytes:
        """The aggregated hash; 32 zero bytes for no nodes."""
        level = 0
        while level < len(self._open):
            if self._seen[level] == 1 and level == len(self._open) - 1:
                return self._open[level][0][0]
            if self._open[level]:
                group, self._open[level] = self._open[level], []
                self._push(level + 1, _merge(group))
            level += 1
        return ZERO_HASH

    def file_hash(self) -> bytes:
        """The file hash of the nodes as a file's chunks (§3.5); all zeros for an empty file."""
        if not self._seen:
            return ZERO_HASH
        return blake3(self.root(), key=ZERO_HASH).digest()


def aggregate(nodes: Iterable[tuple[bytes, int]]) -> bytes:
    """The aggregated ("merkle") hash of (hash, size) nodes; 32 zero bytes for none."""
    aggregator = Aggregator()
    for h, size in nodes:
        aggregator.add(h, size)
    return aggregator.root()


def xorb_hash(chunks: Iterable[tuple[bytes, int]]) -> bytes:
    """A xorb's hash: the aggregation over its (chunk hash, unpacked size) in stored order."""
    return aggregate(chunks)


def file_hash(chunks: Iterable[tuple[bytes, int]]) -> bytes:
    """A file's hash over all its (chunk hash, size) in file order; all zeros for an empty file."""
    aggregator = Aggregator()
    for h, size in chunks:
        aggregator.add(h, size)
    return aggregator.file_hash()


def keyed_hash(key: bytes, h: bytes) -> bytes:
    """A hash as a protected dedup shard lists it: BLAKE3 keyed with the shard's key."""
    return blake3(h, key=key).digest()


def dedup_eligible(chunk: bytes) -> bool:
    """Whether clients ask the global dedup endpoint about this chunk hash (§3.7; the first chunk of each file too)."""
    return int.from_bytes(chunk[24:32], "little") % _DEDUP_MODULUS == 0


def verification_hash(chunk_hashes: Sequence[bytes]) -> bytes:
    """The term verification hash (§3.6) over a xorb's chunk hashes [start, end)."""
    return blake3(b"".join(chunk_hashes), key=VERIFY_KEY).digest()

"""Xet storage: the formats as pure functions (hashing, chunking, xorbs, shards, reconstruction plans), no I/O."""

"""Xet storage. hashing, chunking, xorb, shard, plan and reconstruct are the formats, as pure functions without I/O."""

"""Shard math (server-contract §16.3): XXH64 seed 0 over the 8-byte little-endian id."""

from __future__ import annotations

import xxhash

HASH_FUNCTION = "twox_hash::XxHash64"
SEED = 0
MAX_SHARD_COUNT = 1024


def xxh64_of_id(execution_id: int) -> int:
    """XXH64 of the id's two's-complement little-endian bytes."""
    return xxhash.xxh64_intdigest(execution_id.to_bytes(8, "little", signed=True), seed=SEED)


def shard_for(execution_id: int, n: int) -> int:
    """Shard index of an execution for n shards."""
    if n <= 1:
        return 0
    return xxh64_of_id(execution_id) % n


def owns(execution_id: int, shard_index: int, shard_count: int) -> bool:
    """True when the replica with this index owns the execution."""
    return shard_count <= 1 or shard_for(execution_id, shard_count) == shard_index

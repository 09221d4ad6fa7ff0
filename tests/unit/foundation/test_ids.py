"""Snowflake layout and shard function pinned to the contract's vectors (server-contract §16)."""

from __future__ import annotations

import pytest

from app.ids import SnowflakeGenerator, compose, decode, fnv1a_64, node_id_from_name
from app.sharding import shard_for, xxh64_of_id

pytestmark = pytest.mark.unit


def test_layout_examples() -> None:
    assert compose(1767225600000, 0, 0) == 264905529753600000  # 2026-01-01T00:00Z
    assert compose(1787097600000, 7, 3) == 348254738841628675  # 2026-08-19, node 7, seq 3
    d = decode(320816801799737344)
    assert d.datetime.isoformat() == "2026-06-04T06:51:26.037000+00:00"
    assert (d.node, d.sequence) == (1, 0)


@pytest.mark.parametrize(
    ("eid", "expected", "digest"),
    [
        (325, {2: 0, 4: 0, 8: 4, 16: 4, 1024: 868}, 0x6CDD563C5D1A6764),
        (1, {2: 1, 4: 1, 8: 5, 16: 5, 1024: 405}, 0x9F29CB17A2A49995),
        (42, {2: 1, 4: 3, 8: 3, 16: 3, 1024: 851}, 0xB556806FB6D14353),
        (320816801799737344, {2: 0, 4: 2, 8: 6, 16: 14, 1024: 702}, 0x7C38CB2FCD528ABE),
        (9223372036854775807, {2: 0, 4: 0, 8: 4, 16: 12, 1024: 780}, 0xFF70CC60366E770C),
        (-1, {2: 1, 4: 1, 8: 1, 16: 9, 1024: 713}, 0x85D136ADB773C6C9),
    ],
)
def test_shard_vectors(eid: int, expected: dict[int, int], digest: int) -> None:
    assert xxh64_of_id(eid) == digest
    for n, shard in expected.items():
        assert shard_for(eid, n) == shard
    assert shard_for(eid, 1) == 0


def test_shard_extra_vector() -> None:
    assert shard_for(1, 64) == 21


def test_fnv1a_reference() -> None:
    assert fnv1a_64(b"") == 0xCBF29CE484222325
    assert fnv1a_64(b"a") == 0xAF63DC4C8601EC8C
    assert node_id_from_name("a") == 0xAF63DC4C8601EC8C & 0x3FF


def test_generator_monotonic_when_clock_steps_back() -> None:
    times = iter([1_800_000_000_000, 1_800_000_000_005, 1_799_999_999_000, 1_799_999_999_000])
    gen = SnowflakeGenerator(5, clock=lambda: next(times))
    ids = [gen.next_id() for _ in range(4)]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert all(decode(i).node == 5 for i in ids)


def test_generator_sequence_overflow_moves_forward() -> None:
    gen = SnowflakeGenerator(1, clock=lambda: 1_800_000_000_000)
    ids = gen.ids(5000)
    assert len(set(ids)) == 5000 and ids == sorted(ids)
    assert decode(ids[4096]).timestamp_ms == 1_800_000_000_001


def test_generator_rejects_bad_node() -> None:
    with pytest.raises(ValueError):
        SnowflakeGenerator(1024)

"""Machine indices → shards: contiguous, disjoint, covering, balanced (DESIGN §5)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.partitioning import MachineRange, shard_range, shard_table

pytestmark = pytest.mark.unit


@st.composite
def fleets(draw: st.DrawFn) -> tuple[int, int]:
    machines = draw(st.integers(min_value=1, max_value=5000))
    shards = draw(st.integers(min_value=1, max_value=min(machines, 300)))
    return machines, shards


@given(fleets())
def test_shards_are_contiguous_disjoint_covering_and_balanced(fleet: tuple[int, int]) -> None:
    machines, shards = fleet
    table = shard_table(machines, shards)
    assert [r.shard for r in table] == list(range(shards))
    assert table[0].start == 0
    assert table[-1].stop == machines
    for left, right in itertools.pairwise(table):
        assert left.stop == right.start  # contiguous and disjoint
    covered = [i for r in table for i in r.indices()]
    assert covered == list(range(machines))  # every machine exactly once
    sizes = [r.size for r in table]
    assert max(sizes) - min(sizes) <= 1
    assert min(sizes) >= 1


@given(fleets(), st.data())
def test_shard_range_is_the_table_row(fleet: tuple[int, int], data: st.DataObject) -> None:
    machines, shards = fleet
    index = data.draw(st.integers(min_value=0, max_value=shards - 1))
    assert shard_range(machines, shards, index) == shard_table(machines, shards)[index]


def test_larger_shards_come_first() -> None:
    assert shard_table(10, 3) == [
        MachineRange(0, 0, 4),
        MachineRange(1, 4, 7),
        MachineRange(2, 7, 10),
    ]


@pytest.mark.parametrize(
    ("machines", "shards", "index"),
    [(0, 1, 0), (3, 0, 0), (3, 4, 0), (3, 2, 2), (3, 2, -1)],
)
def test_invalid_arguments_are_rejected(machines: int, shards: int, index: int) -> None:
    with pytest.raises(ValueError, match=r"must be"):
        shard_range(machines, shards, index)

"""Machine ids: 8 lowercase hex chars, a keyed bijection of the index (DESIGN §5)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.machine_ids import MAX_MACHINES, machine_id, machine_id_values, machine_ids

pytestmark = pytest.mark.unit

HEX8 = re.compile(r"^[0-9a-f]{8}$")
names = st.text(min_size=1, max_size=40)


@given(names, st.integers(min_value=1, max_value=3000))
def test_ids_are_unique_hex_and_stable(name: str, machines: int) -> None:
    ids = machine_ids(name, range(machines))
    assert all(HEX8.match(i) for i in ids)
    assert len(set(ids)) == machines
    assert machine_ids(name, range(machines)) == ids  # stable: a pure function


@given(names, st.integers(min_value=0, max_value=MAX_MACHINES - 1))
def test_single_id_matches_the_vectorised_one(name: str, index: int) -> None:
    assert machine_id(name, index) == machine_ids(name, [index])[0]


@given(names, st.lists(st.integers(0, MAX_MACHINES - 1), min_size=2, max_size=50, unique=True))
def test_distinct_indices_never_collide(name: str, indices: list[int]) -> None:
    assert len(set(machine_ids(name, indices))) == len(indices)


def test_is_a_bijection_on_a_whole_16_bit_block() -> None:
    values = machine_id_values("sensorsim", np.arange(1 << 16))
    assert len(np.unique(values)) == 1 << 16
    assert int(values.max()) < MAX_MACHINES


def test_same_index_in_other_simulations_gets_other_ids() -> None:
    a = machine_ids("plant-a", range(100))
    b = machine_ids("plant-b", range(100))
    assert sum(x == y for x, y in zip(a, b, strict=True)) <= 1


def test_ids_do_not_depend_on_which_slice_is_asked_for() -> None:
    # A shard asking for indices 40..59 gets the ids a one-shard run gives those machines.
    assert machine_ids("x", range(40, 60)) == machine_ids("x", range(100))[40:60]


def test_known_values_are_pinned() -> None:
    # Changing the derivation would re-key every running simulation: keep these stable.
    assert machine_ids("sensorsim", range(3)) == ["14fa45d3", "25124735", "6795ccc2"]


@pytest.mark.parametrize("index", [-1, MAX_MACHINES])
def test_out_of_range_indices_are_rejected(index: int) -> None:
    with pytest.raises(ValueError, match="machine indices"):
        machine_id("x", index)


@given(names, st.integers(0, MAX_MACHINES - 50), st.integers(0, 40), st.integers(1, 3))
def test_a_range_gives_the_same_ids_as_its_list(
    name: str, start: int, size: int, step: int
) -> None:
    indices = range(start, start + size, step)
    assert machine_ids(name, indices) == machine_ids(name, list(indices))


def test_a_range_beyond_the_id_space_is_refused() -> None:
    with pytest.raises(ValueError, match="machine indices"):
        machine_id_values("x", range(MAX_MACHINES - 1, MAX_MACHINES + 1))

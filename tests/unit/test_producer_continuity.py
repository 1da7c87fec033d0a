"""Continuity without a broker: engine state export/restore, the checkpoint codec, the
catch-up of machines restored at different cycles, the skip-ahead plan."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from domain.machine_ids import machine_ids
from domain.simulation_model import FailureModel, SimulationModel
from producer.continuity.catch_up import plan_skips, row_runs
from producer.continuity.codec import (
    CheckpointFormatError,
    decode_machine,
    encode_machines,
    machine_key,
    parse_key,
    simulation_key,
    stack_states,
)
from producer.continuity.coordinator import Continuity
from producer.continuity.schedule import Schedule
from producer.errors import ConfigError
from producer.settings import ProducerSettings, load_settings
from producer.simulation.engine import CycleResult, SimulationEngine
from producer.simulation.reference_data import load_profile

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PROFILE = load_profile(REPO / "data" / "data_sensors.csv", 20)
# Frequent, short episodes: every test sees machines start, ramp and end failures.
FAILURES = FailureModel(probability=0.2, min_cycles=2, max_cycles=5, ramp_cycles=2)


def engine(first: int = 0, count: int = 8) -> SimulationEngine:
    return SimulationEngine(
        PROFILE,
        FAILURES,
        first_machine=first,
        count=count,
        seed=5,
        simulation_name="cont",
        model=SimulationModel.LEARNED,
    )


def same(
    a: CycleResult, b: CycleResult, rows: slice = slice(None), rows_b: slice | None = None
) -> bool:
    """Rows ``rows`` of ``a`` equal rows ``rows_b`` (default: the same) of ``b``."""
    other = rows if rows_b is None else rows_b
    failing = a.failing[rows]
    return (
        a.cycle == b.cycle
        and np.array_equal(a.micros[rows], b.micros[other])
        and np.array_equal(failing, b.failing[other])
        and np.array_equal(a.episode_cycle[rows], b.episode_cycle[other])
        and np.array_equal(a.failure_type[rows][failing], b.failure_type[other][failing])
    )


def test_a_restored_engine_continues_exactly_like_the_undisturbed_one() -> None:
    undisturbed = engine()
    for _ in range(37):
        undisturbed.step()
    rows = np.arange(8)
    restored = engine()
    restored.restore_state(rows, undisturbed.export_state(rows))
    restored.cycle = undisturbed.cycle
    for _ in range(40):
        assert same(undisturbed.step(), restored.step())


def test_state_moves_between_shards_of_different_sizes() -> None:
    """Machines 3..5 checkpointed by a shard 0..7 continue in a shard 2..6."""
    old = engine(0, 8)
    for _ in range(20):
        old.step()
    state = old.export_state(np.arange(3, 6))
    new = engine(2, 5)
    new.restore_state(np.arange(1, 4), state)
    new.cycle = old.cycle
    for _ in range(25):
        assert same(old.step(), new.step(), slice(3, 6), slice(1, 4))


def test_restore_rejects_other_names_and_shapes() -> None:
    e = engine()
    state = e.export_state(np.arange(2))
    with pytest.raises(ValueError, match="state names"):
        e.restore_state(np.arange(2), {**state, "other": state[e.state_names[0]]})
    with pytest.raises(ValueError, match="shape"):
        e.restore_state(np.arange(3), state)


def test_restore_leaves_the_last_result_untouched() -> None:
    e = engine()
    result = e.step()
    before = result.failing.copy()
    flipped = e.export_state(np.arange(8))
    flipped["was_failing"] = np.logical_not(flipped["was_failing"])
    e.restore_state(np.arange(8), flipped)
    assert np.array_equal(result.failing, before)


def test_checkpoint_records_round_trip_bit_for_bit() -> None:
    e = engine()
    for _ in range(13):
        e.step()
    rows = np.arange(8)
    ids = machine_ids("cont", range(8))
    state = e.export_state(rows)
    records = encode_machines(
        "cont", ids, [13] * 8, model="original", fingerprint="abc", state=state
    )
    assert [key for key, _ in records] == [machine_key("cont", i) for i in ids]
    decoded = [decode_machine(value) for _, value in records]
    assert [d.machine_id for d in decoded] == ids
    assert {(d.cycle, d.model, d.fingerprint) for d in decoded} == {(13, "original", "abc")}
    stacked = stack_states(decoded)
    for name, array in state.items():
        assert stacked[name].dtype == array.dtype
        assert np.array_equal(stacked[name], array)  # floats exactly, not approximately
        assert stacked[name].tobytes() == array.tobytes()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (b"not json", "not JSON"),
        (b'{"format": "other/1"}', "format 'other/1'"),
        (b'{"format": "sensorsim-checkpoint/1", "cycle": 1}', "lacks a valid field"),
        (None, "tombstone"),
    ],
)
def test_unreadable_checkpoints_are_named(value: bytes | None, problem: str) -> None:
    with pytest.raises(CheckpointFormatError, match=problem):
        decode_machine(value)  # type: ignore[arg-type]


def test_keys_name_the_simulation_and_the_record_kind() -> None:
    assert parse_key(machine_key("a/b", "0badcafe")) == ("a/b", "m", "0badcafe")
    assert parse_key(simulation_key("x", "p1")) == ("x", "s", "p1")
    assert parse_key(b"sensor-data") is None
    assert parse_key(None) is None
    assert parse_key(b"\xff\xfe") is None


def test_runs_split_rows_by_adjacency_and_skip() -> None:
    skipped = np.array([0, 0, 0, 4, 4, 0, 0, 0])
    rows = np.array([0, 1, 3, 4, 6, 7])
    assert row_runs(rows, skipped) == [(0, 2, 0), (3, 5, 4), (6, 8, 0)]
    assert row_runs(np.array([], dtype=np.int64), skipped) == []


def test_skip_plan_keeps_at_most_the_bound_of_missed_cycles() -> None:
    next_cycle = np.array([0, 95, 100, 101])
    skipped = plan_skips(next_cycle, current=100, bound=10)
    # cycles 91..100 (ten) are re-emitted; the machine at 101 is on schedule
    assert next_cycle.tolist() == [91, 95, 100, 101]
    assert skipped.tolist() == [91, 0, 0, 0]
    unbounded = np.array([3])
    assert plan_skips(unbounded, current=None, bound=0).tolist() == [0]
    assert unbounded.tolist() == [3]
    nothing = np.array([50])
    plan_skips(nothing, current=100, bound=0)
    assert nothing.tolist() == [101]  # bound 0: resume on the next scheduled cycle


def test_catch_up_steps_lagging_machines_alone_until_the_shard_is_aligned() -> None:
    """Rows 0..2 checkpointed at cycle 5 and rows 3..7 at cycle 9 (two old shards that
    stopped at different cycles): the catch-up emits 5..8 for rows 0..2 only, and everything
    emitted equals an undisturbed run."""
    undisturbed = engine()
    reference = [undisturbed.step() for _ in range(14)]
    replay = engine()
    at5 = engine()
    for _ in range(5):
        at5.step()
    at9 = engine()
    for _ in range(9):
        at9.step()
    replay.restore_state(np.arange(3), at5.export_state(np.arange(3)))
    replay.restore_state(np.arange(3, 8), at9.export_state(np.arange(3, 8)))

    settings = ProducerSettings(simulation_interval_ms=0, num_machines=8, http_port=0)
    continuity = Continuity(
        settings, PROFILE, machine_ids("cont", range(8)), None, CollectorRegistry()
    )
    continuity.progress.next_cycle[:] = [5, 5, 5, 9, 9, 9, 9, 9]
    sent: list[tuple[int, int, int, int]] = []

    def send(result: CycleResult, first: int, stop: int, skipped: int) -> None:
        assert same(result, reference[result.cycle], slice(first, stop))
        sent.append((result.cycle, first, stop, skipped))

    continuity.catch_up(replay, send, threading.Event())
    assert sent == [(c, 0, 3, 0) for c in range(5, 9)]
    assert replay.cycle == 9
    for cycle in range(9, 14):
        assert same(replay.step(), reference[cycle])


def test_a_skip_is_announced_once_on_the_next_record() -> None:
    settings = ProducerSettings(simulation_interval_ms=0, num_machines=8, http_port=0)
    continuity = Continuity(
        settings, PROFILE, machine_ids("cont", range(8)), None, CollectorRegistry()
    )
    continuity.progress.next_cycle[:] = 7
    continuity.progress.skipped[:] = [0, 0, 0, 0, 7, 7, 7, 7]
    sent: list[tuple[int, int, int, int]] = []
    e = engine()
    continuity.catch_up(e, lambda r, a, b, s: sent.append((r.cycle, a, b, s)), threading.Event())
    assert sent == [(7, 0, 4, 0), (7, 4, 8, 7)]
    assert e.cycle == 8
    assert not continuity.progress.skipped.any()


def test_the_schedule_stamps_every_cycle_to_the_exact_millisecond() -> None:
    schedule = Schedule(epoch_ms=1_764_561_948_451, interval_ms=50)
    first = datetime.fromisoformat(schedule.timestamp(0))
    assert first == datetime(2025, 12, 1, 4, 5, 48, 451000, tzinfo=UTC)
    for cycle in range(0, 100_000, 7):
        stamp = datetime.fromisoformat(schedule.timestamp(cycle))
        assert stamp - first == timedelta(milliseconds=50 * cycle)
    assert schedule.current_cycle(1_764_561_948.451 + 0.049) == 0
    assert schedule.current_cycle(1_764_561_948.451 + 0.050) == 1
    assert Schedule(0, 0).current_cycle(1e9) is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kafka_topic": "t", "kafka_state_topic": "t"}, "KAFKA_STATE_TOPIC must differ"),
        ({"kafka_topic": "x" * 245}, "too long to derive the state topic"),
        ({"kafka_state_topic": "no spaces"}, "KAFKA_STATE_TOPIC='no spaces'"),
        ({"simulation_epoch": "2026-12-01T00:00:00"}, "SIMULATION_EPOCH must carry a UTC offset"),
        ({"checkpoint_interval_ms": "-1"}, "CHECKPOINT_INTERVAL_MS"),
    ],
)
def test_continuity_settings_are_checked(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(**overrides)


def test_the_state_topic_derives_from_the_data_topic() -> None:
    assert load_settings(kafka_topic="plant-a").state_topic == "plant-a-state"
    assert load_settings(kafka_state_topic="shared-state").state_topic == "shared-state"

"""Continuity without a broker: engine state export/restore, the checkpoint codec, the
catch-up of machines restored at different cycles, the skip-ahead plan."""

from __future__ import annotations

import itertools
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from domain.machine_ids import machine_ids
from domain.simulation_model import FailureModel, SimulationModel
from producer.continuity.catch_up import Progress, catch_up, plan_skips, row_runs
from producer.continuity.codec import (
    CheckpointFormatError,
    SegmentRecord,
    SimulationRecord,
    decode_machine,
    decode_segment,
    encode_machines,
    encode_segment,
    machine_key,
    parse_key,
    segment_key,
    simulation_key,
    stack_states,
)
from producer.continuity.coordinator import Continuity
from producer.continuity.history import History
from producer.continuity.schedule import Schedule
from producer.continuity.segments import ShardSegments, segment_parameters
from producer.errors import ConfigError
from producer.serialisation import BodyEncoder
from producer.settings import ProducerSettings, load_settings
from producer.simulation.engine import CycleResult, SimulationEngine
from producer.simulation.reference_data import load_profile
from producer.simulation.stream_settings import EngineSettings

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

    def send(result: CycleResult, first: int, stop: int, skipped: int, encoder: object) -> None:
        assert encoder is None
        assert same(result, reference[result.cycle], slice(first, stop))
        sent.append((result.cycle, first, stop, skipped))

    continuity.position.segments = ShardSegments(continuity.history, replay, 8, None)
    continuity.catch_up(send, threading.Event())
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
    continuity.position.segments = ShardSegments(continuity.history, e, 8, None)
    continuity.catch_up(lambda r, a, b, s, _: sent.append((r.cycle, a, b, s)), threading.Event())
    assert sent == [(7, 0, 4, 0), (7, 4, 8, 7)]
    assert e.cycle == 8
    assert not continuity.progress.skipped.any()


def test_the_schedule_stamps_every_cycle_to_the_exact_millisecond() -> None:
    schedule = Schedule.uniform(epoch_ms=1_764_561_948_451, interval_ms=50)
    first = datetime.fromisoformat(schedule.timestamp(0))
    assert first == datetime(2025, 12, 1, 4, 5, 48, 451000, tzinfo=UTC)
    for cycle in range(0, 100_000, 7):
        stamp = datetime.fromisoformat(schedule.timestamp(cycle))
        assert stamp - first == timedelta(milliseconds=50 * cycle)
    assert schedule.current_cycle(1_764_561_948.451 + 0.049) == 0
    assert schedule.current_cycle(1_764_561_948.451 + 0.050) == 1
    assert Schedule.uniform(0, 0).current_cycle(1e9) is None


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


# -- configuration history ---------------------------------------------------------------------
CONFIG = {
    "model": "learned",
    "persistence": 0.95,
    "sensors": list(PROFILE.sensor_names),
    "data_sha256": "d",
    "failure_types": list(PROFILE.failure_types),
    "failures": [0.2, 2, 5, 2],
    "interval_ms": 100,
    "machines": 8,
}
RECORD = SimulationRecord("cont", epoch_ms=1_000_000, seed=5, config=CONFIG)


def segment(index: int, from_cycle: int, start_ms: int, **changes: Any) -> SegmentRecord:
    config: dict[str, Any] = {**CONFIG, **changes}
    return SegmentRecord(index, from_cycle, start_ms, int(config["interval_ms"]), config)


def test_the_history_takes_the_first_proposal_of_each_index_in_offset_order() -> None:
    first = segment(1, 10, 2_000, failures=[0.5, 2, 5, 2])
    rival = segment(1, 12, 2_200, failures=[0.9, 2, 5, 2])
    second = segment(2, 20, 3_000, interval_ms=50)
    orphan = segment(4, 40, 9_000)
    history = History.agree(RECORD, [rival, second, first, orphan])
    assert [s.index for s in history.segments] == [0, 1, 2]
    assert history.segments[1] == rival  # lowest offset wins, whatever it says
    assert History.agree(RECORD, [first, rival]).segments[1] == first
    assert History.agree(RECORD, []).latest.config == CONFIG
    # a proposal starting before the segment it follows is not a valid successor
    backwards = segment(2, 5, 1_500)
    assert History.agree(RECORD, [first, backwards, second]).latest == second
    assert [history.index_at(c) for c in (0, 11, 12, 19, 20, 10**6)] == [0, 0, 1, 1, 2, 2]


def test_a_change_takes_effect_at_the_cycle_after_the_one_due_now() -> None:
    history = History.agree(RECORD, [])
    now = (1_000_000 + 57 * 100 + 30) / 1000  # cycle 57 is due, 58 is not
    assert history.change_cycle(now, highest_checkpoint=40) == 58
    assert history.change_cycle(now, highest_checkpoint=70) == 70  # a machine is already there
    proposal = history.proposal({**CONFIG, "interval_ms": 1000}, 58, now_ms=0)
    assert (proposal.index, proposal.from_cycle, proposal.interval_ms) == (1, 58, 1000)
    assert proposal.start_ms == 1_000_000 + 58 * 100  # where the old schedule had put cycle 58
    # without an interval: after the highest checkpoint, the next cycle due now
    fast = History.agree(SimulationRecord("cont", 1_000_000, 5, {**CONFIG, "interval_ms": 0}), [])
    assert fast.change_cycle(now, highest_checkpoint=12_345) == 12_345
    assert fast.proposal(CONFIG, 12_345, now_ms=5_000_000).start_ms == 5_000_000


def test_the_piecewise_schedule_keeps_timestamps_monotone_across_interval_changes() -> None:
    history = History.agree(
        RECORD, [segment(1, 10, 1_000_000 + 10 * 100, interval_ms=1000),
                 segment(2, 15, 1_000_000 + 1_000 + 5 * 1000, interval_ms=10)]
    )  # fmt: skip
    schedule = history.schedule()
    due = [schedule.due_ms(c) for c in range(30)]
    assert due[:11] == [1_000_000 + 100 * c for c in range(11)]  # unchanged before the change
    assert [b - a for a, b in itertools.pairwise(due)] == [100] * 10 + [1000] * 5 + [10] * 14
    assert schedule.current_cycle((1_000_000 + 1_000 + 5 * 1000 + 25) / 1000) == 17
    assert schedule.interval_ms == 10
    stamps = [datetime.fromisoformat(schedule.timestamp(c)) for c in range(30)]
    assert stamps == sorted(stamps)
    assert History.agree(RECORD, []).schedule() == Schedule.uniform(1_000_000, 100)


def test_new_machines_start_where_the_history_first_includes_them() -> None:
    history = History.agree(
        RECORD, [segment(1, 10, 2_000, machines=4), segment(2, 30, 4_000, machines=12)]
    )
    assert [history.first_cycle(m) for m in (0, 3, 7, 8, 11, 12)] == [0, 0, 0, 30, 30, 30]
    legacy = SimulationRecord(
        "cont", 1_000_000, 5, {k: v for k, v in CONFIG.items() if k != "machines"}
    )
    assert History.agree(legacy, []).first_cycle(10**6) == 0  # the previous release: everyone


def test_segment_records_and_keys_round_trip() -> None:
    record = segment(3, 77, 12_345, failures=[0.01, 3, 4, 1])
    assert decode_segment(encode_segment(record)) == record
    assert parse_key(segment_key("plant@0b1e-4c", 3, "p9")) == ("plant@0b1e-4c", "c", "3/p9")
    assert parse_key(segment_key("a/c", 12, "p")) == ("a/c", "c", "12/p")
    assert parse_key(b"x/c/notanumber/p") is None
    old = orjson.loads(encode_machines("x", ["m"], [3], model="learned", fingerprint="f",
                                       state={"a": np.zeros((1, 2))})[0][1])  # fmt: skip
    del old["segment"]  # a checkpoint of the previous release
    assert decode_machine(orjson.dumps(old)).segment == 0


def factory(settings: EngineSettings) -> tuple[SimulationEngine, BodyEncoder]:
    assert settings.sensors == PROFILE.num_sensors
    built = SimulationEngine(
        PROFILE, settings.failures, first_machine=0, count=8, seed=5, simulation_name="cont",
        model=settings.model, persistence=settings.persistence, scenarios=settings.scenarios,
        interval_ms=settings.interval_ms,
    )  # fmt: skip
    ids = machine_ids("cont", range(8))
    return built, BodyEncoder(PROFILE.sensor_names, ids, PROFILE.failure_types,
                              max_abs_value=built.max_abs_reading)  # fmt: skip


def replay(history: History, checkpoint_cycle: int, until: int) -> dict[int, CycleResult]:
    """Machines 0..7 checkpointed under segment 0 at ``checkpoint_cycle``, caught up to the
    latest segment, then run to ``until``: every cycle emitted, by cycle."""
    old = factory(segment_parameters(CONFIG))[0]
    for _ in range(checkpoint_cycle):
        old.step()
    latest = factory(segment_parameters(history.latest.config))[0]
    segments = ShardSegments(history, latest, 8, factory)
    rows = np.arange(8)
    segments.place(rows, 0, old.export_state(rows))
    progress = Progress(np.full(8, checkpoint_cycle, np.int64), np.zeros(8, np.int64))
    emitted: dict[int, CycleResult] = {}
    schedule = Schedule.uniform(0, 0)

    def send(result: CycleResult, first: int, stop: int, skipped: int, _: object) -> None:
        emitted.setdefault(result.cycle, result)

    catch_up(progress, schedule, segments, send, threading.Event())
    while latest.cycle < until:
        result = latest.step()
        emitted[result.cycle] = result
    return emitted


@pytest.mark.parametrize(
    "change",
    [
        {"failures": [0.6, 3, 8, 1]},  # failure settings: state kept
        {"persistence": 0.5},
        {"model": "original"},  # the sensor state starts again, the episodes go on
        {"failure_types": ["other"]},  # the episodes end
    ],
)
def test_cycles_before_a_change_replay_under_the_old_segment(change: dict[str, object]) -> None:
    """Restored before the change (cycle 4) or at it (cycle 10), a machine emits the same
    records: cycles 4..9 as the old configuration made them, 10.. under the new one."""
    history = History.agree(RECORD, [segment(1, 10, 0, **change)])
    early = replay(history, 4, 25)
    at_change = replay(history, 10, 25)
    undisturbed = factory(segment_parameters(CONFIG))[0]
    before = [undisturbed.step() for _ in range(10)]
    for cycle in range(4, 10):
        assert same(early[cycle], before[cycle])
    assert sorted(at_change) == list(range(10, 25))
    for cycle in range(10, 25):
        assert same(early[cycle], at_change[cycle])
    assert not all(same(early[c], undisturbed.step()) for c in range(10, 25))


def test_a_machine_entering_a_new_model_starts_from_a_fresh_draw_and_keeps_its_episode() -> None:
    history = History.agree(RECORD, [segment(1, 10, 0, model="original")])
    old = factory(segment_parameters(CONFIG))[0]
    for _ in range(10):
        old.step()
    latest = factory(segment_parameters(history.latest.config))[0]
    segments = ShardSegments(history, latest, 8, factory)
    rows = np.arange(8)
    before = old.export_state(rows)
    segments.place(rows, 0, before)
    segments.enter(rows, 10)
    after = latest.export_state(rows)
    assert np.array_equal(after["walk"], latest.fresh_state(rows, 10))
    assert not np.array_equal(after["walk"], latest.fresh_state(rows, 0))
    for name in ("remaining", "episode_cycle", "failure_type", "was_failing"):
        assert np.array_equal(after[name], before[name])
    assert set(segments.row_segment.tolist()) == {1}

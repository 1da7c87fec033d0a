"""Continuing a simulation written without SIMULATION_UID (under its name alone) once the
producer gets one, without a broker: the records go through the real codec and the same
reader the state topic uses, in an in-memory log in offset order."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from pathlib import Path

import numpy as np
import pytest

from domain.machine_ids import machine_ids
from producer.continuity.adoption import Joined, join
from producer.continuity.codec import (
    SegmentRecord,
    SimulationRecord,
    decode_simulation,
    encode_machines,
    encode_segment,
    encode_simulation,
    segment_key,
    simulation_key,
)
from producer.continuity.history import History
from producer.continuity.snapshot import SnapshotReader, StateSnapshot
from producer.errors import ConfigError
from producer.settings import ProducerSettings, load_settings
from producer.simulation.reference_data import load_profile

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PROFILE = load_profile(REPO / "data" / "data_sensors.csv", 20)
EPOCH = "2026-03-01T10:00:00Z"
EPOCH_MS = 1_772_359_200_000
IDS = machine_ids("plant", range(6))
Log = list[tuple[bytes, bytes | None]]


class MemoryStateTopic:
    """The state topic as a list of (key, value) in offset order, read like the real one."""

    def __init__(self, log: Log, settings: ProducerSettings) -> None:
        self.log = log
        self.settings = settings
        self.topic = "plant-data-state"
        self.prefix = settings.state_prefix

    def read(self, machine_ids: set[str]) -> StateSnapshot:
        reader = SnapshotReader.of(self.settings, self.topic, machine_ids)
        for offset, (key, value) in enumerate(self.log):
            reader.take(key, value, offset)
        return reader.snapshot()

    def propose(self, record: SimulationRecord, proposal: str) -> None:
        self.log.append((simulation_key(self.prefix, proposal), encode_simulation(record)))

    def propose_segment(self, record: SegmentRecord, proposal: str) -> None:
        key = segment_key(self.prefix, record.index, proposal)
        self.log.append((key, encode_segment(record)))

    def checkpoint(self, joined: Joined, cycles: dict[str, int]) -> None:
        """Checkpoints of ``cycles`` (machine id -> next cycle) under the latest segment."""
        latest = joined.history.latest
        ids = sorted(cycles)
        state = {"walk": np.arange(len(ids), dtype=np.float64)}
        self.log.extend(
            encode_machines(self.prefix, ids, [cycles[i] for i in ids], model=str(
                latest.config["model"]), fingerprint=latest.fingerprint, state=state,
                segment=latest.index)
        )  # fmt: skip


def settings(**overrides: str) -> ProducerSettings:
    base = {"simulation_name": "plant", "num_machines": "6", "simulation_seed": "7",
            "simulation_interval_ms": "0", "failure_probability": "0.1"}  # fmt: skip
    return load_settings(**{**base, **overrides})


def start(log: Log, **overrides: str) -> tuple[MemoryStateTopic, Joined]:
    store = MemoryStateTopic(log, settings(**overrides))
    joined = join(store, store.settings, PROFILE, set(IDS), seed=7, fallback_seed=99)
    return store, joined


def legacy_simulation(log: Log) -> Joined:
    """A simulation under the name alone (with SIMULATION_EPOCH, as the operator ran it) with
    a second configuration segment and checkpoints of every machine, some under each."""
    store, first = start(log, simulation_epoch=EPOCH)
    store.checkpoint(first, dict.fromkeys(IDS[:3], 10))
    store, changed = start(log, simulation_epoch=EPOCH, failure_probability="0.3")
    assert changed.history.latest.index == 1
    store.checkpoint(changed, {i: 20 + n for n, i in enumerate(IDS[3:])})
    return changed


def own_prefix_records(log: Log, prefix: str) -> list[bytes]:
    return [key for key, _ in log if key.startswith(f"{prefix}/".encode())]


def test_a_record_not_adopted_encodes_exactly_as_before() -> None:
    record = SimulationRecord("plant", epoch_ms=5, seed=7, config={"model": "original"})
    assert encode_simulation(record) == (
        b'{"format":"sensorsim-simulation/1","simulation":"plant","epoch_ms":5,"seed":"7",'
        b'"config":{"model":"original"}}'
    )
    adopted = SimulationRecord("plant", 5, 7, {"model": "original"}, "plant", 2)
    assert decode_simulation(encode_simulation(adopted)) == adopted
    assert decode_simulation(encode_simulation(record)) == record


def test_the_same_epoch_continues_the_simulation_under_the_new_prefix() -> None:
    log: Log = []
    before = legacy_simulation(log)
    store, joined = start(log, simulation_epoch=EPOCH, simulation_uid="u-1",
                          failure_probability="0.3")  # fmt: skip
    record = joined.record
    assert (record.epoch_ms, record.seed, record.config) == (
        EPOCH_MS, before.record.seed, before.record.config)  # fmt: skip
    assert (record.adopted_from, record.adopted_segments) == ("plant", 1)
    assert joined.history == before.history  # the same history, same cycles and due times
    assert {i: c.cycle for i, c in joined.snapshot.machines.items()} == {
        **dict.fromkeys(IDS[:3], 10), **{i: 20 + n for n, i in enumerate(IDS[3:])}}  # fmt: skip
    assert joined.snapshot.highest_cycle == 22
    # the adopted record and the segment were written under the new prefix
    assert len(own_prefix_records(log, "plant@u-1")) == 2
    own = MemoryStateTopic(log, store.settings).read(set(IDS))
    assert History.agree(own.simulations[0], own.segments) == before.history


def test_checkpoints_written_after_adoption_win_and_the_rest_still_come_from_the_name() -> None:
    log: Log = []
    legacy_simulation(log)
    store, joined = start(log, simulation_epoch=EPOCH, simulation_uid="u-1",
                          failure_probability="0.3")  # fmt: skip
    store.checkpoint(joined, {IDS[0]: 40})
    assert own_prefix_records(log, "plant@u-1")[-1] == f"plant@u-1/m/{IDS[0]}".encode()
    _, again = start(log, simulation_epoch=EPOCH, simulation_uid="u-1", failure_probability="0.3")
    cycles = {i: c.cycle for i, c in again.snapshot.machines.items()}
    assert cycles[IDS[0]] == 40
    assert cycles[IDS[1]] == 10
    assert again.snapshot.highest_cycle == 40
    assert again.record.adopted_from == "plant"  # the agreed record is the first, unchanged
    # a shard of other machines sees the adopted ones' cycles for its change cycle
    other = MemoryStateTopic(log, settings(simulation_epoch=EPOCH, simulation_uid="u-1"))
    snapshot = other.read({IDS[5]})
    snapshot.continue_legacy(other.topic)
    assert snapshot.highest_cycle == 40


def test_a_shard_that_reads_a_half_written_adoption_completes_it_identically() -> None:
    """The adopter stopped after its record (or another shard is still copying): a joiner
    copies the missing segments; a late duplicate copy changes nothing."""
    log: Log = []
    before = legacy_simulation(log)
    adopted = dataclasses.replace(before.record, adopted_from="plant", adopted_segments=1)
    log.append((simulation_key("plant@u-1", "a"), encode_simulation(adopted)))
    _, joined = start(log, simulation_epoch=EPOCH, simulation_uid="u-1", failure_probability="0.3")
    assert joined.history == before.history
    late = before.history.segments[1]
    log.append((segment_key("plant@u-1", 1, uuid.uuid4().hex), encode_segment(late)))
    _, again = start(log, simulation_epoch=EPOCH, simulation_uid="u-1", failure_probability="0.3")
    assert again.history == before.history


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({}, "SIMULATION_EPOCH is unset"),
        ({"simulation_epoch": "2026-03-02T10:00:00Z"}, "another simulation of the same name"),
        ({"simulation_epoch": EPOCH, "simulation_seed": "8"}, "SIMULATION_SEED is 8"),
    ],
)
def test_another_or_no_epoch_never_adopts_and_says_why(
    overrides: dict[str, str], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    log: Log = []
    legacy_simulation(log)
    caplog.set_level(logging.INFO, logger="producer.continuity.legacy")
    seed = int(overrides.get("simulation_seed", "7"))
    store = MemoryStateTopic(log, settings(simulation_uid="u-2", **overrides))
    joined = join(store, store.settings, PROFILE, set(IDS), seed=seed, fallback_seed=99)
    assert joined.record.adopted_from is None
    assert joined.snapshot.machines == {}
    assert joined.history.latest.index == 0
    assert reason in caplog.text
    assert "starts anew" in caplog.text


def test_without_a_uid_the_name_is_the_prefix_and_nothing_is_adopted() -> None:
    log: Log = []
    legacy_simulation(log)
    store = MemoryStateTopic(log, settings(simulation_epoch=EPOCH))
    assert store.read(set(IDS)).legacy is None
    with pytest.raises(ConfigError, match="SIMULATION_EPOCH"):
        start(log, simulation_epoch="2026-03-02T10:00:00Z")  # the name alone: refused as before

"""What the state topic holds for one simulation, gathered record by record in offset order
(pure: ``state_topic`` reads the records from Kafka and writes proposals).

Besides the records under the simulation's own key prefix, a producer with SIMULATION_UID
gathers those under the simulation's name alone: the prefix a release without SIMULATION_UID
wrote the same simulation under (``legacy``, see docs/continuity.md, "Upgrading from a release
without SIMULATION_UID").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from producer.continuity.codec import (
    CheckpointFormatError,
    MachineCheckpoint,
    SegmentRecord,
    SimulationRecord,
    decode_machine,
    decode_segment,
    decode_simulation,
    is_machine,
    is_segment,
    parse_key,
    peek_cycle,
)
from producer.errors import BrokerError
from producer.settings import ProducerSettings


@dataclass
class LegacyState:
    """The records under the name alone, of a simulation keyed by name and uid."""

    prefix: str
    simulations: list[SimulationRecord] = field(default_factory=list)
    """Proposals in offset order: the first is the simulation's."""
    segments: list[SegmentRecord] = field(default_factory=list)
    """Proposals of configuration segments, in offset order."""
    machines: dict[str, bytes] = field(default_factory=dict)
    """Latest checkpoint per machine id (of the machines asked for), decoded only if adopted."""
    latest: dict[str, int] = field(default_factory=dict)
    """Next cycle of the latest checkpoint of every other machine."""


@dataclass
class StateSnapshot:
    """What the state topic holds for one simulation, read up to its end."""

    simulations: list[SimulationRecord] = field(default_factory=list)
    """Proposals in offset order: the first is the simulation's."""
    segments: list[SegmentRecord] = field(default_factory=list)
    """Proposals of configuration segments, in offset order."""
    machines: dict[str, MachineCheckpoint] = field(default_factory=dict)
    """Latest checkpoint per machine id (of the machines asked for)."""
    highest_cycle: int = 0
    """The highest next cycle of any machine's latest checkpoint (of every machine)."""
    legacy: LegacyState | None = None
    """The records under the name alone (only with SIMULATION_UID)."""
    _latest: dict[str, int] = field(default_factory=dict, repr=False)

    def continue_legacy(self, topic: str) -> int:
        """Let each machine without a checkpoint of its own continue from its checkpoint under
        the legacy prefix (the simulation was adopted from it); returns how many do."""
        legacy = self.legacy
        if legacy is None:
            return 0
        taken = 0
        for machine_id, value in legacy.machines.items():
            if machine_id not in self.machines:
                self.machines[machine_id] = _decode(value, topic, legacy.prefix)
                self._latest[machine_id] = self.machines[machine_id].cycle
                taken += 1
        for machine_id, cycle in legacy.latest.items():
            self._latest.setdefault(machine_id, cycle)
        self.highest_cycle = max(self._latest.values(), default=0)
        return taken


class StateStore(Protocol):
    """The state topic as joining a simulation uses it (``state_topic.StateTopic``)."""

    topic: str
    prefix: str

    def read(self, machine_ids: set[str]) -> StateSnapshot: ...

    def propose(self, record: SimulationRecord, proposal: str) -> None: ...

    def propose_segment(self, record: SegmentRecord, proposal: str) -> None: ...


class SnapshotReader:
    """Gathers one simulation's records (key prefix ``prefix``; with ``legacy_prefix`` also
    those under it) from the records of the state topic ``topic``, in offset order."""

    def __init__(
        self, topic: str, prefix: str, legacy_prefix: str | None, machine_ids: set[str]
    ) -> None:
        self._topic = topic
        self._prefix = prefix
        self._ids = machine_ids
        self._snapshot = StateSnapshot(
            legacy=None if legacy_prefix is None else LegacyState(legacy_prefix)
        )

    @classmethod
    def of(cls, settings: ProducerSettings, topic: str, machine_ids: set[str]) -> SnapshotReader:
        """The reader of the simulation ``settings`` name: under its name alone too when
        SIMULATION_UID is set (where a release without it kept the same simulation)."""
        legacy = None if settings.simulation_uid is None else settings.simulation_name
        return cls(topic, settings.state_prefix, legacy, machine_ids)

    def take(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        parsed = parse_key(key)
        if parsed is None:
            raise BrokerError(
                f"state topic {self._topic!r} offset {offset}: key {key!r} is not a sensorsim "
                "checkpoint key; is KAFKA_STATE_TOPIC another application's topic?"
            )
        prefix, kind, name = parsed
        snapshot = self._snapshot
        legacy = snapshot.legacy
        target: StateSnapshot | LegacyState
        if prefix == self._prefix:
            target = snapshot
        elif legacy is not None and prefix == legacy.prefix:
            target = legacy
        else:
            return
        try:
            if not is_machine(kind):
                if is_segment(kind):
                    target.segments.append(decode_segment(value))  # type: ignore[arg-type]
                else:
                    target.simulations.append(decode_simulation(value))  # type: ignore[arg-type]
            elif target is snapshot:
                self._take_machine(name, value)
            elif legacy is not None:
                self._take_legacy_machine(legacy, name, value)
        except CheckpointFormatError as exc:
            raise BrokerError(
                f"state topic {self._topic!r} offset {offset} (key {key!r}): unreadable "
                f"checkpoint: {exc}; delete the record's key or choose another KAFKA_STATE_TOPIC"
            ) from None

    def _take_machine(self, name: str, value: bytes | None) -> None:
        snapshot = self._snapshot
        if value is None:  # a tombstone: the machine has no checkpoint
            snapshot.machines.pop(name, None)
            snapshot._latest.pop(name, None)
        elif name in self._ids:
            checkpoint = decode_machine(value)
            snapshot.machines[name] = checkpoint
            snapshot._latest[name] = checkpoint.cycle
        else:
            snapshot._latest[name] = peek_cycle(value)

    def _take_legacy_machine(self, legacy: LegacyState, name: str, value: bytes | None) -> None:
        """Kept undecoded: only a machine without a checkpoint of its own needs it."""
        legacy.machines.pop(name, None)
        legacy.latest.pop(name, None)
        if value is None:
            return
        if name in self._ids:
            legacy.machines[name] = value
        else:
            legacy.latest[name] = peek_cycle(value)

    def snapshot(self) -> StateSnapshot:
        snapshot = self._snapshot
        snapshot.highest_cycle = max(snapshot._latest.values(), default=0)
        return snapshot


def _decode(value: bytes, topic: str, prefix: str) -> MachineCheckpoint:
    try:
        return decode_machine(value)
    except CheckpointFormatError as exc:
        raise BrokerError(
            f"state topic {topic!r}: unreadable checkpoint under key prefix {prefix!r}: {exc}"
        ) from None

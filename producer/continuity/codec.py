"""The records of the state topic, as bytes: one per machine, the simulation's own record and
the segments of its configuration history.

Keys (UTF-8) start with the simulation's prefix (its name, or ``<name>@<uid>`` with
SIMULATION_UID), so simulations that share a state topic never read each other's state, and
compaction keeps the latest record of each key:

* ``<prefix>/m/<machine id>``: the machine's checkpoint: the cycle it emits next, the model,
  the segment of the configuration history it was written under (and that segment's
  fingerprint), and its state as a mapping name -> array (whatever the engine's
  ``export_state`` returns). Floats are written by orjson in their shortest exact form, so a
  restored state is bit-identical.
* ``<prefix>/s/<proposal id>``: a proposal of the simulation's epoch and seed (and the
  configuration it was made under: segment 0 of the history; and, for a simulation continued
  from the name alone, that prefix). Every producer adopts the proposal at the lowest offset,
  so shards that start at the same time agree (docs/continuity.md).
* ``<prefix>/c/<index>/<proposal id>``: a proposal of segment ``index`` of the configuration
  history: from which cycle on which configuration is in force. The lowest offset wins too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

MACHINE_FORMAT = "sensorsim-checkpoint/1"
SIMULATION_FORMAT = "sensorsim-simulation/1"
SEGMENT_FORMAT = "sensorsim-segment/1"
_MACHINE = "m"
_SIMULATION = "s"
_SEGMENT = "c"

StateArrays = dict[str, npt.NDArray[Any]]


class CheckpointFormatError(ValueError):
    """A state-topic record that is not a sensorsim checkpoint of a known format."""


def config_fingerprint(config: dict[str, Any]) -> str:
    """A short stable hash of the settings that shape a machine's stream."""
    canonical = orjson.dumps(config, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class SimulationRecord:
    """The epoch and seed a simulation adopted, and the configuration they belong to.

    A simulation continued from the records a release without SIMULATION_UID wrote under its
    name alone names that prefix (``adopted_from``) and how many segments of its configuration
    history it carried on (``adopted_segments``): its machines without a checkpoint of their own
    continue from their checkpoint there."""

    simulation: str
    epoch_ms: int
    seed: int
    config: dict[str, Any]
    adopted_from: str | None = None
    adopted_segments: int = 0

    @property
    def fingerprint(self) -> str:
        return config_fingerprint(self.config)


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    """From cycle ``from_cycle`` on, ``config`` is in force; cycle ``from_cycle`` is due at
    ``start_ms`` and the next ones every ``interval_ms`` (segment ``index`` of the history)."""

    index: int
    from_cycle: int
    start_ms: int
    interval_ms: int
    config: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        return config_fingerprint(self.config)


@dataclass(frozen=True, slots=True)
class MachineCheckpoint:
    """One machine's state before it emits ``cycle``, written under segment ``segment`` of
    the configuration history; ``state`` holds per-machine rows."""

    machine_id: str
    cycle: int
    model: str
    fingerprint: str
    state: StateArrays
    segment: int = 0


def machine_key(prefix: str, machine_id: str) -> bytes:
    return f"{prefix}/{_MACHINE}/{machine_id}".encode()


def simulation_key(prefix: str, proposal: str) -> bytes:
    return f"{prefix}/{_SIMULATION}/{proposal}".encode()


def segment_key(prefix: str, index: int, proposal: str) -> bytes:
    return f"{prefix}/{_SEGMENT}/{index}/{proposal}".encode()


def parse_key(key: bytes | None) -> tuple[str, str, str] | None:
    """(prefix, kind, name) of a state-topic key; kind is "m", "s" or "c" (whose name is
    ``<index>/<proposal id>``); None if foreign."""
    if not key:
        return None
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return None
    parts = text.rsplit("/", 2)
    if len(parts) == 3 and parts[1] in (_MACHINE, _SIMULATION):
        return parts[0], parts[1], parts[2]
    parts = text.rsplit("/", 3)
    if len(parts) == 4 and parts[1] == _SEGMENT and parts[2].isdecimal():
        return parts[0], _SEGMENT, f"{parts[2]}/{parts[3]}"
    return None


def is_machine(kind: str) -> bool:
    return kind == _MACHINE


def is_segment(kind: str) -> bool:
    return kind == _SEGMENT


def encode_segment(record: SegmentRecord) -> bytes:
    return orjson.dumps(
        {
            "format": SEGMENT_FORMAT,
            "index": record.index,
            "from_cycle": record.from_cycle,
            "start_ms": record.start_ms,
            "interval_ms": record.interval_ms,
            "config": record.config,
        }
    )


def decode_segment(value: bytes) -> SegmentRecord:
    data = _load(value, SEGMENT_FORMAT)
    try:
        record = SegmentRecord(
            index=int(data["index"]),
            from_cycle=int(data["from_cycle"]),
            start_ms=int(data["start_ms"]),
            interval_ms=int(data["interval_ms"]),
            config=dict(data["config"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointFormatError(f"segment record lacks a valid field: {exc}") from None
    if record.index < 1 or record.from_cycle < 0 or record.interval_ms < 0:
        raise CheckpointFormatError(f"segment record out of range: {record}")
    return record


def encode_simulation(record: SimulationRecord) -> bytes:
    data: dict[str, Any] = {
        "format": SIMULATION_FORMAT,
        "simulation": record.simulation,
        "epoch_ms": record.epoch_ms,
        "seed": str(record.seed),  # up to 2**64-1: a string survives every JSON reader
        "config": record.config,
    }
    if record.adopted_from is not None:
        data["adopted"] = {"prefix": record.adopted_from, "segments": record.adopted_segments}
    return orjson.dumps(data)


def decode_simulation(value: bytes) -> SimulationRecord:
    data = _load(value, SIMULATION_FORMAT)
    try:
        adopted = data.get("adopted")
        return SimulationRecord(
            simulation=str(data["simulation"]),
            epoch_ms=int(data["epoch_ms"]),
            seed=int(data["seed"]),
            config=dict(data["config"]),
            adopted_from=None if adopted is None else str(adopted["prefix"]),
            adopted_segments=0 if adopted is None else int(adopted["segments"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointFormatError(f"simulation record lacks a valid field: {exc}") from None


def encode_machines(
    prefix: str,
    machine_ids: list[str],
    cycles: list[int],
    *,
    model: str,
    fingerprint: str,
    state: StateArrays,
    segment: int = 0,
) -> list[tuple[bytes, bytes]]:
    """(key, value) per machine; row ``i`` of every ``state`` array is ``machine_ids[i]``,
    written under ``segment`` of the configuration history, whose fingerprint is
    ``fingerprint``."""
    names = sorted(state)
    dtypes = {name: state[name].dtype.str for name in names}
    columns = {name: state[name].tolist() for name in names}  # one C loop per array
    records = []
    for i, machine_id in enumerate(machine_ids):
        value = orjson.dumps(
            {
                "format": MACHINE_FORMAT,
                "machine_id": machine_id,
                "cycle": cycles[i],
                "model": model,
                "config": fingerprint,
                "segment": segment,
                "state": {name: [dtypes[name], columns[name][i]] for name in names},
            }
        )
        # an exact-size copy: orjson's result keeps the buffer it grew (about 4 KiB resident
        # for a few hundred bytes), and a checkpoint holds one record per machine
        records.append((machine_key(prefix, machine_id), memoryview(value).tobytes()))
    return records


def decode_machine(value: bytes) -> MachineCheckpoint:
    data = _load(value, MACHINE_FORMAT)
    try:
        state: StateArrays = {}
        for name, (dtype, values) in dict(data["state"]).items():
            state[str(name)] = np.asarray(values, dtype=np.dtype(str(dtype)))
        cycle = int(data["cycle"])
        segment = int(data.get("segment", 0))  # the previous release wrote segment 0 only
        if cycle < 0 or segment < 0:
            raise ValueError(f"negative cycle {cycle} or segment {segment}")
        return MachineCheckpoint(
            machine_id=str(data["machine_id"]),
            cycle=cycle,
            model=str(data["model"]),
            fingerprint=str(data["config"]),
            state=state,
            segment=segment,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointFormatError(f"machine checkpoint lacks a valid field: {exc}") from None


def peek_cycle(value: bytes) -> int:
    """The next cycle of a machine checkpoint (another shard's machine: its state unread)."""
    data = _load(value, MACHINE_FORMAT)
    try:
        return int(data["cycle"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointFormatError(f"machine checkpoint lacks a valid field: {exc}") from None


def stack_states(checkpoints: list[MachineCheckpoint]) -> StateArrays:
    """The states of several machines as arrays whose first axis is the machine."""
    names = checkpoints[0].state.keys()
    return {name: np.stack([c.state[name] for c in checkpoints]) for name in names}


def _load(value: bytes | None, expected: str) -> dict[str, Any]:
    if value is None:
        raise CheckpointFormatError("empty record (tombstone)")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise CheckpointFormatError(f"not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != expected:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointFormatError(f"format {found!r}, expected {expected!r}")
    return data

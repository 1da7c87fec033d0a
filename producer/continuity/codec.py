"""The records of the state topic, as bytes: one per machine, and the simulation's own record.

Keys (UTF-8) carry the simulation name, so simulations that share a state topic never read
each other's state, and compaction keeps the latest record of each key:

* ``<simulation>/m/<machine id>``: the machine's checkpoint: the cycle it emits next, the
  model, the configuration fingerprint it was written under, and its state as a mapping
  name -> array (whatever the engine's ``export_state`` returns; for today's engine the walk
  and the failure episode). Floats are written by orjson in their shortest exact form, so a
  restored state is bit-identical.
* ``<simulation>/s/<proposal id>``: a proposal of the simulation's epoch and seed (and the
  configuration it was made under). Every producer adopts the proposal at the lowest offset,
  so shards that start at the same time agree (docs/continuity.md).
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
_MACHINE = "m"
_SIMULATION = "s"

StateArrays = dict[str, npt.NDArray[Any]]


class CheckpointFormatError(ValueError):
    """A state-topic record that is not a sensorsim checkpoint of a known format."""


def config_fingerprint(config: dict[str, Any]) -> str:
    """A short stable hash of the settings that shape a machine's stream."""
    canonical = orjson.dumps(config, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class SimulationRecord:
    """The epoch and seed a simulation adopted, and the configuration they belong to."""

    simulation: str
    epoch_ms: int
    seed: int
    config: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        return config_fingerprint(self.config)


@dataclass(frozen=True, slots=True)
class MachineCheckpoint:
    """One machine's state before it emits ``cycle``; ``state`` holds per-machine rows."""

    machine_id: str
    cycle: int
    model: str
    fingerprint: str
    state: StateArrays


def machine_key(simulation: str, machine_id: str) -> bytes:
    return f"{simulation}/{_MACHINE}/{machine_id}".encode()


def simulation_key(simulation: str, proposal: str) -> bytes:
    return f"{simulation}/{_SIMULATION}/{proposal}".encode()


def parse_key(key: bytes | None) -> tuple[str, str, str] | None:
    """(simulation, kind, name) of a state-topic key; kind is "m" or "s"; None if foreign."""
    if not key:
        return None
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return None
    parts = text.rsplit("/", 2)
    if len(parts) != 3 or parts[1] not in (_MACHINE, _SIMULATION):
        return None
    return parts[0], parts[1], parts[2]


def is_machine(kind: str) -> bool:
    return kind == _MACHINE


def encode_simulation(record: SimulationRecord) -> bytes:
    return orjson.dumps(
        {
            "format": SIMULATION_FORMAT,
            "simulation": record.simulation,
            "epoch_ms": record.epoch_ms,
            "seed": str(record.seed),  # up to 2**64-1: a string survives every JSON reader
            "config": record.config,
        }
    )


def decode_simulation(value: bytes) -> SimulationRecord:
    data = _load(value, SIMULATION_FORMAT)
    try:
        return SimulationRecord(
            simulation=str(data["simulation"]),
            epoch_ms=int(data["epoch_ms"]),
            seed=int(data["seed"]),
            config=dict(data["config"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointFormatError(f"simulation record lacks a valid field: {exc}") from None


def encode_machines(
    simulation: str,
    machine_ids: list[str],
    cycles: list[int],
    *,
    model: str,
    fingerprint: str,
    state: StateArrays,
) -> list[tuple[bytes, bytes]]:
    """(key, value) per machine; row ``i`` of every ``state`` array is ``machine_ids[i]``."""
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
                "state": {name: [dtypes[name], columns[name][i]] for name in names},
            }
        )
        records.append((machine_key(simulation, machine_id), value))
    return records


def decode_machine(value: bytes) -> MachineCheckpoint:
    data = _load(value, MACHINE_FORMAT)
    try:
        state: StateArrays = {}
        for name, (dtype, values) in dict(data["state"]).items():
            state[str(name)] = np.asarray(values, dtype=np.dtype(str(dtype)))
        cycle = int(data["cycle"])
        if cycle < 0:
            raise ValueError(f"negative cycle {cycle}")
        return MachineCheckpoint(
            machine_id=str(data["machine_id"]),
            cycle=cycle,
            model=str(data["model"]),
            fingerprint=str(data["config"]),
            state=state,
        )
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

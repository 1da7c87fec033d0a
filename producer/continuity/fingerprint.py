"""The configuration a simulation's records were written under (see docs/continuity.md,
"Configuration fingerprint").

The settings that shape each machine's stream are recorded with the simulation; a producer
whose settings differ cannot continue it. NUM_MACHINES and the sharding are free to change.
"""

from __future__ import annotations

import hashlib
from typing import Any

from producer.continuity.codec import SimulationRecord
from producer.errors import ConfigError
from producer.settings import ProducerSettings
from producer.simulation.reference_data import ReferenceProfile


def simulation_config(
    settings: ProducerSettings, profile: ReferenceProfile, seed: int
) -> dict[str, Any]:
    """The settings that shape each machine's stream: a checkpoint written under other values
    cannot continue this simulation (NUM_MACHINES and the sharding are free to change)."""
    data = hashlib.sha256(settings.sensor_data_file.read_bytes()).hexdigest()
    return {
        "simulation": settings.simulation_name,
        "seed": str(seed),
        "model": settings.simulation_model.value,
        "persistence": settings.simulation_persistence,
        "sensors": list(profile.sensor_names),
        "data_sha256": data,
        "failures": [
            settings.failure_probability,
            settings.failure_min_cycles,
            settings.failure_max_cycles,
            settings.failure_ramp_cycles,
        ],
        "interval_ms": settings.simulation_interval_ms,
    }


def check_continuable(
    settings: ProducerSettings,
    profile: ReferenceProfile,
    record: SimulationRecord,
    seed: int | None,
    topic: str,
) -> None:
    """Refuse to continue the simulation of ``record`` (read from the state topic ``topic``)
    under other settings, or from another SIMULATION_EPOCH (``seed``: SIMULATION_SEED)."""
    remedy = (
        "revert the setting, or start a new simulation with another KAFKA_STATE_TOPIC (or "
        f"delete the topic {topic!r})"
    )
    mine = simulation_config(settings, profile, record.seed if seed is None else seed)
    if mine != record.config:
        differences = _differences(record.config, mine)
        raise ConfigError(
            f"state topic {topic!r} continues simulation {record.simulation!r} under another "
            f"configuration ({'; '.join(differences)}): {remedy}"
        )
    if settings.simulation_epoch is not None:
        wanted = round(settings.simulation_epoch.timestamp() * 1000)
        if wanted != record.epoch_ms:
            raise ConfigError(
                f"SIMULATION_EPOCH={settings.simulation_epoch.isoformat()} but simulation "
                f"{record.simulation!r} began at epoch {record.epoch_ms} ms (state topic "
                f"{topic!r}): {remedy}"
            )


def _differences(recorded: dict[str, Any], mine: dict[str, Any]) -> list[str]:
    """``key: recorded -> mine`` for every setting that differs (values shortened), by key."""
    return [
        f"{key}: {_short(recorded.get(key))} -> {_short(mine.get(key))}"
        for key in sorted(set(mine) | set(recorded))
        if mine.get(key) != recorded.get(key)
    ]


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."

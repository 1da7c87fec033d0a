"""The configuration a simulation's records are written under (see docs/continuity.md,
"Configuration history").

The settings that shape each machine's stream are recorded with the simulation (segment 0) and
with each later segment of its configuration history. Only the simulation's identity cannot
change: its seed and its epoch (and its name and uid, which key its records).
"""

from __future__ import annotations

import hashlib
from typing import Any

from domain.scenarios import canonical
from domain.simulation_model import DEFAULT_PERSISTENCE, SimulationModel
from producer.continuity.codec import SimulationRecord
from producer.errors import ConfigError
from producer.settings import ProducerSettings
from producer.simulation.reference_data import ReferenceProfile
from producer.simulation.regimes import regimes_for


def effective_persistence(settings: ProducerSettings, profile: ReferenceProfile) -> float | None:
    """SIMULATION_PERSISTENCE as it acts: unset without a time series is the default scalar
    (so a segment recorded before the dynamics were learnable stays the same segment); None
    means the dynamics learned from the reference's time series."""
    if settings.simulation_persistence is None and profile.series is None:
        return DEFAULT_PERSISTENCE
    return settings.simulation_persistence


def regime_count(settings: ProducerSettings, profile: ReferenceProfile) -> int:
    """The learned model's operating regimes with these settings (1: none, or another model)."""
    if settings.simulation_model is not SimulationModel.LEARNED:
        return 1
    regimes = regimes_for(
        profile,
        components=settings.simulation_regimes,
        persistence=settings.simulation_persistence,
        interval_ms=settings.simulation_interval_ms,
    )
    return regimes.components


def simulation_config(
    settings: ProducerSettings, profile: ReferenceProfile, seed: int
) -> dict[str, Any]:
    """The settings that shape each machine's stream, as a segment records them (the sharding
    is not among them: it moves machines between processes, not what they emit)."""
    data = hashlib.sha256(settings.sensor_data_file.read_bytes()).hexdigest()
    failures = settings.failure_model(profile.labelled_share)
    config: dict[str, Any] = {
        "simulation": settings.simulation_name,
        "seed": str(seed),
        "model": settings.simulation_model.value,
        "persistence": effective_persistence(settings, profile),
        "sensors": list(profile.sensor_names),
        "data_sha256": data,
        "failure_types": list(profile.failure_types),
        "failures": [
            failures.probability,
            failures.min_cycles,
            failures.max_cycles,
            failures.ramp_cycles,
        ],
        "interval_ms": settings.simulation_interval_ms,
        "machines": settings.num_machines,
        "topic": settings.kafka_topic,
    }
    scenarios = settings.scenario_list()
    if scenarios:  # absent without scenarios: simulations recorded before them continue
        config["scenarios"] = canonical(scenarios)
    regimes = regime_count(settings, profile)
    if regimes > 1:  # absent without regimes: simulations recorded before them continue
        config["regimes"] = regimes
    columns = profile.columns.settings_text()
    if columns:  # absent with the defaults: simulations recorded before these settings continue
        config["columns"] = columns
    return config


def check_identity(
    settings: ProducerSettings, record: SimulationRecord, seed: int | None, topic: str
) -> None:
    """Refuse to continue the simulation of ``record`` (read from the state topic ``topic``)
    with another SIMULATION_SEED (``seed``) or SIMULATION_EPOCH: they are what the simulation
    is, so another value is another simulation."""
    remedy = (
        "they define the simulation: revert the setting, or start a new simulation (another "
        "SIMULATION_NAME or SIMULATION_UID, or another KAFKA_STATE_TOPIC)"
    )
    if seed is not None and str(seed) != str(record.config.get("seed")):
        raise ConfigError(
            f"SIMULATION_SEED={seed} but simulation {record.simulation!r} in state topic "
            f"{topic!r} runs with seed {record.seed}: {remedy}"
        )
    if settings.simulation_epoch is not None:
        wanted = round(settings.simulation_epoch.timestamp() * 1000)
        if wanted != record.epoch_ms:
            raise ConfigError(
                f"SIMULATION_EPOCH={settings.simulation_epoch.isoformat()} but simulation "
                f"{record.simulation!r} began at epoch {record.epoch_ms} ms (state topic "
                f"{topic!r}): {remedy}"
            )

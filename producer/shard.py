"""This process's shard of the fleet: its machines, the engine that steps them and the encoder
of their records, built from settings and a reference profile already read."""

from __future__ import annotations

from dataclasses import dataclass

from domain.machine_ids import machine_ids
from domain.messages import body_sensor_names
from domain.partitioning import MachineRange, shard_range
from producer.errors import ConfigError, ReferenceDataError
from producer.serialisation import EXACT_MAX_ABS, BodyEncoder
from producer.settings import ProducerSettings
from producer.simulation.engine import SimulationEngine
from producer.simulation.reference_data import ReferenceProfile


@dataclass
class ShardSimulation:
    """The machines this process simulates (rows of the engine, in machine order)."""

    settings: ProducerSettings
    profile: ReferenceProfile
    machines: MachineRange
    machine_ids: list[str]
    seed: int
    engine: SimulationEngine
    encoder: BodyEncoder

    def reseed(self, seed: int) -> None:
        """Simulate with ``seed`` from cycle 0 (the simulation's seed, adopted from the state
        topic when it differs from the one this process chose)."""
        self.seed = seed
        self.engine = make_engine(self.settings, self.profile, self.machines, seed)


def make_engine(
    settings: ProducerSettings, profile: ReferenceProfile, machines: MachineRange, seed: int
) -> SimulationEngine:
    return SimulationEngine(
        profile,
        settings.failure_model(profile.labelled_share),
        first_machine=machines.start,
        count=machines.size,
        seed=seed,
        simulation_name=settings.simulation_name,
        model=settings.simulation_model,
        persistence=settings.simulation_persistence,
        interval_ms=settings.simulation_interval_ms,
    )


def simulate_shard(
    settings: ProducerSettings, profile: ReferenceProfile, seed: int
) -> ShardSimulation:
    """The shard of SHARD_INDEX; ``ConfigError`` if its machines do not fit in memory,
    ``ReferenceDataError`` if the reference readings are too large to encode exactly."""
    machines = shard_range(settings.num_machines, settings.shard_count, settings.shard_index)
    try:
        ids = machine_ids(settings.simulation_name, machines.indices())
        engine = make_engine(settings, profile, machines, seed)
    except MemoryError:
        raise ConfigError(
            f"NUM_MACHINES={settings.num_machines} with SHARD_COUNT={settings.shard_count}: "
            f"this shard's {machines.size} machines do not fit in memory; raise SHARD_COUNT "
            "or lower NUM_MACHINES"
        ) from None
    bound = engine.max_abs_reading
    if bound > EXACT_MAX_ABS:
        raise ReferenceDataError(
            settings.sensor_data_file,
            f"readings reach {bound:g} in magnitude; 6 exact decimals allow at most "
            f"{EXACT_MAX_ABS:.6f}",
        )
    encoder = BodyEncoder(
        body_sensor_names(profile.sensor_names, settings.message_format),
        ids,
        profile.failure_types,
        settings.message_format,
        max_abs_value=bound,
        max_episode_cycles=settings.failure_max_cycles,
    )
    return ShardSimulation(settings, profile, machines, ids, seed, engine, encoder)

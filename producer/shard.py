"""This process's shard of the fleet: its machines, the engine that steps them and the encoder
of their records, built from settings and a reference profile already read."""

from __future__ import annotations

from dataclasses import dataclass

from domain.machine_ids import machine_ids
from domain.messages import body_sensor_names
from domain.partitioning import MachineRange, shard_range
from domain.scenarios import Scenario
from producer.errors import ConfigError, ReferenceDataError
from producer.serialisation import EXACT_MAX_ABS, BodyEncoder, ScenarioFields
from producer.settings import ProducerSettings
from producer.simulation.engine import SimulationEngine
from producer.simulation.reference_data import ReferenceProfile, load_profile
from producer.simulation.scenarios import ScenarioConfigError
from producer.simulation.stream_settings import EngineSettings


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

    @property
    def record_bytes(self) -> int:
        """The largest body, plus the largest scenario headers (``health``, ``rul_cycles``,
        ``quality``) a record may carry."""
        scenarios = self.engine.scenarios
        if scenarios is None:
            return self.encoder.width
        label = max((len(q.encode()) for q in scenarios.quality_labels), default=0)
        return self.encoder.width + 64 + label

    def reseed(self, seed: int) -> None:
        """Simulate with ``seed`` from cycle 0 (the simulation's seed, adopted from the state
        topic when it differs from the one this process chose)."""
        self.seed = seed
        self.engine = make_engine(self.settings, self.profile, self.machines, seed)

    def variant(self, stream: EngineSettings) -> tuple[SimulationEngine, BodyEncoder]:
        """An engine and encoder of this shard's machines under other stream settings (an
        earlier segment of the configuration history), with this process's seed and reference
        data file (the first ``sensors`` sensor columns of it); ``ReferenceDataError`` if the
        file has fewer, ``ScenarioConfigError`` if a scenario does not fit it."""
        profile = self.profile
        if stream.sensors != profile.num_sensors:
            profile = load_profile(self.settings.sensor_data_file, stream.sensors)
        engine = SimulationEngine(
            profile,
            stream.failures,
            first_machine=self.machines.start,
            count=self.machines.size,
            seed=self.seed,
            simulation_name=self.settings.simulation_name,
            model=stream.model,
            persistence=stream.persistence,
            interval_ms=stream.interval_ms,
            learned=self.engine.learned_model if profile is self.profile else None,
            scenarios=stream.scenarios,
            regimes=stream.regimes,
        )
        encoder = BodyEncoder(
            body_sensor_names(profile.sensor_names, self.settings.message_format),
            self.machine_ids,
            profile.failure_types,
            self.settings.message_format,
            max_abs_value=engine.max_abs_reading,
            max_episode_cycles=max(stream.failures.max_cycles, _longest_failure(stream.scenarios)),
            scenarios=scenario_fields(engine),
        )
        return engine, encoder


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
        regimes=settings.simulation_regimes,
        interval_ms=settings.simulation_interval_ms,
        scenarios=settings.scenario_list(),
    )


def scenario_fields(engine: SimulationEngine) -> ScenarioFields | None:
    """What the records of an engine with scenarios carry about them (None: no scenarios)."""
    if engine.scenarios is None:
        return None
    return ScenarioFields(engine.scenarios.quality_labels)


def _longest_failure(scenarios: list[Scenario]) -> int:
    """The longest failure episode the scenarios force (0: none)."""
    lengths = [s.failure.cycles for s in scenarios if s.failure is not None]
    lengths += [s.degradation.failure_cycles for s in scenarios if s.degradation is not None]
    return max(lengths, default=0)


def simulate_shard(
    settings: ProducerSettings, profile: ReferenceProfile, seed: int
) -> ShardSimulation:
    """The shard of SHARD_INDEX; ``ConfigError`` if its machines do not fit in memory,
    ``ReferenceDataError`` if the reference readings are too large to encode exactly."""
    machines = shard_range(settings.num_machines, settings.shard_count, settings.shard_index)
    try:
        ids = machine_ids(settings.simulation_name, machines.indices())
        engine = make_engine(settings, profile, machines, seed)
    except ScenarioConfigError as exc:
        raise ConfigError(f"SCENARIOS: {exc}") from None
    except MemoryError:
        raise ConfigError(
            f"NUM_MACHINES={settings.num_machines} with SHARD_COUNT={settings.shard_count}: "
            f"this shard's {machines.size} machines do not fit in memory; raise SHARD_COUNT "
            "or lower NUM_MACHINES"
        ) from None
    engine_scenarios = list(engine.scenarios.scenarios) if engine.scenarios is not None else []
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
        max_episode_cycles=max(settings.failure_max_cycles, _longest_failure(engine_scenarios)),
        scenarios=scenario_fields(engine),
    )
    return ShardSimulation(settings, profile, machines, ids, seed, engine, encoder)

"""Builds the producer from settings: reads the reference data, chooses the seed, makes the
sink, the state topic of continuity and the HTTP server, and hands them to ``ProducerApp``.

``build_app`` is the producer as ``python -m producer`` runs it. ``assemble`` puts the app
together over a given sink and state topic: tests and benchmarks pass a sink of their own
through it, so they run the same program.
"""

from __future__ import annotations

import logging
import secrets
from typing import Literal

from domain.simulation_model import SimulationModel
from producer.app import ProducerApp
from producer.continuity.checkpoints import IntervalCommitter
from producer.continuity.coordinator import Continuity
from producer.continuity.state_topic import StateTopic
from producer.errors import ConfigError
from producer.kafka.sink import KafkaSink
from producer.runtime.heartbeat import Heartbeat
from producer.runtime.http_server import HealthServer
from producer.runtime.metrics import ProducerMetrics
from producer.runtime.readiness import Readiness
from producer.runtime.stopping import StopFlag
from producer.settings import ProducerSettings
from producer.shard import ShardSimulation, simulate_shard
from producer.simulation.reference_data import (
    ReferenceProfile,
    check_learned_model_data,
    load_profile,
)
from producer.sinks.protocol import Sink
from producer.sinks.stdout import StdoutSink

log = logging.getLogger("producer")

SinkKind = Literal["kafka", "stdout"]


def build_app(
    settings: ProducerSettings, sink_kind: SinkKind = "kafka", *, stop: StopFlag | None = None
) -> ProducerApp:
    """The producer for ``sink_kind``, failing fast on bad configuration or data. Continuity
    (the state topic) is on for Kafka unless CHECKPOINT_INTERVAL_MS is 0; standard output has
    no broker to keep it in."""
    stop = stop or StopFlag()
    heartbeat = Heartbeat()
    simulation = load_shard(settings)
    if sink_kind == "stdout":
        return assemble(settings, simulation, StdoutSink(), None, stop=stop, heartbeat=heartbeat)
    sink = KafkaSink(
        settings,
        simulation.machine_ids,
        simulation.profile.failure_types,
        stop=stop,
        heartbeat=heartbeat.beat,
        max_body_bytes=simulation.record_bytes,
    )
    state_topic = (
        StateTopic(settings, settings.state_topic) if settings.checkpoint_interval_ms > 0 else None
    )
    committer = sink if settings.exactly_once and state_topic is not None else None
    return assemble(
        settings, simulation, sink, state_topic, stop=stop, heartbeat=heartbeat, committer=committer
    )


def load_shard(settings: ProducerSettings) -> ShardSimulation:
    """Read the reference data and build this process's shard of the fleet, with
    SIMULATION_SEED or, when it is unset, a random seed (logged)."""
    profile = load_reference(settings)
    if settings.simulation_seed is None:
        seed = secrets.randbits(63)
        log.info("SIMULATION_SEED unset: using random seed %d", seed)
    else:
        seed = settings.simulation_seed
    return simulate_shard(settings, profile, seed)


def load_reference(settings: ProducerSettings) -> ReferenceProfile:
    """The reference profile of SENSOR_DATA_FILE, checked for the chosen model."""
    # NUM_SENSORS left at its default takes a narrower file whole; set, it must fit.
    profile = load_profile(
        settings.sensor_data_file,
        settings.num_sensors,
        at_most="num_sensors" not in settings.model_fields_set,
        columns=settings.reference_columns,
    )
    if not profile.failures_enabled:
        log.warning(
            "reference data %s has no labelled rows: failures are disabled",
            settings.sensor_data_file,
        )
    if settings.simulation_model is SimulationModel.LEARNED:
        check_learned_model_data(profile)
    return profile


def assemble(
    settings: ProducerSettings,
    simulation: ShardSimulation,
    sink: Sink,
    state_topic: StateTopic | None,
    *,
    stop: StopFlag | None = None,
    heartbeat: Heartbeat | None = None,
    committer: IntervalCommitter | None = None,
) -> ProducerApp:
    """The app over ``sink``, continuing the simulation in ``state_topic`` (None: the schedule
    starts now and nothing is checkpointed), serving HTTP_PORT unless it is 0. ``committer``:
    exactly-once (the Kafka sink, committing each interval with its checkpoint)."""
    stop = stop or StopFlag()
    heartbeat = heartbeat or Heartbeat()
    metrics = ProducerMetrics(simulation.profile.failure_types, lambda: sink.stats)
    metrics.machines.set(simulation.machines.size)
    metrics.shards.set(settings.shard_count)
    continuity = Continuity(
        settings,
        simulation.profile,
        simulation.machine_ids,
        state_topic,
        metrics.registry,
        committer=committer,
    )
    readiness = Readiness(stop, sink.delivering)
    http = serve_probes(settings.http_port, heartbeat, readiness, metrics)
    return ProducerApp(
        settings,
        simulation,
        sink,
        continuity,
        stop=stop,
        heartbeat=heartbeat,
        readiness=readiness,
        metrics=metrics,
        http=http,
    )


def serve_probes(
    port: int, heartbeat: Heartbeat, readiness: Readiness, metrics: ProducerMetrics
) -> HealthServer | None:
    """The HTTP server of the probes and metrics, bound but not started (None: port 0)."""
    if port == 0:
        return None
    try:
        return HealthServer(port, live=heartbeat.alive, ready=readiness, metrics=metrics.render)
    except OSError as exc:
        raise ConfigError(f"HTTP_PORT={port}: cannot listen: {exc.strerror or exc}") from None

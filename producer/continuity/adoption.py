"""Joining a simulation at start (see docs/continuity.md, "Configuration history"): read the
state topic, adopt the simulation's epoch and seed (proposing them if it is new, or continuing
the one a release without SIMULATION_UID wrote under the name alone: ``legacy``), refuse another
identity, and adopt the configuration history, proposing the next segment when this producer's
settings differ from the latest one. A change of settings never stops the producer.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from producer.continuity.codec import SimulationRecord
from producer.continuity.fingerprint import check_identity, simulation_config
from producer.continuity.history import History, differences
from producer.continuity.legacy import adoptable, missing_segments
from producer.continuity.snapshot import StateSnapshot, StateStore
from producer.errors import ConfigError
from producer.settings import ProducerSettings
from producer.simulation.reference_data import ReferenceProfile

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Joined:
    """The simulation a producer continues: its record, its history (whose latest segment is
    this producer's configuration) and the state topic as read after agreeing on them."""

    record: SimulationRecord
    history: History
    snapshot: StateSnapshot


def join(
    store: StateStore,
    settings: ProducerSettings,
    profile: ReferenceProfile,
    machine_ids: set[str],
    *,
    seed: int | None,
    fallback_seed: int,
) -> Joined:
    """Adopt the simulation in ``store`` (``seed``: SIMULATION_SEED; ``fallback_seed`` proposed
    when it is unset and the simulation is new) and its configuration history."""
    snapshot = store.read(machine_ids)
    if not snapshot.simulations:
        proposal = adoptable(settings, seed, snapshot.legacy, store.topic)
        if proposal is None:
            proposal = _simulation_proposal(
                settings, profile, fallback_seed if seed is None else seed
            )
        store.propose(proposal, uuid.uuid4().hex)
        snapshot = store.read(machine_ids)  # another shard's proposal may have landed first
    record = snapshot.simulations[0]
    snapshot = _continue_adopted(store, machine_ids, record, snapshot)
    check_identity(settings, record, seed, store.topic)
    mine = simulation_config(settings, profile, record.seed)
    history = History.agree(record, snapshot.segments)
    if history.latest.config == mine:
        return Joined(record, history, snapshot)
    now = time.time()
    change = history.change_cycle(now, snapshot.highest_cycle)
    store.propose_segment(history.proposal(mine, change, round(now * 1000)), uuid.uuid4().hex)
    before = history.latest
    snapshot = _continue_adopted(store, machine_ids, record, store.read(machine_ids))
    history = History.agree(record, snapshot.segments)
    latest = history.latest
    if latest.config != mine:
        changed = "; ".join(differences(latest.config, mine))
        raise ConfigError(
            f"state topic {store.topic!r}: another producer of simulation {record.simulation!r} "
            f"started at the same time under other settings ({changed}); every producer of a "
            "simulation must run with the same settings"
        )
    log.warning(
        "settings changed: simulation %r continues under segment %d of its configuration history "
        "from cycle %d (%s)",
        record.simulation,
        latest.index,
        latest.from_cycle,
        "; ".join(differences(before.config, mine)),
    )
    return Joined(record, history, snapshot)


def _continue_adopted(
    store: StateStore, machine_ids: set[str], record: SimulationRecord, snapshot: StateSnapshot
) -> StateSnapshot:
    """For a simulation adopted from the name alone: copy the segments of its history this
    prefix lacks, and let each machine without a checkpoint here continue from the one there."""
    if record.adopted_from is None:
        return snapshot
    missing = missing_segments(record, snapshot)
    for segment in missing:
        store.propose_segment(segment, uuid.uuid4().hex)
    if missing:
        snapshot = store.read(machine_ids)
    taken = snapshot.continue_legacy(store.topic)
    if taken:
        log.info(
            "%d machines continue from their checkpoints under the key prefix %r (written "
            "without SIMULATION_UID)",
            taken,
            record.adopted_from,
        )
    return snapshot


def _simulation_proposal(
    settings: ProducerSettings, profile: ReferenceProfile, seed: int
) -> SimulationRecord:
    epoch = settings.simulation_epoch
    return SimulationRecord(
        simulation=settings.simulation_name,
        epoch_ms=round((time.time() if epoch is None else epoch.timestamp()) * 1000),
        seed=seed,
        config=simulation_config(settings, profile, seed),
    )

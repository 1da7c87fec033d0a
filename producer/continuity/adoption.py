"""Joining a simulation at start (see docs/continuity.md, "Configuration history"): read the
state topic, adopt the simulation's epoch and seed (proposing them if it is new), refuse another
identity, and adopt the configuration history, proposing the next segment when this producer's
settings differ from the latest one. A change of settings never stops the producer.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from producer.continuity.codec import SimulationRecord
from producer.continuity.fingerprint import check_identity, simulation_config
from producer.continuity.history import History, differences
from producer.errors import ConfigError
from producer.settings import ProducerSettings
from producer.simulation.reference_data import ReferenceProfile

if TYPE_CHECKING:  # the Kafka client is imported only when continuity runs against Kafka
    from producer.continuity.state_topic import StateSnapshot, StateTopic

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Joined:
    """The simulation a producer continues: its record, its history (whose latest segment is
    this producer's configuration) and the state topic as read after agreeing on them."""

    record: SimulationRecord
    history: History
    snapshot: StateSnapshot


def join(
    store: StateTopic,
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
        proposal = _simulation_proposal(settings, profile, fallback_seed if seed is None else seed)
        store.propose(proposal, uuid.uuid4().hex)
        snapshot = store.read(machine_ids)  # another shard's proposal may have landed first
    record = snapshot.simulations[0]
    check_identity(settings, record, seed, store.topic)
    mine = simulation_config(settings, profile, record.seed)
    history = History.agree(record, snapshot.segments)
    if history.latest.config == mine:
        return Joined(record, history, snapshot)
    now = time.time()
    change = history.change_cycle(now, snapshot.highest_cycle)
    store.propose_segment(history.proposal(mine, change, round(now * 1000)), uuid.uuid4().hex)
    before = history.latest
    snapshot = store.read(machine_ids)
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

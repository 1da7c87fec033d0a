"""Continuing a simulation a release without SIMULATION_UID wrote under its name alone (see
docs/continuity.md, "Upgrading from a release without SIMULATION_UID").

A producer with SIMULATION_UID that finds no simulation record under ``<name>@<uid>`` but one
under ``<name>`` whose epoch is its SIMULATION_EPOCH (the resource's creation time: a re-created
resource has another one) proposes that record under its own prefix, naming where it came from
and how many segments of its configuration history it carries on. Every producer that reads the
adopted record copies the segments still missing (the same lowest-offset agreement as any
proposal, and copies of one history are identical) and lets each machine without a checkpoint
of its own continue from its checkpoint under the name alone. Pure: ``adoption`` reads and
proposes.
"""

from __future__ import annotations

import dataclasses
import logging

from producer.continuity.codec import SegmentRecord, SimulationRecord
from producer.continuity.history import History
from producer.continuity.snapshot import LegacyState, StateSnapshot
from producer.settings import ProducerSettings

log = logging.getLogger(__name__)


def adoptable(
    settings: ProducerSettings, seed: int | None, legacy: LegacyState | None, topic: str
) -> SimulationRecord | None:
    """The simulation record to propose under this producer's prefix when the name alone holds
    this simulation (same SIMULATION_EPOCH, and same SIMULATION_SEED if set); None, saying why
    at INFO, when it holds another one or none."""
    if legacy is None or not legacy.simulations:
        return None
    found = legacy.simulations[0]
    reason = _why_not(settings, seed, found)
    if reason is not None:
        log.info(
            "state topic %r holds a simulation under the key prefix %r (written without "
            "SIMULATION_UID); not continuing it: %s; simulation %r starts anew",
            topic,
            legacy.prefix,
            reason,
            settings.state_prefix,
        )
        return None
    history = History.agree(found, legacy.segments)
    log.info(
        "state topic %r: continuing simulation %r (epoch %d ms, %d configuration segments) "
        "written under the key prefix %r without SIMULATION_UID, from now on under %r",
        topic,
        found.simulation,
        found.epoch_ms,
        len(history.segments),
        legacy.prefix,
        settings.state_prefix,
    )
    return dataclasses.replace(
        found, adopted_from=legacy.prefix, adopted_segments=len(history.segments) - 1
    )


def _why_not(settings: ProducerSettings, seed: int | None, found: SimulationRecord) -> str | None:
    epoch = settings.simulation_epoch
    if epoch is None:
        return "SIMULATION_EPOCH is unset, so nothing shows it is this simulation"
    wanted = round(epoch.timestamp() * 1000)
    if wanted != found.epoch_ms:
        return (
            f"it began at epoch {found.epoch_ms} ms, SIMULATION_EPOCH is {wanted} ms "
            "(another simulation of the same name)"
        )
    if seed is not None and str(seed) != str(found.config.get("seed")):
        return f"it runs with seed {found.seed}, SIMULATION_SEED is {seed}"
    return None


def missing_segments(record: SimulationRecord, snapshot: StateSnapshot) -> list[SegmentRecord]:
    """The segments of the adopted history (``record``'s) that this prefix does not hold yet,
    copied from the name alone; none when ``record`` was not adopted."""
    legacy = snapshot.legacy
    if legacy is None or record.adopted_from != legacy.prefix or not legacy.simulations:
        return []
    held = len(History.agree(record, snapshot.segments).segments) - 1
    if held >= record.adopted_segments:
        return []
    source = History.agree(legacy.simulations[0], legacy.segments).segments
    return list(source[held + 1 : record.adopted_segments + 1])

"""How long a producer pod may take to stop: its ``terminationGracePeriodSeconds``.

At SIGTERM a producer finishes the cycle in progress, flushes its records and writes a final
checkpoint of every machine it owns; all three grow with the machines of its shard. A pod
killed before the checkpoint is acknowledged repeats the cycles since its previous checkpoint
(at-least-once instead of exactly once), so the grace period grows with the largest shard:
Kubernetes' default 30 s, plus an allowance per started 10,000 machines that leaves several
times the measured cost as headroom (docs/operator.md, "Grace period"). The producer is told
the same figure (``SHUTDOWN_GRACE_SECONDS``) and budgets its shutdown to end before it.

The same figure bounds how long a handover may leave machines without a producer: the old pods
stop within their grace period (the handover counts as stuck only after twice that plus a
margin, ``handover.py``), then the new pods start. A restored machine re-emits the cycles it
missed only up to ``CATCH_UP_MAX_CYCLES`` and skips the rest, so the pods get a bound that
covers that whole pause at the simulation's interval (``catch_up_max_cycles``).
"""

from __future__ import annotations

from typing import Final

from domain import settings_contract as contract
from domain import settings_vocabulary as vocabulary
from sensorsim_operator.children.pod_resources import machines_per_pod

BASE_SECONDS: Final = vocabulary.DEFAULT_SHUTDOWN_GRACE_SECONDS
SECONDS_PER_BLOCK: Final = 2
MACHINES_PER_BLOCK: Final = 10_000

HANDOVER_MARGIN_SECONDS: Final = 60
"""Beyond twice the grace period, how long a handover may take before it counts as stuck
(``handover.DEADLINE_MARGIN``)."""
POD_START_SECONDS: Final = 180
"""How long the new pods may take to start once the old ones are gone (scheduling, image pull,
connecting to Kafka, reading the state topic) without a machine skipping cycles."""


def termination_grace_seconds(machines: int, replicas: int) -> int:
    """Seconds from SIGTERM to SIGKILL for the pods of ``machines`` split over ``replicas``."""
    blocks = -(-machines_per_pod(machines, replicas) // MACHINES_PER_BLOCK)
    return min(BASE_SECONDS + SECONDS_PER_BLOCK * blocks, vocabulary.MAX_SHUTDOWN_GRACE_SECONDS)


def catch_up_max_cycles(interval_ms: int, grace_seconds: int) -> int | None:
    """``CATCH_UP_MAX_CYCLES`` for pods with this grace period at this interval: the producer's
    default, or more when a handover (old pods stopping, new pods starting) can last longer
    than that many cycles. None without a schedule (``interval_ms`` 0: nothing is missed)."""
    if interval_ms <= 0:
        return None
    pause_ms = 1000 * (2 * grace_seconds + HANDOVER_MARGIN_SECONDS + POD_START_SECONDS)
    default = int(contract.setting("CATCH_UP_MAX_CYCLES").default)
    return max(default, -(-pause_ms // interval_ms))

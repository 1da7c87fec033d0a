"""How long a producer pod may take to stop: its ``terminationGracePeriodSeconds``.

At SIGTERM a producer finishes the cycle in progress, flushes its records and writes a final
checkpoint of every machine it owns; all three grow with the machines of its shard. A pod
killed before the checkpoint is acknowledged repeats the cycles since its previous checkpoint
(at-least-once instead of exactly once), so the grace period grows with the largest shard:
Kubernetes' default 30 s, plus an allowance per started 10,000 machines that leaves several
times the measured cost as headroom (docs/operator.md, "Grace period"). The producer is told
the same figure (``SHUTDOWN_GRACE_SECONDS``) and budgets its shutdown to end before it.
"""

from __future__ import annotations

from typing import Final

from domain import settings_vocabulary as vocabulary
from sensorsim_operator.children.pod_resources import machines_per_pod

BASE_SECONDS: Final = vocabulary.DEFAULT_SHUTDOWN_GRACE_SECONDS
SECONDS_PER_BLOCK: Final = 2
MACHINES_PER_BLOCK: Final = 10_000


def termination_grace_seconds(machines: int, replicas: int) -> int:
    """Seconds from SIGTERM to SIGKILL for the pods of ``machines`` split over ``replicas``."""
    blocks = -(-machines_per_pod(machines, replicas) // MACHINES_PER_BLOCK)
    return min(BASE_SECONDS + SECONDS_PER_BLOCK * blocks, vocabulary.MAX_SHUTDOWN_GRACE_SECONDS)

"""How much memory a producer pod needs for the machines it simulates.

A producer's resident memory is a fixed base plus a few kilobytes per machine of its shard
(the measurements behind the two constants are in docs/operator.md, "Memory"). The request is
that need for the largest shard; the limit adds a quarter and 64 MiB for what a busier cycle
(Kafka batches, pending records) holds on top.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Final

from kubernetes.utils import parse_quantity

MIB: Final = 2**20
BASE_BYTES: Final = 104 * MIB
BYTES_PER_MACHINE: Final = 2816  # 2.75 KiB
LIMIT_FACTOR: Final = 1.25
LIMIT_EXTRA_BYTES: Final = 64 * MIB
MIN_REQUEST_BYTES: Final = 128 * MIB
MIN_LIMIT_BYTES: Final = 256 * MIB


def quantity(text: str) -> Decimal:
    """The value of a Kubernetes quantity ('250m', '1Gi'); ValueError when it is not one."""
    value: Decimal = parse_quantity(text)  # type: ignore[no-untyped-call]
    return value


def machines_per_pod(machines: int, replicas: int) -> int:
    """The largest shard: shards differ by at most one machine (domain.partitioning)."""
    return -(-machines // replicas)


def _mebibytes(size: float) -> str:
    return f"{math.ceil(size / MIB)}Mi"


def sized(machines: int, replicas: int) -> tuple[str, str]:
    """(request, limit) for the largest shard of ``machines`` over ``replicas`` pods."""
    need = BASE_BYTES + BYTES_PER_MACHINE * machines_per_pod(machines, replicas)
    request = max(need, MIN_REQUEST_BYTES)
    limit = max(need * LIMIT_FACTOR + LIMIT_EXTRA_BYTES, MIN_LIMIT_BYTES)
    return _mebibytes(request), _mebibytes(limit)


def pod_memory(
    machines: int, replicas: int, *, request: str | None, limit: str | None
) -> tuple[str, str]:
    """(request, limit) of a producer pod: what the spec gives wins; what it leaves unset is
    sized from the machines, and never so that the request exceeds the limit."""
    sized_request, sized_limit = sized(machines, replicas)
    if request is not None and limit is not None:
        return request, limit
    if limit is not None:
        fits = quantity(sized_request) <= quantity(limit)
        return (sized_request if fits else limit), limit
    if request is not None:
        fits = quantity(sized_limit) >= quantity(request)
        return request, (sized_limit if fits else request)
    return sized_request, sized_limit

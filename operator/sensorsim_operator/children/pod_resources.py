"""How much memory a producer pod needs for the machines it simulates and their sensors.

A producer's resident memory, measured with the Kafka sink at full speed (the table is in
docs/operator.md, "Memory"), is a fixed base plus a little per sensor (the reference model),
plus per machine of its shard a part that grows with the sensors (state, a cycle's readings and
bodies), plus per record the Kafka client may hold unacknowledged a part that hardly does. The
producer hands records over in slices of half ``KAFKA_MAX_PENDING_RECORDS``, so at most 1.5
times that is ever pending (``pending``)::

    need = 157 MiB + 1,025 KiB x sensors + machines x (559 B + 102 B x sensors)
           + min(machines, pending) x (1,120 B + 16 B x sensors)

The request is that need for the largest shard; the limit adds a quarter and 128 MiB for what a
busier cycle holds on top. A limit the spec sets below the need is refused (:func:`shortfall`):
such pods would be killed for lack of memory.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Final

from kubernetes.utils import parse_quantity

from domain.settings_contract import setting

MIB: Final = 2**20
BASE_BYTES: Final = 157 * MIB
BYTES_PER_SENSOR: Final = 1025 * 1024
BYTES_PER_MACHINE: Final = 559
BYTES_PER_MACHINE_SENSOR: Final = 102
BYTES_PER_PENDING: Final = 1120
BYTES_PER_PENDING_SENSOR: Final = 16
DEFAULT_MAX_PENDING: Final[int] = setting("KAFKA_MAX_PENDING_RECORDS").default
LIMIT_FACTOR: Final = 1.25
LIMIT_EXTRA_BYTES: Final = 128 * MIB


def quantity(text: str) -> Decimal:
    """The value of a Kubernetes quantity ('250m', '1Gi'); ValueError when it is not one."""
    value: Decimal = parse_quantity(text)  # type: ignore[no-untyped-call]
    return value


def machines_per_pod(machines: int, replicas: int) -> int:
    """The largest shard: shards differ by at most one machine (domain.partitioning)."""
    return -(-machines // replicas)


def _mebibytes(size: float) -> str:
    return f"{math.ceil(size / MIB)}Mi"


def need_bytes(
    machines: int, replicas: int, sensors: int, *, max_pending: int = DEFAULT_MAX_PENDING
) -> int:
    """The measured resident memory of the largest shard's producer (``max_pending``: its
    ``KAFKA_MAX_PENDING_RECORDS``)."""
    shard = machines_per_pod(machines, replicas)
    pending = min(shard, max_pending * 3 // 2)
    return (
        BASE_BYTES
        + BYTES_PER_SENSOR * sensors
        + shard * (BYTES_PER_MACHINE + BYTES_PER_MACHINE_SENSOR * sensors)
        + pending * (BYTES_PER_PENDING + BYTES_PER_PENDING_SENSOR * sensors)
    )


def sized(
    machines: int, replicas: int, sensors: int, *, max_pending: int = DEFAULT_MAX_PENDING
) -> tuple[str, str]:
    """(request, limit) for the largest shard of ``machines`` over ``replicas`` pods."""
    need = need_bytes(machines, replicas, sensors, max_pending=max_pending)
    return _mebibytes(need), _mebibytes(need * LIMIT_FACTOR + LIMIT_EXTRA_BYTES)


def shortfall(
    machines: int,
    replicas: int,
    sensors: int,
    *,
    limit: str | None,
    max_pending: int = DEFAULT_MAX_PENDING,
) -> str | None:
    """Why a memory limit the spec sets is too low for the largest shard (None when it is
    enough, or unset)."""
    if limit is None:
        return None
    need = need_bytes(machines, replicas, sensors, max_pending=max_pending)
    if quantity(limit) >= need:
        return None
    per_pod = machines_per_pod(machines, replicas)
    return (
        f"resources.limits.memory {limit} is below the {_mebibytes(need)} a producer of "
        f"{per_pod} machines x {sensors} sensors needs (docs/operator.md, 'Memory'): raise "
        "the limit, remove it to have it sized, raise replicas, or lower "
        "kafka.producer.maxPendingRecords"
    )


def pod_memory(
    machines: int,
    replicas: int,
    sensors: int,
    *,
    request: str | None,
    limit: str | None,
    max_pending: int = DEFAULT_MAX_PENDING,
) -> tuple[str, str]:
    """(request, limit) of a producer pod: what the spec gives wins; what it leaves unset is
    sized from the machines and sensors, and never so that the request exceeds the limit."""
    sized_request, sized_limit = sized(machines, replicas, sensors, max_pending=max_pending)
    if request is not None and limit is not None:
        return request, limit
    if limit is not None:
        fits = quantity(sized_request) <= quantity(limit)
        return (sized_request if fits else limit), limit
    if request is not None:
        fits = quantity(sized_limit) >= quantity(request)
        return request, (sized_limit if fits else request)
    return sized_request, sized_limit

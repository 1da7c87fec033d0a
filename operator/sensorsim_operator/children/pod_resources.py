"""How much memory a producer pod needs for the machines it simulates and their sensors.

A producer's resident memory, measured with the Kafka sink at full speed (the table is in
docs/operator.md, "Memory"), is a fixed base plus a little per sensor (the reference model),
plus per machine of its shard a part that does not depend on the sensors (state, identities)
and one that grows with them (readings, encoded records waiting for the Kafka client)::

    need = 167 MiB + 395 KiB x sensors + machines x (4,281 B + 109 B x sensors)

The request is that need for the largest shard; the limit adds a quarter and 128 MiB for what a
busier cycle holds on top. A limit the spec sets below the need is refused (:func:`shortfall`):
such pods would be killed for lack of memory.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Final

from kubernetes.utils import parse_quantity

MIB: Final = 2**20
BASE_BYTES: Final = 167 * MIB
BYTES_PER_SENSOR: Final = 395 * 1024
BYTES_PER_MACHINE: Final = 4281
BYTES_PER_MACHINE_SENSOR: Final = 109
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


def need_bytes(machines: int, replicas: int, sensors: int) -> int:
    """The measured resident memory of the largest shard's producer."""
    per_machine = BYTES_PER_MACHINE + BYTES_PER_MACHINE_SENSOR * sensors
    return (
        BASE_BYTES + BYTES_PER_SENSOR * sensors + per_machine * machines_per_pod(machines, replicas)
    )


def sized(machines: int, replicas: int, sensors: int) -> tuple[str, str]:
    """(request, limit) for the largest shard of ``machines`` over ``replicas`` pods."""
    need = need_bytes(machines, replicas, sensors)
    return _mebibytes(need), _mebibytes(need * LIMIT_FACTOR + LIMIT_EXTRA_BYTES)


def shortfall(machines: int, replicas: int, sensors: int, *, limit: str | None) -> str | None:
    """Why a memory limit the spec sets is too low for the largest shard (None when it is
    enough, or unset)."""
    if limit is None:
        return None
    need = need_bytes(machines, replicas, sensors)
    if quantity(limit) >= need:
        return None
    per_pod = machines_per_pod(machines, replicas)
    return (
        f"resources.limits.memory {limit} is below the {_mebibytes(need)} a producer of "
        f"{per_pod} machines x {sensors} sensors needs (docs/operator.md, 'Memory'): raise "
        "the limit, remove it to have it sized, or raise replicas"
    )


def pod_memory(
    machines: int, replicas: int, sensors: int, *, request: str | None, limit: str | None
) -> tuple[str, str]:
    """(request, limit) of a producer pod: what the spec gives wins; what it leaves unset is
    sized from the machines and sensors, and never so that the request exceeds the limit."""
    sized_request, sized_limit = sized(machines, replicas, sensors)
    if request is not None and limit is not None:
        return request, limit
    if limit is not None:
        fits = quantity(sized_request) <= quantity(limit)
        return (sized_request if fits else limit), limit
    if request is not None:
        fits = quantity(sized_limit) >= quantity(request)
        return request, (sized_limit if fits else request)
    return sized_request, sized_limit

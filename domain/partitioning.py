"""Split machine indices 0..M-1 into contiguous shards whose sizes differ by at most one.

The producer uses it to pick the machines of its shard; the operator reports the same table in
the SensorSimulation status. Keeping one function for both is what makes the status true.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MachineRange:
    """Machine indices ``start`` (inclusive) to ``stop`` (exclusive) owned by one shard."""

    shard: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    def indices(self) -> range:
        return range(self.start, self.stop)


def _check(machines: int, shard_count: int) -> None:
    if machines < 1:
        raise ValueError(f"machines must be >= 1, got {machines}")
    if not 1 <= shard_count <= machines:
        raise ValueError(f"shard count must be in 1..{machines} (machines), got {shard_count}")


def shard_range(machines: int, shard_count: int, shard_index: int) -> MachineRange:
    """The machines owned by ``shard_index``: the first ``machines % shard_count`` shards get one
    extra machine, so sizes differ by at most one and nothing is dropped."""
    _check(machines, shard_count)
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard index must be in 0..{shard_count - 1}, got {shard_index}")
    base, extra = divmod(machines, shard_count)
    start = shard_index * base + min(shard_index, extra)
    size = base + (1 if shard_index < extra else 0)
    return MachineRange(shard=shard_index, start=start, stop=start + size)


def shard_table(machines: int, shard_count: int) -> list[MachineRange]:
    """Every shard's range, in shard order."""
    _check(machines, shard_count)
    return [shard_range(machines, shard_count, i) for i in range(shard_count)]

"""When a change of the shard count must hand the machines over, and how far the handover is.

Each producer pod owns the machines its shard index and ``SHARD_COUNT`` give it. A rolling
update of the StatefulSet would replace the pods one by one, so for a while an old pod (old
partition) and a new pod (new partition) would emit the same machine. Instead, a replica change
first stops every old pod (scale to 0, the old template kept: each pod checkpoints its machines
at SIGTERM), and only when none is left does the new template start, restoring the checkpoints.

Pure: the caller reads the StatefulSet and its pods and applies what is decided here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from domain import settings_contract as contract
from sensorsim_operator import names

_SHARD_COUNT = contract.setting("SHARD_COUNT").env


@dataclass(frozen=True, slots=True)
class Handover:
    """A replica change in progress: the old pods are stopping, the new ones wait."""

    from_shards: int
    to_shards: int
    stopping: int  # old pods still present
    scale_down: bool  # the old StatefulSet still asks for pods: set its replicas to 0

    @property
    def message(self) -> str:
        return (
            f"handing machines over from {self.from_shards} to {self.to_shards} shards: "
            f"waiting for {self.stopping} pods to stop and checkpoint"
        )


def shard_count(stateful_set: Mapping[str, Any]) -> int | None:
    """The ``SHARD_COUNT`` the StatefulSet's pod template gives its producers (None when absent
    or not a number: not a template this operator wrote, so there is nothing to hand over)."""
    containers = stateful_set.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
    for container in containers or ():
        if container.get("name") != names.PRODUCER_CONTAINER:
            continue
        for variable in container.get("env") or ():
            if variable.get("name") == _SHARD_COUNT:
                value = str(variable.get("value", ""))
                return int(value) if value.isdigit() else None
    return None


def pending_handover(
    existing: Mapping[str, Any] | None, desired: Mapping[str, Any], pods: int
) -> Handover | None:
    """The handover that must finish before ``desired`` may be applied over ``existing``, or
    None when it may be applied now.

    ``pods`` is how many producer pods exist (terminating ones included). The old pods count as
    gone only when the StatefulSet controller has seen the scale-down and reports no replica
    *and* no pod is left, so a stale status can never let the new pods start early.
    """
    if existing is None:
        return None
    old, new = shard_count(existing), shard_count(desired)
    if old is None or new is None or old == new:
        return None
    spec_replicas = int(existing.get("spec", {}).get("replicas", 0) or 0)
    status = existing.get("status") or {}
    replicas = int(status.get("replicas", 0) or 0)
    generation = int(existing.get("metadata", {}).get("generation", 0) or 0)
    seen = int(status.get("observedGeneration", 0) or 0) >= generation
    if spec_replicas == 0 and replicas == 0 and seen and pods == 0:
        return None
    return Handover(
        from_shards=old,
        to_shards=new,
        stopping=max(replicas, pods),
        scale_down=spec_replicas > 0,
    )

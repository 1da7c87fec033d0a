"""What the producer pods say about why they cannot run, reduced to what status reports.

The StatefulSet's counts only say "not ready"; the pods say why (the kubelet's waiting and
terminated reasons, the scheduler's Unschedulable). Pure: pod objects in, problems out.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

# Waiting reasons that mean the container cannot start or keeps failing (not "starting up").
BROKEN_WAITING: Final = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
_REASON: Final = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True, slots=True)
class PodProblem:
    pod: str
    reason: str
    detail: str

    def describe(self) -> str:
        return f"{self.pod}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


def _short(text: Any, most: int = 160) -> str:
    value = " ".join(str(text or "").split())
    return value if len(value) <= most else value[: most - 3] + "..."


def _container_problem(status: Mapping[str, Any]) -> tuple[str, str] | None:
    state = status.get("state") or {}
    last = (status.get("lastState") or {}).get("terminated") or {}
    waiting = state.get("waiting") or {}
    terminated = state.get("terminated") or {}
    if terminated.get("reason") == "OOMKilled" or (
        waiting.get("reason") == "CrashLoopBackOff" and last.get("reason") == "OOMKilled"
    ):
        return "OOMKilled", "the container ran out of memory: raise resources.limits.memory"
    if waiting.get("reason") in BROKEN_WAITING:
        detail = waiting.get("message") or (
            f"last exit code {last['exitCode']}" if "exitCode" in last else ""
        )
        return str(waiting["reason"]), _short(detail)
    return None


def _pod_problem(pod: Mapping[str, Any]) -> PodProblem | None:
    name = str(pod.get("metadata", {}).get("name", "?"))
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or ():
        found = _container_problem(container)
        if found is not None:
            return PodProblem(name, *found)
    for condition in status.get("conditions") or ():
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return PodProblem(name, "Unschedulable", _short(condition.get("message")))
    if status.get("phase") == "Failed":
        reason = _REASON.sub("", str(status.get("reason") or "")) or "PodFailed"
        return PodProblem(name, reason, _short(status.get("message")))
    return None


def pod_problems(pods: Iterable[Mapping[str, Any]]) -> list[PodProblem]:
    """The pods that cannot run and why, by pod name."""
    found = (_pod_problem(pod) for pod in pods)
    return sorted((p for p in found if p is not None), key=lambda p: p.pod)


def summary(problems: list[PodProblem], *, most: int = 5) -> tuple[str, str]:
    """(reason, message) for a Degraded condition: the most frequent reason; every pod named
    (up to ``most``, then a count)."""
    reason = Counter(p.reason for p in problems).most_common(1)[0][0]
    shown = "; ".join(p.describe() for p in problems[:most])
    more = f"; and {len(problems) - most} more pods" if len(problems) > most else ""
    return reason, f"producer pods cannot run: {shown}{more}"

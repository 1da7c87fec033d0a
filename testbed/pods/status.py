"""What the pod runner remembers about each pod, its readiness probe, and the status it reports
for the pod (as a kubelet would)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from testbed import procs
from testbed.pods.node import now

Manifest = dict[str, Any]


@dataclass
class PodState:
    """What the runner remembers about one pod between passes."""

    uid: str
    started: str = field(default_factory=now)
    container_name: str | None = None  # set while its container runs
    container_id: str | None = None
    image_id: str = ""  # of the image the current or last container ran
    ports: dict[int, int] = field(default_factory=dict)  # container port -> host port
    restarts: int = 0
    running_since: str | None = None
    last_terminated: Manifest | None = None
    backoff_until: float = 0.0
    waiting: tuple[str, str] | None = ("ContainerCreating", "")
    ready: bool = False
    readiness_failures: int = 0
    next_probe: float = 0.0
    finished: bool = False  # restartPolicy let it stay down
    reported: Manifest | None = None


def probe_readiness(container: Manifest, state: PodState) -> None:
    """Run the container's HTTP readiness probe when its period is up; update ``state.ready``
    (a container without a probe is ready)."""
    probe = container.get("readinessProbe")
    if probe is None:
        state.ready = True
        return
    if time.monotonic() < state.next_probe:
        return
    state.next_probe = time.monotonic() + float(probe.get("periodSeconds", 10))
    get = probe["httpGet"]
    port = get["port"]
    if isinstance(port, str):
        [port] = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    url = f"http://127.0.0.1:{state.ports.get(port, port)}{get.get('path', '/')}"
    try:
        ok = procs.http_ok(url, timeout=float(probe.get("timeoutSeconds", 1)))
    except Exception:
        ok = False
    if ok:
        state.ready, state.readiness_failures = True, 0
    else:
        state.readiness_failures += 1
        if state.readiness_failures >= int(probe.get("failureThreshold", 3)):
            state.ready = False


def pod_status(pod: Manifest, state: PodState) -> Manifest:
    """The pod's status from ``state``, for a JSON merge patch (lists are replaced whole, null
    clears the container state that no longer applies)."""
    [container] = pod["spec"]["containers"]
    running = state.container_name is not None
    if running:
        current: Manifest = {
            "running": {"startedAt": state.running_since},
            "waiting": None,
            "terminated": None,
        }
    elif state.finished and state.last_terminated is not None:
        current = {"running": None, "waiting": None, "terminated": state.last_terminated}
    else:
        reason, message = state.waiting or ("ContainerCreating", "")
        current = {
            "running": None,
            "waiting": {"reason": reason, "message": message},
            "terminated": None,
        }
    last = (
        {"terminated": state.last_terminated}
        if state.last_terminated and not state.finished
        else {}
    )
    ready = "True" if running and state.ready else "False"
    if state.finished and state.last_terminated is not None:
        phase = "Succeeded" if state.last_terminated["exitCode"] == 0 else "Failed"
    else:
        phase = "Running" if running or state.restarts else "Pending"

    previous = {c["type"]: c for c in (pod.get("status") or {}).get("conditions", [])}

    def condition(kind: str, status: str) -> Manifest:
        since = previous.get(kind, {})
        stamp = since.get("lastTransitionTime") if since.get("status") == status else now()
        return {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": stamp,
        }

    return {
        "phase": phase,
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "startTime": state.started,
        "conditions": [
            condition("PodReadyToStartContainers", "True"),
            condition("Initialized", "True"),
            condition("Ready", ready),
            condition("ContainersReady", ready),
            condition("PodScheduled", "True"),
        ],
        "containerStatuses": [
            {
                "name": container["name"],
                "image": container["image"],
                "imageID": state.image_id,
                "containerID": f"podman://{state.container_id}" if running else None,
                "ready": ready == "True",
                "started": running,
                "restartCount": state.restarts,
                "state": current,
                "lastState": last,
            }
        ],
    }

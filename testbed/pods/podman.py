"""The pod runner's containers in podman: labelled with their pod, listed, started, stopped,
their output kept in a log file per pod after they are removed."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

from testbed import containers
from testbed.pods.node import NODE_NAME

Manifest = dict[str, Any]

RUNNER_LABEL = "io.sensorsim.pod-runner"
UID_LABEL = "io.sensorsim.pod-uid"
POD_LABEL = "io.sensorsim.pod"  # namespace/name


class PodmanContainers:
    """The containers this runner started, found by their labels.

    Each runner labels its containers with an id of its own, so test sessions that run at the
    same time on one host (several checkouts, a benchmark beside the tests) never list, stop or
    remove each other's containers."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.runner_id = f"{NODE_NAME}-{uuid.uuid4().hex[:12]}"

    def by_pod_uid(self) -> dict[str, Manifest]:
        """``podman ps`` entries of this runner's containers (running or exited) by pod uid."""
        listing = containers.podman(
            "ps", "--all", "--filter", f"label={RUNNER_LABEL}={self.runner_id}", "--format", "json"
        ).stdout
        return {entry["Labels"][UID_LABEL]: entry for entry in json.loads(listing or "[]")}

    def run(
        self, pod: Manifest, name: str, image: str, pod_args: list[str]
    ) -> subprocess.CompletedProcess[str]:
        """``podman run --detach`` of the pod's one container, named ``name``, on the host's
        network, with ``pod_args`` from the pod spec."""
        [container] = pod["spec"]["containers"]
        meta = pod["metadata"]
        containers.podman("rm", "--force", name, check=False)
        entrypoint: list[str] = []
        if container.get("command"):
            entrypoint = [f"--entrypoint={json.dumps(container['command'])}"]
        return containers.podman(
            "run",
            "--detach",
            f"--name={name}",
            f"--label={RUNNER_LABEL}={self.runner_id}",
            f"--label={UID_LABEL}={meta['uid']}",
            f"--label={POD_LABEL}={meta['namespace']}/{meta['name']}",
            "--network=host",
            "--read-only-tmpfs=false",
            *containers.ULIMITS,
            *pod_args,
            *entrypoint,
            image,
            *container.get("args", []),
            check=False,
        )

    def stop(self, pod: Manifest, container_id: str, grace_seconds: int) -> None:
        containers.podman(
            "stop",
            f"--time={grace_seconds}",
            container_id,
            check=False,
            timeout=grace_seconds + 30,
        )
        self.remove(pod, container_id)

    def remove(self, pod: Manifest, container_id: str) -> None:
        """Remove an ended or stopped container, keeping its output in the pod's log file."""
        self._save_logs(pod, container_id)
        containers.podman("rm", "--force", container_id, check=False)

    def remove_unknown(self, container_id: str) -> None:
        """Remove the container of a pod that is gone (its output is not kept)."""
        containers.podman("rm", "--force", "--time=0", container_id, check=False)

    def remove_all(self) -> None:
        mine = f"label={RUNNER_LABEL}={self.runner_id}"
        listing = containers.podman(
            "ps", "--all", "--quiet", "--filter", mine, check=False
        ).stdout.split()
        if listing:
            containers.podman("rm", "--force", "--time=5", *listing, check=False, timeout=120)
        shutil.rmtree(self.workdir / "volumes", ignore_errors=True)

    def logs(self, namespace: str, pod: str) -> str:
        """Everything the pod's containers printed so far (removed ones and the current one)."""
        path = self._log_file(namespace, pod)
        text = path.read_text(errors="replace") if path.exists() else ""
        current = containers.podman(
            "ps", "--quiet", "--filter", f"label={POD_LABEL}={namespace}/{pod}", check=False
        ).stdout.split()
        for container_id in current:
            result = containers.podman("logs", container_id, check=False)
            text += result.stdout + result.stderr
        return text

    def _log_file(self, namespace: str, pod: str) -> Path:
        return self.workdir / "logs" / f"{namespace}_{pod}.log"

    def _save_logs(self, pod: Manifest, container_id: str) -> None:
        path = self._log_file(pod["metadata"]["namespace"], pod["metadata"]["name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            containers.podman_command("logs", container_id),
            capture_output=True,
            text=True,
            check=False,
        )
        with path.open("a") as log:
            log.write(result.stdout + result.stderr)

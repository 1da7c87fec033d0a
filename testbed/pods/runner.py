"""``PodRunner``: the loop that keeps podman containers in line with the pods bound to its node
(see the package's docstring for what it does as a kubelet would)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import kubernetes

from testbed import containers, procs
from testbed.cluster import KubeCluster
from testbed.pods import images
from testbed.pods.container_args import ContainerArgs, PodConfigError
from testbed.pods.node import NODE_NAME, NODE_TAINT, NodeHeartbeat, node_manifest, now
from testbed.pods.podman import PodmanContainers
from testbed.pods.status import PodState, pod_status, probe_readiness
from testbed.polling import wait_until

Manifest = dict[str, Any]

BACKOFF_START, BACKOFF_CAP = 10.0, 300.0
# Variables that carry a container's own port (the producer's and the operator's, see the chart).
PORT_ENV = ("HTTP_PORT", "OPERATOR_HEALTH_PORT", "OPERATOR_METRICS_PORT")


class PodRunner:
    """Start with ``start()``, stop with ``stop()`` (removes its containers and its node)."""

    def __init__(
        self, cluster: KubeCluster, workdir: Path, port_env: tuple[str, ...] = PORT_ENV
    ) -> None:
        self.cluster = cluster
        self.workdir = workdir
        client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(cluster.kubeconfig)
        )
        self.core = kubernetes.client.CoreV1Api(client)
        self.heartbeat = NodeHeartbeat(client)
        self.containers = PodmanContainers(workdir)
        self.images = images.ImagePuller()
        self.container_args = ContainerArgs(
            self.core, cluster.apiserver_port, workdir / "volumes", port_env
        )
        self.pods: dict[str, PodState] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        containers.ensure_packages()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.containers.remove_all()
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps(node_manifest()))
        self.heartbeat.beat()
        self._thread = threading.Thread(target=self._loop, name="pod-runner", daemon=True)
        self._thread.start()
        self.cluster.kubectl(
            "wait", "--for=condition=Ready", f"node/{NODE_NAME}", f"--timeout={int(timeout)}s"
        )

        def schedulable() -> bool:
            node = json.loads(self.cluster.kubectl("get", "node", NODE_NAME, "-o", "json").stdout)
            return bool(node["spec"].get("taints") == [NODE_TAINT])

        wait_until(
            schedulable, timeout=timeout, message=f"node {NODE_NAME} without a not-ready taint"
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.images.stop()
        self.containers.remove_all()
        self.cluster.kubectl("delete", "node", NODE_NAME, "--wait=false", check=False)

    def __enter__(self) -> PodRunner:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def host_ports(self, pod_uid: str) -> dict[int, int]:
        """The host port each container port of the pod with ``pod_uid`` is published on while
        its container runs (empty otherwise): where the pod's ``podIP:containerPort`` is reached
        on this host network."""
        state = self.pods.get(pod_uid)
        if state is None or state.container_name is None:
            return {}
        return dict(state.ports)

    def logs(self, namespace: str, pod: str) -> str:
        """Everything the pod's containers printed so far (exited ones and the current one)."""
        return self.containers.logs(namespace, pod)

    # --- the loop --------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.heartbeat.due():
                    self.heartbeat.beat()
                self._sync()
            except Exception as error:
                self.errors.append(f"{now()} {type(error).__name__}: {error}")
            self._stop.wait(1.0)

    def _bound_pods(self) -> list[Manifest]:
        response: Any = self.core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={NODE_NAME}", _preload_content=False
        )
        items: list[Manifest] = json.loads(response.data)["items"]
        return items

    def _sync(self) -> None:
        pods = self._bound_pods()
        running = self.containers.by_pod_uid()
        seen = set()
        for pod in pods:
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            state = self.pods.setdefault(uid, PodState(uid))
            try:
                if pod["metadata"].get("deletionTimestamp"):
                    self._terminate(pod, state, running.get(uid))
                    continue
                self._advance(pod, state, running.get(uid))
                self._report(pod, state)
            except kubernetes.client.ApiException as error:
                # Deleted or changed since listed (404/409): the next pass sees its new state.
                if error.status not in (404, 409):
                    raise
        for uid in set(self.pods) - seen:  # deleted behind our back
            if uid in running:
                self.containers.remove_unknown(running[uid]["Id"])
            self.pods.pop(uid)

    def _advance(self, pod: Manifest, state: PodState, container: Manifest | None) -> None:
        if state.finished:
            return
        if container is None:
            if time.monotonic() >= state.backoff_until:
                self._run(pod, state)
            return
        if container["State"] == "running":
            probe_readiness(pod["spec"]["containers"][0], state)
            return
        if container["State"] in ("exited", "stopped"):
            self._exited(pod, state, container)

    def _exited(self, pod: Manifest, state: PodState, container: Manifest) -> None:
        code = int(container.get("ExitCode", 0))
        self.containers.remove(pod, container["Id"])
        state.last_terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": state.running_since,
            "finishedAt": now(),
            "containerID": f"podman://{container['Id']}",
        }
        state.container_name, state.running_since, state.ready = None, None, False
        policy = pod["spec"].get("restartPolicy", "Always")
        if policy == "Never" or (policy == "OnFailure" and code == 0):
            state.finished = True
            state.waiting = None
            return
        delay = min(BACKOFF_START * 2**state.restarts, BACKOFF_CAP)
        state.restarts += 1
        state.backoff_until = time.monotonic() + delay
        name = pod["spec"]["containers"][0]["name"]
        meta = pod["metadata"]
        state.waiting = (
            "CrashLoopBackOff",
            f"back-off {delay:.0f}s restarting failed container={name} "
            f"pod={meta['name']}_{meta['namespace']}({state.uid})",
        )

    def _terminate(self, pod: Manifest, state: PodState, container: Manifest | None) -> None:
        if container is not None:
            grace = int(pod["metadata"].get("deletionGracePeriodSeconds") or 30)
            self.containers.stop(pod, container["Id"], grace)
        with contextlib.suppress(kubernetes.client.ApiException):
            self.core.delete_namespaced_pod(
                pod["metadata"]["name"],
                pod["metadata"]["namespace"],
                grace_period_seconds=0,
                body=kubernetes.client.V1DeleteOptions(
                    grace_period_seconds=0, preconditions={"uid": state.uid}
                ),
            )
        self.pods.pop(state.uid, None)

    def _run(self, pod: Manifest, state: PodState) -> None:
        """Start the pod's one container, or record why it cannot start (and back off)."""
        [container] = pod["spec"]["containers"]
        image = container["image"]
        try:
            state.ports = {
                p["containerPort"]: procs.free_port() for p in container.get("ports", [])
            }
            pod_args = self.container_args.of(pod, container, state.ports)
        except PodConfigError as error:
            self._wait_before_retry(state, "CreateContainerConfigError", str(error))
            return
        waiting = self.images.waiting_reason(image, container.get("imagePullPolicy", ""))
        if waiting is not None:
            if waiting[0] == "ContainerCreating":  # a pull under way: look again next pass
                if state.waiting and state.waiting[0] in ("ErrImagePull", "ImagePullBackOff"):
                    waiting = ("ImagePullBackOff", f'Back-off pulling image "{image}"')
                state.waiting = waiting
            else:
                self._wait_before_retry(state, *waiting)
            return
        meta = pod["metadata"]
        # The pod's uid keeps the name unique across clusters that share this host's podman.
        name = (
            f"k8s_{container['name']}_{meta['name']}_{meta['namespace']}_"
            f"{meta['uid'][:8]}_{state.restarts}"
        )
        result = self.containers.run(pod, name, image, pod_args)
        if result.returncode != 0:
            self._wait_before_retry(state, "CreateContainerError", result.stderr.strip()[-300:])
            return
        state.container_name, state.container_id = name, result.stdout.strip()
        state.image_id = images.image_id(image)
        state.running_since, state.waiting = now(), None
        state.ready, state.readiness_failures, state.next_probe = False, 0, 0.0

    @staticmethod
    def _wait_before_retry(state: PodState, reason: str, message: str) -> None:
        state.waiting = (reason, message)
        state.backoff_until = time.monotonic() + BACKOFF_START

    def _report(self, pod: Manifest, state: PodState) -> None:
        """Write the pod's status when it changed (ignoring transition times)."""
        status = pod_status(pod, state)
        comparable = json.loads(json.dumps(status))
        for entry in comparable["conditions"]:
            entry.pop("lastTransitionTime")
        if comparable == state.reported:
            return
        self.core.patch_namespaced_pod_status(
            pod["metadata"]["name"],
            pod["metadata"]["namespace"],
            {"status": status},
            _content_type="application/merge-patch+json",
        )
        state.reported = comparable

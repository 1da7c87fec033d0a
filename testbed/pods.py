"""A small kubelet for the test cluster: pods bound to its node run as podman containers.

kwok keeps managing its own fake node (pods there are marked Running without running anything);
``PodRunner`` registers a second node, ``podman-node-0`` (label ``sensorsim.io/node=podman``,
tainted so that only pods with ``TOLERATION`` and that node selector land there), keeps it Ready
(node status and Lease heartbeats) and, for every pod the scheduler binds to it:

- resolves the container's environment as the kubelet does (literal values, downward-API
  fields, ``secretKeyRef``/``configMapKeyRef``, ``envFrom``, ``KUBERNETES_SERVICE_HOST/PORT``)
  and materialises its volumes (``emptyDir``; ``configMap``, ``secret`` and ``projected``
  items as files, with a bound service-account token from the TokenRequest API);
- runs the container from the pod's image, command and args with the pod's security context
  (user/group, read-only root filesystem, dropped capabilities, no privilege escalation);
- reports back to the pod's status what a kubelet would: Running with Ready from the
  readiness probe; on exit ``lastState.terminated`` with the exit code, restarts with the
  kubelet's back-off (10 s doubling to 5 min) and meanwhile
  ``waiting: CrashLoopBackOff``; on deletion it stops the container (SIGTERM, the pod's grace
  period) and removes the pod.

The one deviation, because every container shares the host's network (the test broker and
API server listen on 127.0.0.1): each container port gets a free host port, and the variables
named in ``port_env`` whose value is that port are rewritten to it; probes follow. Liveness
and startup probes are not enforced.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import kubernetes

from testbed import containers, procs
from testbed.cluster import KubeCluster

Manifest = dict[str, Any]

NODE_NAME = "podman-node-0"
NODE_LABEL = ("sensorsim.io/node", "podman")
# Only pods that ask for this node run on it (nodeSelector + toleration): without the taint the
# scheduler would spread any pod here, e.g. one whose broker address exists only in kwok's world.
NODE_TAINT = {"key": "sensorsim.io/pod-runner", "value": "podman", "effect": "NoSchedule"}
TOLERATION = {**NODE_TAINT, "operator": "Equal"}
RUNNER_LABEL = "io.sensorsim.pod-runner"
UID_LABEL = "io.sensorsim.pod-uid"
POD_LABEL = "io.sensorsim.pod"  # namespace/name
LEASE_SECONDS = 40
HEARTBEAT_SECONDS = 10.0
BACKOFF_START, BACKOFF_CAP = 10.0, 300.0
# Variables that carry a container's own port (the producer's and the operator's, see the chart).
PORT_ENV = ("HTTP_PORT", "OPERATOR_HEALTH_PORT", "OPERATOR_METRICS_PORT")


class PodConfigError(Exception):
    """The pod cannot be started as specified (kubelet: CreateContainerConfigError)."""


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PodState:
    """What the runner remembers about one pod between passes."""

    uid: str
    started: str = field(default_factory=now)
    container: str | None = None
    container_id: str | None = None
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


class PodRunner:
    """Start with ``start()``, stop with ``stop()`` (removes its containers and its node)."""

    def __init__(
        self, cluster: KubeCluster, workdir: Path, port_env: tuple[str, ...] = PORT_ENV
    ) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.port_env = port_env
        self.client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(cluster.kubeconfig)
        )
        self.core = kubernetes.client.CoreV1Api(self.client)
        self.coordination = kubernetes.client.CoordinationV1Api(self.client)
        self.pods: dict[str, PodState] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_heartbeat = 0.0

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        containers.ensure_packages()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._remove_containers()
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps(self._node()))
        self._heartbeat()
        self._thread = threading.Thread(target=self._loop, name="pod-runner", daemon=True)
        self._thread.start()
        self.cluster.kubectl(
            "wait", "--for=condition=Ready", f"node/{NODE_NAME}", f"--timeout={int(timeout)}s"
        )

        def schedulable() -> bool:
            node = self._json("get", "node", NODE_NAME)
            return bool(node["spec"].get("taints") == [NODE_TAINT])

        procs.wait_until(schedulable, timeout, f"node {NODE_NAME} without a not-ready taint")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self._remove_containers()
        self.cluster.kubectl("delete", "node", NODE_NAME, "--wait=false", check=False)

    def __enter__(self) -> PodRunner:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def logs(self, namespace: str, pod: str) -> str:
        """Everything the pod's containers printed so far (exited ones and the current one)."""
        path = self._log_file(namespace, pod)
        text = path.read_text(errors="replace") if path.exists() else ""
        current = containers.podman(
            "ps", "--quiet", "--filter", f"label={POD_LABEL}={namespace}/{pod}", check=False
        ).stdout.split()
        for container_id in current:
            result = containers.podman("logs", container_id, check=False)
            text += result.stdout + result.stderr
        return text

    # --- the node --------------------------------------------------------------------------

    def _node(self) -> Manifest:
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "labels": {
                    "kubernetes.io/hostname": NODE_NAME,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    NODE_LABEL[0]: NODE_LABEL[1],
                },
            },
            "spec": {"taints": [NODE_TAINT]},
        }

    def _heartbeat(self) -> None:
        """Node status and Lease, as a kubelet renews them (else the node controller taints
        the node unreachable and evicts its pods)."""
        stamp = now()
        capacity = {"cpu": "8", "memory": "32Gi", "pods": "110"}
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "sensorsim pod runner (podman) is posting ready status",
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }
        status = {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [ready],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "containerRuntimeVersion": "podman://runc",
                "kubeletVersion": "v0.0.0-sensorsim-pod-runner",
                "kubeProxyVersion": "",
                "bootID": "",
                "kernelVersion": "",
                "machineID": "",
                "osImage": "",
                "systemUUID": "",
            },
        }
        if self._last_heartbeat:
            del ready["lastTransitionTime"]  # unchanged since the first beat
        self.core.patch_node_status(NODE_NAME, {"status": status})
        renew = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": NODE_NAME, "namespace": "kube-node-lease"},
            "spec": {
                "holderIdentity": NODE_NAME,
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": renew,
            },
        }
        try:
            self.coordination.patch_namespaced_lease(NODE_NAME, "kube-node-lease", lease)
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise
            self.coordination.create_namespaced_lease("kube-node-lease", cast(Any, lease))
        self._last_heartbeat = time.monotonic()

    # --- the loop --------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if time.monotonic() - self._last_heartbeat >= HEARTBEAT_SECONDS:
                    self._heartbeat()
                self._sync()
            except Exception as error:
                self.errors.append(f"{now()} {type(error).__name__}: {error}")
            self._stop.wait(1.0)

    def _json(self, *args: str) -> Manifest:
        found: Manifest = json.loads(self.cluster.kubectl(*args, "-o", "json").stdout)
        return found

    def _bound_pods(self) -> list[Manifest]:
        response: Any = self.core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={NODE_NAME}", _preload_content=False
        )
        items: list[Manifest] = json.loads(response.data)["items"]
        return items

    def _running_containers(self) -> dict[str, Manifest]:
        """This runner's containers by pod uid."""
        listing = containers.podman(
            "ps", "--all", "--filter", f"label={RUNNER_LABEL}={NODE_NAME}", "--format", "json"
        ).stdout
        found = {}
        for entry in json.loads(listing or "[]"):
            found[entry["Labels"][UID_LABEL]] = entry
        return found

    def _sync(self) -> None:
        pods = self._bound_pods()
        running = self._running_containers()
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
                containers.podman("rm", "--force", "--time=0", running[uid]["Id"], check=False)
            self.pods.pop(uid)

    def _advance(self, pod: Manifest, state: PodState, container: Manifest | None) -> None:
        if state.finished:
            return
        if container is None:
            if time.monotonic() >= state.backoff_until:
                self._run(pod, state)
            return
        if container["State"] == "running":
            self._probe(pod, state)
            return
        if container["State"] in ("exited", "stopped"):
            self._exited(pod, state, container)

    def _exited(self, pod: Manifest, state: PodState, container: Manifest) -> None:
        code = int(container.get("ExitCode", 0))
        self._save_logs(pod, container["Id"])
        containers.podman("rm", "--force", container["Id"], check=False)
        state.last_terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": state.running_since,
            "finishedAt": now(),
            "containerID": f"podman://{container['Id']}",
        }
        state.container, state.running_since, state.ready = None, None, False
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
            containers.podman(
                "stop", f"--time={grace}", container["Id"], check=False, timeout=grace + 30
            )
            self._save_logs(pod, container["Id"])
            containers.podman("rm", "--force", container["Id"], check=False)
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

    # --- starting a container ----------------------------------------------------------------

    def _run(self, pod: Manifest, state: PodState) -> None:
        spec = pod["spec"]
        [container] = spec["containers"]  # the producer pods have one container
        image = container["image"]
        try:
            state.ports = {
                p["containerPort"]: procs.free_port() for p in container.get("ports", [])
            }
            args = self._run_args(pod, container, state)
        except PodConfigError as error:
            state.waiting = ("CreateContainerConfigError", str(error))
            state.backoff_until = time.monotonic() + BACKOFF_START
            return
        if containers.podman("image", "exists", image, check=False).returncode != 0:
            state.waiting = ("ErrImageNeverPull", f'image "{image}" is not present on the node')
            state.backoff_until = time.monotonic() + BACKOFF_START
            return
        meta = pod["metadata"]
        name = f"k8s_{container['name']}_{meta['name']}_{meta['namespace']}_{state.restarts}"
        containers.podman("rm", "--force", name, check=False)
        command: list[str] = []
        if container.get("command"):
            command = [f"--entrypoint={json.dumps(container['command'])}"]
        result = containers.podman(
            "run",
            "--detach",
            f"--name={name}",
            *args,
            *command,
            image,
            *container.get("args", []),
            check=False,
        )
        if result.returncode != 0:
            state.waiting = ("CreateContainerError", result.stderr.strip()[-300:])
            state.backoff_until = time.monotonic() + BACKOFF_START
            return
        state.container, state.container_id = name, result.stdout.strip()
        state.running_since, state.waiting = now(), None
        state.ready, state.readiness_failures, state.next_probe = False, 0, 0.0

    def _run_args(self, pod: Manifest, container: Manifest, state: PodState) -> list[str]:
        pod_security = pod["spec"].get("securityContext", {})
        security = {**pod_security, **container.get("securityContext", {})}
        user = security.get("runAsUser")
        if security.get("runAsNonRoot") and not user:
            raise PodConfigError("container has runAsNonRoot and image will run as root")
        group = security.get("runAsGroup", user)
        args = [
            f"--label={RUNNER_LABEL}={NODE_NAME}",
            f"--label={UID_LABEL}={state.uid}",
            f"--label={POD_LABEL}={pod['metadata']['namespace']}/{pod['metadata']['name']}",
            "--network=host",
            "--read-only-tmpfs=false",
            *containers.ULIMITS,
        ]
        if user is not None:
            args.append(f"--user={user}:{group}")
        if "fsGroup" in pod_security:
            args.append(f"--group-add={pod_security['fsGroup']}")
        if security.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        capabilities = security.get("capabilities", {})
        args += [f"--cap-drop={c}" for c in capabilities.get("drop", [])]
        args += [f"--cap-add={c}" for c in capabilities.get("add", [])]
        if security.get("allowPrivilegeEscalation") is False:
            args.append("--security-opt=no-new-privileges")
        memory = container.get("resources", {}).get("limits", {}).get("memory")
        if memory:
            args.append(f"--memory={_bytes(memory)}")
        for key, value in self._env(pod, container, state).items():
            args.append(f"--env={key}={value}")
        args += self._mounts(pod, container)
        return args

    def _env(self, pod: Manifest, container: Manifest, state: PodState) -> dict[str, str]:
        namespace = pod["metadata"]["namespace"]
        # The kubelet always gives a container the API server's address (here: the real one on
        # loopback, not the Service's cluster IP, as the container is on the host's network).
        env: dict[str, str] = {
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.cluster.apiserver_port),
        }
        for source in container.get("envFrom", []):
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                data = self._data("configmap", namespace, source["configMapRef"]["name"])
            else:
                data = self._data("secret", namespace, source["secretRef"]["name"])
            env |= {prefix + k: v for k, v in data.items()}
        for entry in container.get("env", []):
            if "value" in entry or "valueFrom" not in entry:
                env[entry["name"]] = entry.get("value", "")
                continue
            ref = entry["valueFrom"]
            if "fieldRef" in ref:
                env[entry["name"]] = _field(pod, ref["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in ref or "configMapKeyRef" in ref:
                kind = "secret" if "secretKeyRef" in ref else "configmap"
                key_ref = ref.get("secretKeyRef") or ref["configMapKeyRef"]
                data = self._data(kind, namespace, key_ref["name"])
                if key_ref["key"] not in data:
                    raise PodConfigError(
                        f"couldn't find key {key_ref['key']} in {kind} {key_ref['name']}"
                    )
                env[entry["name"]] = data[key_ref["key"]]
            else:
                raise PodConfigError(f"env {entry['name']}: unsupported source {sorted(ref)}")
        for name in self.port_env:
            for container_port, host_port in state.ports.items():
                if env.get(name) == str(container_port):
                    env[name] = str(host_port)
        return env

    def _data(self, kind: str, namespace: str, name: str) -> dict[str, str]:
        """A ConfigMap's or Secret's data, decoded."""
        try:
            if kind == "secret":
                secret = self.core.read_namespaced_secret(name, namespace)
                raw = secret.data or {}
                return {k: base64.b64decode(v).decode() for k, v in raw.items()}
            found = self.core.read_namespaced_config_map(name, namespace)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                raise PodConfigError(f'{kind} "{name}" not found') from None
            raise
        return dict(found.data or {})

    def _mounts(self, pod: Manifest, container: Manifest) -> list[str]:
        meta = pod["metadata"]
        root = self.workdir / "volumes" / meta["namespace"] / meta["name"] / meta["uid"]
        volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
        args = []
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            path = root / mount["name"]
            if not path.exists():
                self._materialise(pod, volume, path)
            mode = "ro" if mount.get("readOnly") or "emptyDir" not in volume else "rw"
            args.append(f"--volume={path}:{mount['mountPath']}:{mode}")
        return args

    def _materialise(self, pod: Manifest, volume: Manifest, path: Path) -> None:
        path.mkdir(parents=True)
        if "emptyDir" in volume:
            path.chmod(0o1777)  # writable by the container's user, like a fresh emptyDir
            return
        for relative, content in self._volume_files(pod, volume).items():
            target = path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            target.chmod(0o644)
        for directory in (path, *(d for d in path.rglob("*") if d.is_dir())):
            directory.chmod(0o755)

    def _volume_files(self, pod: Manifest, volume: Manifest) -> dict[str, str]:
        """The files of a configMap, secret or projected volume (as the kubelet writes them)."""
        namespace = pod["metadata"]["namespace"]
        if "configMap" in volume or "secret" in volume:
            return self._source_files(namespace, volume)
        if "projected" not in volume:
            raise PodConfigError(f"volume {volume['name']}: unsupported type")
        files: dict[str, str] = {}
        for source in volume["projected"]["sources"]:
            if "serviceAccountToken" in source:
                token = source["serviceAccountToken"]
                files[token["path"]] = self._token(pod, token)
            elif "downwardAPI" in source:
                for item in source["downwardAPI"]["items"]:
                    files[item["path"]] = _field(pod, item["fieldRef"]["fieldPath"])
            else:
                files |= self._source_files(namespace, source)
        return files

    def _source_files(self, namespace: str, source: Manifest) -> dict[str, str]:
        if "configMap" in source:
            ref, kind = source["configMap"], "configmap"
            data = self._data(kind, namespace, ref["name"])
        else:
            ref, kind = source["secret"], "secret"
            data = self._data(kind, namespace, ref.get("secretName") or ref["name"])
        items = ref.get("items") or [{"key": k, "path": k} for k in data]
        missing = [i["key"] for i in items if i["key"] not in data]
        if missing:
            raise PodConfigError(f"{kind} {ref.get('name') or ref.get('secretName')}: no {missing}")
        return {item["path"]: data[item["key"]] for item in items}

    def _token(self, pod: Manifest, token: Manifest) -> str:
        """A bound service-account token from the TokenRequest API, as the kubelet requests."""
        spec: Manifest = {"expirationSeconds": int(token.get("expirationSeconds", 3607))}
        if token.get("audience"):
            spec["audiences"] = [token["audience"]]
        account = pod["spec"].get("serviceAccountName") or "default"
        response: Any = self.core.create_namespaced_service_account_token(
            account, pod["metadata"]["namespace"], cast(Any, {"spec": spec})
        )
        return str(response.status.token)

    # --- probes and status -----------------------------------------------------------------

    def _probe(self, pod: Manifest, state: PodState) -> None:
        [container] = pod["spec"]["containers"]
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
            [port] = [
                p["containerPort"] for p in container.get("ports", []) if p.get("name") == port
            ]
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

    def _report(self, pod: Manifest, state: PodState) -> None:
        """Write the pod's status when it changed (a JSON merge patch: lists are replaced whole,
        null clears the container state that no longer applies)."""
        [container] = pod["spec"]["containers"]
        running = state.container is not None
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

        def condition(kind: str, status: str) -> Manifest:
            previous = {c["type"]: c for c in (pod.get("status") or {}).get("conditions", [])}
            since = previous.get(kind, {})
            stamp = since.get("lastTransitionTime") if since.get("status") == status else now()
            return {
                "type": kind,
                "status": status,
                "lastProbeTime": None,
                "lastTransitionTime": stamp,
            }

        status = {
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
                    "imageID": "",
                    "containerID": f"podman://{state.container_id}" if running else None,
                    "ready": ready == "True",
                    "started": running,
                    "restartCount": state.restarts,
                    "state": current,
                    "lastState": last,
                }
            ],
        }
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

    # --- housekeeping ------------------------------------------------------------------------

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

    def _remove_containers(self) -> None:
        listing = containers.podman(
            "ps", "--all", "--quiet", "--filter", f"label={RUNNER_LABEL}={NODE_NAME}", check=False
        ).stdout.split()
        if listing:
            containers.podman("rm", "--force", "--time=5", *listing, check=False, timeout=120)
        shutil.rmtree(self.workdir / "volumes", ignore_errors=True)


def _field(pod: Manifest, path: str) -> str:
    """A downward-API ``fieldRef`` value."""
    simple = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"]["namespace"],
        "metadata.uid": pod["metadata"]["uid"],
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        "status.hostIP": "127.0.0.1",
        "status.podIP": "127.0.0.1",
    }
    if path in simple:
        return str(simple[path])
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match is None:
        raise PodConfigError(f"unsupported fieldRef {path}")
    return str(pod["metadata"].get(match.group(1), {}).get(match.group(2), ""))


def _bytes(quantity: str) -> int:
    """A memory quantity (``128Mi``, ``1G``, ``500000``) in bytes."""
    units = {
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "k": 10**3,
        "M": 10**6,
        "G": 10**9,
        "T": 10**12,
    }
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", quantity)
    if match is None or match.group(2) not in {**units, "": 1}:
        raise PodConfigError(f"unsupported memory quantity {quantity!r}")
    return int(float(match.group(1)) * units.get(match.group(2), 1))

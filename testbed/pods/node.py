"""The pod runner's Node object, and the heartbeats (node status and Lease) that keep it Ready."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, cast

import kubernetes

Manifest = dict[str, Any]

NODE_NAME = "podman-node-0"
NODE_LABEL = ("sensorsim.io/node", "podman")
# Only pods that ask for this node run on it (nodeSelector + toleration): without the taint the
# scheduler would spread any pod here, e.g. one whose broker address exists only in kwok's world.
NODE_TAINT = {"key": "sensorsim.io/pod-runner", "value": "podman", "effect": "NoSchedule"}
TOLERATION = {**NODE_TAINT, "operator": "Equal"}
LEASE_SECONDS = 40
HEARTBEAT_SECONDS = 10.0


def now() -> str:
    """The current time as the API server writes timestamps."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_manifest() -> Manifest:
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


class NodeHeartbeat:
    """Renews the node's status and Lease as a kubelet does (else the node controller taints
    the node unreachable and evicts its pods)."""

    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self.core = kubernetes.client.CoreV1Api(client)
        self.coordination = kubernetes.client.CoordinationV1Api(client)
        self._last_beat = 0.0

    def due(self) -> bool:
        return time.monotonic() - self._last_beat >= HEARTBEAT_SECONDS

    def beat(self) -> None:
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
        if self._last_beat:
            del ready["lastTransitionTime"]  # unchanged since the first beat
        self.core.patch_node_status(NODE_NAME, {"status": status})
        self._renew_lease()
        self._last_beat = time.monotonic()

    def _renew_lease(self) -> None:
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

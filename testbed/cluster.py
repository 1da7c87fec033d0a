"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (one fake Node, so pods get scheduled and become Ready).

Used by the pytest fixtures and by `make cluster-up`. ``KubeCluster`` is what tests hold: the
addresses, credentials and clients of the cluster, and its start (proved by a pod that becomes
Ready) and stop. The processes are in ``testbed.control_plane``, the certificates and the
kubeconfig in ``testbed.cluster_credentials``, the kubectl and helm runs in
``testbed.kube_clients``. Every process runs detached with its output in
``<workdir>/logs/<component>.log`` and its pid in ``<workdir>/pids/``; ``stop()`` finds them
there, so a cluster started by one command can be stopped by another.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from testbed import procs
from testbed.cluster_credentials import ADMIN_TOKEN, write_kubeconfig, write_pki
from testbed.control_plane import ControlPlaneProcesses
from testbed.kube_clients import client_env, run_client
from testbed.polling import wait_until

NODE_NAME = "kwok-node-0"

_FAKE_NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {
        "name": NODE_NAME,
        "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        "labels": {
            "kubernetes.io/hostname": NODE_NAME,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "kwok",
        },
    },
    "status": {
        "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "500"},
        "capacity": {"cpu": "64", "memory": "256Gi", "pods": "500"},
    },
}

_PROBE_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: readiness-probe, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: readiness-probe}}
  template:
    metadata: {labels: {app: readiness-probe}}
    spec:
      containers: [{name: probe, image: registry.invalid/probe:1}]
"""


@dataclass
class KubeCluster:
    workdir: Path
    etcd_port: int = field(default_factory=procs.free_port)
    etcd_peer_port: int = field(default_factory=procs.free_port)
    apiserver_port: int = field(default_factory=procs.free_port)
    scheduler_port: int = field(default_factory=procs.free_port)
    kwok_port: int = field(default_factory=procs.free_port)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    @property
    def admin_token(self) -> str:
        return ADMIN_TOKEN

    @property
    def env(self) -> dict[str, str]:
        """The environment for clients of this cluster: KUBECONFIG set, tools on PATH, and no
        in-cluster variables that would make clients ignore the kubeconfig."""
        return client_env(self.kubeconfig, self.workdir / "helm")

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return run_client("kubectl", args, env=self.env, input=input, check=check, timeout=timeout)

    def helm(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return run_client("helm", args, env=self.env, input=input, check=check, timeout=timeout)

    def log(self, component: str) -> Path:
        return self._processes.log(component)

    @property
    def _processes(self) -> ControlPlaneProcesses:
        return ControlPlaneProcesses(self.workdir, self.env)

    # --- start-up -------------------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> None:
        """Start every component and wait until a Deployment's pod becomes Ready."""
        shutil.rmtree(self.workdir, ignore_errors=True)
        (self.workdir / "pids").mkdir(parents=True)
        (self.workdir / "ports.json").write_text(json.dumps(self.__ports()))
        processes = self._processes
        try:
            write_pki(self.workdir / "pki")
            write_kubeconfig(self.kubeconfig, self.server, self.ca_file)
            processes.start_etcd(self.etcd_port, self.etcd_peer_port, timeout)
            processes.start_apiserver(self.etcd_port, self.apiserver_port, timeout)
            processes.start_controllers(self.kubeconfig, self.scheduler_port, self.kwok_port)
            self._wait_for_working_cluster(timeout)
        except BaseException:
            self.stop()
            raise

    def __ports(self) -> dict[str, int]:
        return {
            "etcd": self.etcd_port,
            "apiserver": self.apiserver_port,
            "scheduler": self.scheduler_port,
            "kwok": self.kwok_port,
        }

    def _wait_for_working_cluster(self, timeout: float) -> None:
        wait_until(
            lambda: self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
            timeout=timeout,
            message="kube-controller-manager (default ServiceAccount)",
            log_file=self.log("kube-controller-manager"),
        )
        self.kubectl("apply", "-f", "-", input=json.dumps(_FAKE_NODE))
        self.kubectl(
            "wait", "--for=condition=Ready", f"node/{NODE_NAME}", f"--timeout={int(timeout)}s"
        )
        # The proof that pods can run: a Deployment's pod is scheduled and made Ready.
        self.kubectl("apply", "-f", "-", input=_PROBE_DEPLOYMENT)
        self.kubectl(
            "rollout", "status", "deployment/readiness-probe", f"--timeout={int(timeout)}s"
        )
        self.kubectl("delete", "deployment", "readiness-probe", "--wait=false")

    # --- shut-down ------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every component (clients first, etcd last)."""
        self._processes.stop()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def from_workdir(workdir: Path) -> KubeCluster:
    """The cluster whose state lives in ``workdir`` (as written by ``start``)."""
    ports = json.loads((workdir / "ports.json").read_text())
    return KubeCluster(
        workdir,
        etcd_port=ports["etcd"],
        apiserver_port=ports["apiserver"],
        scheduler_port=ports["scheduler"],
        kwok_port=ports["kwok"],
    )

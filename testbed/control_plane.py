"""The processes of the test control plane: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok, each with the flags that make it work on loopback with the credentials
of ``testbed.cluster_credentials``.

Each runs detached with its output in ``<workdir>/logs/<component>.log`` and its pid in
``<workdir>/pids/<component>``: the pid files, not this object, are what ``stop`` reads, so a
control plane started by one command can be stopped by another.
"""

from __future__ import annotations

import ssl
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from testbed import procs, tools
from testbed.cluster_credentials import ADMIN_TOKEN
from testbed.polling import wait_until

# Clients first, etcd last: nothing writes to a store that has gone.
STOP_ORDER = ("kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")


@dataclass(frozen=True)
class ControlPlaneProcesses:
    """Starts and stops the components of the control plane whose state is in ``workdir``;
    ``env`` is the environment they run in (the clients' one: tools on PATH)."""

    workdir: Path
    env: dict[str, str]

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    def log(self, component: str) -> Path:
        return self.workdir / "logs" / f"{component}.log"

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        process = procs.start_detached(cmd, self.log(name), env=self.env)
        (self.workdir / "pids" / name).write_text(str(process.pid))
        return process

    def start_etcd(self, client_port: int, peer_port: int, timeout: float) -> None:
        """Start etcd and wait until it reports itself healthy."""
        client = f"http://127.0.0.1:{client_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        process = self._spawn(
            "etcd",
            [
                str(tools.tool_path("etcd")),
                "--name=sensorsim-test",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=sensorsim-test={peer}",
                "--listen-metrics-urls=",
                "--unsafe-no-fsync=true",
                "--auto-compaction-retention=1",
                "--quota-backend-bytes=4294967296",
            ],
        )
        wait_until(
            lambda: b'"health":"true"' in urllib.request.urlopen(f"{client}/health").read(),
            timeout=timeout,
            message="etcd",
            process=process,
            log_file=self.log("etcd"),
        )

    def start_apiserver(self, etcd_port: int, port: int, timeout: float) -> None:
        """Start kube-apiserver on ``port`` and wait until ``/readyz`` answers 200 to the admin
        over TLS verified against the test CA."""
        pki = self.pki
        process = self._spawn(
            "kube-apiserver",
            [
                str(tools.tool_path("kube-apiserver")),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'apiserver'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--token-auth-file={pki / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                # PodSecurity is in the default admission chain; named here so it is visible.
                # OwnerReferencesPermissionEnforcement: setting blockOwnerDeletion needs
                # update on the owner's finalizers (as on real clusters, e.g. OpenShift).
                "--enable-admission-plugins=PodSecurity,OwnerReferencesPermissionEnforcement",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.key'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--allow-privileged=false",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
            ],
        )
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))

        def ready() -> bool:
            request = urllib.request.Request(
                f"https://127.0.0.1:{port}/readyz",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            with urllib.request.urlopen(request, context=context, timeout=5) as response:
                return bool(response.status == 200)

        wait_until(
            ready,
            timeout=timeout,
            message="kube-apiserver",
            process=process,
            log_file=self.log("kube-apiserver"),
        )

    def start_controllers(self, kubeconfig: Path, scheduler_port: int, kwok_port: int) -> None:
        """Start kube-controller-manager, kube-scheduler and kwok (which plays the kubelet of
        the fake node); whether they work shows in the cluster, not in a health endpoint."""
        pki = self.pki
        self._spawn(
            "kube-controller-manager",
            [
                str(tools.tool_path("kube-controller-manager")),
                f"--kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                "--use-service-account-credentials=false",
                "--concurrent-statefulset-syncs=10",
                "--concurrent-gc-syncs=20",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(tools.tool_path("kube-scheduler")),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={scheduler_port}",
            ],
        )
        self._spawn(
            "kwok",
            [
                str(tools.tool_path("kwok")),
                f"--kubeconfig={kubeconfig}",
                # Only its own fake node: testbed/pods/ runs the pods of another node
                # as real containers and reports their status itself.
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--cidr=10.244.0.0/16",
                "--node-ip=10.0.0.1",
                f"--server-address=127.0.0.1:{kwok_port}",
                # Renew the node's Lease, as kwokctl does: the heartbeat-with-lease stage only
                # refreshes node status rarely, and without a lease the node controller marks
                # the node NotReady once its grace period has passed.
                "--node-lease-duration-seconds=40",
                *(f"--config={stage}" for stage in tools.kwok_stage_files()),
            ],
        )

    def stop(self) -> None:
        """Stop every component that has a pid file, in ``STOP_ORDER``."""
        for name in STOP_ORDER:
            pid_file = self.workdir / "pids" / name
            if pid_file.exists():
                procs.stop_pid(int(pid_file.read_text()), grace_seconds=10)
                pid_file.unlink()

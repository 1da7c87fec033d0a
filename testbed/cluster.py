"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (one fake Node, so pods get scheduled and become Ready).

Used by the pytest fixtures and by `make cluster-up`. Every process runs detached with its
output in ``<workdir>/logs/<component>.log`` and its pid in ``<workdir>/pids/``; ``stop()``
finds them there, so a cluster started by one command can be stopped by another.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from testbed import procs, tools
from testbed.polling import wait_until

ADMIN_TOKEN = "sensorsim-admin-token"
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
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
        path = os.pathsep.join(str(d) for d in tools.bin_dirs())
        env["PATH"] = f"{path}{os.pathsep}{env.get('PATH', '')}"
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["HELM_CACHE_HOME"] = str(self.workdir / "helm" / "cache")
        env["HELM_CONFIG_HOME"] = str(self.workdir / "helm" / "config")
        env["HELM_DATA_HOME"] = str(self.workdir / "helm" / "data")
        return env

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self._run(str(tools.tool_path("kubectl")), args, input, check, timeout)

    def helm(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return self._run(str(tools.tool_path("helm")), args, input, check, timeout)

    def _run(
        self, binary: str, args: tuple[str, ...], input: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [binary, *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{Path(binary).name} {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    # --- start-up -------------------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> None:
        """Start every component and wait until a Deployment's pod becomes Ready."""
        shutil.rmtree(self.workdir, ignore_errors=True)
        (self.workdir / "pids").mkdir(parents=True)
        (self.workdir / "ports.json").write_text(json.dumps(self.__ports()))
        try:
            self._write_pki()
            self._write_kubeconfig()
            self._start_etcd(timeout)
            self._start_apiserver(timeout)
            self._start_controllers()
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

    def _openssl(self, *args: str) -> None:
        subprocess.run(
            ["openssl", *args], cwd=self.workdir / "pki", check=True, capture_output=True
        )

    def _write_pki(self) -> None:
        pki = self.workdir / "pki"
        pki.mkdir(parents=True)
        self._openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
            "-subj", "/CN=sensorsim-test-ca", "-keyout", "ca.key", "-out", "ca.crt",
        )  # fmt: skip
        self._openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kube-apiserver",
            "-keyout", "apiserver.key", "-out", "apiserver.csr",
        )  # fmt: skip
        (pki / "apiserver.ext").write_text(
            "basicConstraints=CA:FALSE\n"
            "keyUsage=digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,"
            "DNS:kubernetes.default,DNS:kubernetes.default.svc\n"
            "authorityKeyIdentifier=keyid,issuer\n"
            "subjectKeyIdentifier=hash\n"
        )
        self._openssl(
            "x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "3650", "-extfile", "apiserver.ext",
            "-out", "apiserver.crt",
        )  # fmt: skip
        self._openssl("genrsa", "-out", "sa.key", "2048")
        (pki / "tokens.csv").write_text(f'{ADMIN_TOKEN},admin,admin-uid,"system:masters"\n')

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "sensorsim-test",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": "admin", "user": {"token": ADMIN_TOKEN}}],
            "contexts": [
                {
                    "name": "sensorsim-test",
                    "context": {
                        "cluster": "sensorsim-test",
                        "user": "admin",
                        "namespace": "default",
                    },
                }
            ],
            "current-context": "sensorsim-test",
        }
        # JSON is valid YAML; every kubeconfig reader accepts it.
        self.kubeconfig.write_text(json.dumps(config, indent=2))

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        process = procs.start_detached(cmd, self.log(name), env=self.env)
        (self.workdir / "pids" / name).write_text(str(process.pid))
        return process

    def log(self, component: str) -> Path:
        return self.workdir / "logs" / f"{component}.log"

    def _start_etcd(self, timeout: float) -> None:
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
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

    def _start_apiserver(self, timeout: float) -> None:
        pki = self.workdir / "pki"
        process = self._spawn(
            "kube-apiserver",
            [
                str(tools.tool_path("kube-apiserver")),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.apiserver_port}",
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
        context = ssl.create_default_context(cafile=str(self.ca_file))

        def ready() -> bool:
            request = urllib.request.Request(
                f"{self.server}/readyz", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
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

    def _start_controllers(self) -> None:
        pki = self.workdir / "pki"
        self._spawn(
            "kube-controller-manager",
            [
                str(tools.tool_path("kube-controller-manager")),
                f"--kubeconfig={self.kubeconfig}",
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
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.scheduler_port}",
            ],
        )
        self._spawn(
            "kwok",
            [
                str(tools.tool_path("kwok")),
                f"--kubeconfig={self.kubeconfig}",
                # Only its own fake node: testbed/pods.py runs the pods of another node
                # as real containers and reports their status itself.
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--cidr=10.244.0.0/16",
                "--node-ip=10.0.0.1",
                f"--server-address=127.0.0.1:{self.kwok_port}",
                # Renew the node's Lease, as kwokctl does: the heartbeat-with-lease stage only
                # refreshes node status rarely, and without a lease the node controller marks
                # the node NotReady once its grace period has passed.
                "--node-lease-duration-seconds=40",
                *(f"--config={stage}" for stage in tools.kwok_stage_files()),
            ],
        )

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
        order = ["kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"]
        for name in order:
            pid_file = self.workdir / "pids" / name
            if pid_file.exists():
                procs.stop_pid(int(pid_file.read_text()), grace_seconds=10)
                pid_file.unlink()

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

"""The built image running the operator as the chart's pod does: the chart's command, uid 10001,
read-only root filesystem with a tmpfs /tmp, no capabilities, no privilege escalation, and the
in-cluster configuration a kubelet gives a pod (service-account token, CA and namespace files
under /var/run/secrets/kubernetes.io/serviceaccount, KUBERNETES_SERVICE_HOST/PORT). It reaches
the real control plane on the host's network. Built against the stand-in base.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from testbed import containers, procs
from testbed.cluster import KubeCluster
from testbed.polling import wait_until
from tests.k8s.test_operator_e2e import crd  # noqa: F401 - the fixture: the CRD, established

pytestmark = pytest.mark.container

REPO = Path(__file__).resolve().parents[2]
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def service_account_files(cluster: KubeCluster, directory: Path, namespace: str) -> Path:
    """What the kubelet mounts into a pod: token, CA bundle, namespace (readable by uid 10001).
    The token is the test cluster's admin token; the chart's RBAC has its own tests."""
    directory.mkdir()
    (directory / "token").write_text(cluster.admin_token)
    shutil.copyfile(cluster.ca_file, directory / "ca.crt")
    (directory / "namespace").write_text(namespace)
    for path in (directory, *directory.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return directory


def simulation(k8s_cluster: KubeCluster, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        k8s_cluster.kubectl("-n", namespace, "get", "sensim", "minimal", "-o", "json").stdout
    )
    return found


@pytest.mark.usefixtures("crd")
def test_operator_container_reconciles_on_the_real_control_plane_and_answers_healthz(
    sensorsim_image: str, k8s_cluster: KubeCluster, tmp_path: Path
) -> None:
    namespace = f"image-{uuid.uuid4().hex[:8]}"
    k8s_cluster.kubectl("create", "namespace", namespace)
    health_port, metrics_port = procs.free_port(), procs.free_port()
    env = {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(k8s_cluster.apiserver_port),
        "WATCH_NAMESPACES": namespace,
        "PRODUCER_IMAGE": sensorsim_image,
        "OPERATOR_HEALTH_PORT": str(health_port),
        "OPERATOR_METRICS_PORT": str(metrics_port),
        "OPERATOR_LOG_FORMAT": "json",
    }
    token_dir = service_account_files(k8s_cluster, tmp_path / "serviceaccount", namespace)
    name = f"sensorsim-operator-{uuid.uuid4().hex[:8]}"
    command = containers.chart_operator_command()
    containers.podman(
        "run",
        "--detach",
        f"--name={name}",
        *containers.hardened_run_args(env, mounts=[(token_dir, SERVICE_ACCOUNT_DIR)]),
        f"--entrypoint={json.dumps(command[:1])}",
        sensorsim_image,
        *command[1:],
    )
    try:
        healthz = f"http://127.0.0.1:{health_port}/healthz"
        wait_until(
            lambda: procs.http_ok(healthz), timeout=120, message="the operator container's /healthz"
        )
        manifest = {
            "apiVersion": "sensorsim.io/v1alpha1",
            "kind": "SensorSimulation",
            "metadata": {"name": "minimal", "namespace": namespace},
            "spec": {"replicas": 2, "machines": 4, "kafka": {"bootstrapServers": "kafka:9092"}},
        }
        k8s_cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))

        def reconciled() -> bool:
            status = simulation(k8s_cluster, namespace).get("status", {})
            return bool(status.get("observedGeneration") == 1 and status.get("configHash"))

        wait_until(reconciled, timeout=120, message="the operator container to reconcile")
        sts = json.loads(
            k8s_cluster.kubectl(
                "-n", namespace, "get", "statefulset", "minimal", "-o", "json"
            ).stdout
        )
        [producer] = sts["spec"]["template"]["spec"]["containers"]
        assert producer["image"] == sensorsim_image
        assert sts["spec"]["replicas"] == 2
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as response:
            assert b"sensorsim_operator_reconciles_total" in response.read()

        containers.podman("stop", "--time=30", name)
        code = containers.podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout
        logs = containers.podman("logs", name)
        assert code.strip() == "0", logs.stdout + logs.stderr
    finally:
        containers.podman("rm", "--force", name, check=False)
        k8s_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)

"""A release installed as users install it: from a clean clone, ``make release VERSION=x
REGISTRY=<registry>`` pushes the image and the chart to a real OCI registry (testbed/registry.py);
then the chart is installed from the registry alone (``helm install sensorsim
oci://<registry>/charts/sensorsim --version x``, no checkout) on the real control plane, and the
operator pod and the producer pods run as real containers of the image the pod runner pulls from
the registry (testbed/pods), until a SensorSimulation is Ready with records in its topic. The
wheel is installed into a fresh virtualenv and its ``sensorsim`` command runs.

The only values given at install time put the operator pod onto the pod runner's node (a
cluster's real nodes would need none). The image's base is a stand-in (testbed/containers.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from testbed import containers
from testbed.cluster import KubeCluster
from testbed.pods import NODE_LABEL, NODE_NAME, TOLERATION, PodRunner
from testbed.polling import wait_until
from testbed.registry import OciRegistry
from testbed.tools import REPO_ROOT
from tests.k8s.test_operator_e2e import Api, condition, minimal_example, wait_ready
from tests.k8s.test_pods_as_containers import (
    runner,  # noqa: F401 - fixture: the podman pod runner
    topic,  # noqa: F401 - fixture: a new topic
)

pytestmark = [pytest.mark.container, pytest.mark.tools, pytest.mark.timeout(1800)]

ON_THE_RUNNER = {"nodeSelector": {NODE_LABEL[0]: NODE_LABEL[1]}, "tolerations": [TOLERATION]}


@dataclass(frozen=True)
class Release:
    version: str
    registry: OciRegistry
    clone: Path

    @property
    def image(self) -> str:
        return f"{self.registry.address}/sensorsim:{self.version}"

    @property
    def chart(self) -> str:
        return f"oci://{self.registry.address}/charts/sensorsim"

    @property
    def wheel(self) -> Path:
        return self.clone / "dist" / f"sensorsim-{self.version}-py3-none-any.whl"


def outside_checkout() -> dict[str, str]:
    """This process's environment without what points at this checkout (its virtualenv, its
    tree on PYTHONPATH, the running make's flags)."""
    return {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "MAKEFLAGS")
    }


def make(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``make`` in the clone, with an environment that points at nothing of this checkout."""
    env = outside_checkout()
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=1500,
    )


def remove_local_copies(release: Release) -> None:
    """Remove every tag of the released image from podman's store, so that a container of it
    can only start after a pull from the registry."""
    for reference in (release.image, f"{containers.IMAGE_REPOSITORY}:{release.version}"):
        inspected = containers.podman("image", "inspect", "--format", "{{.Id}}", reference,
                                      check=False)  # fmt: skip
        if inspected.returncode == 0:
            containers.podman("rmi", "--force", inspected.stdout.strip())
    assert containers.podman("image", "exists", release.image, check=False).returncode != 0


@pytest.fixture(scope="module")
def release(
    oci_registry: OciRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    clone = tmp_path_factory.mktemp("release") / "sensorsim"
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
    subprocess.run(["git", "checkout", "--quiet", "--detach", head], cwd=clone, check=True)
    released = Release(f"0.99.{uuid.uuid4().int % 1_000_000}", oci_registry, clone)

    done = make(clone, "release", f"VERSION={released.version}",
                f"REGISTRY={oci_registry.address}")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    install = f"helm install sensorsim {released.chart} --version {released.version}"
    assert install in done.stdout
    assert oci_registry.tags("sensorsim") == [released.version]
    assert oci_registry.tags("charts/sensorsim") == [released.version]
    remove_local_copies(released)
    yield released
    remove_local_copies(released)


def operator_pod(api: Api) -> dict[str, Any] | None:
    for pod in api.items("pods", "app.kubernetes.io/component=operator"):
        statuses = pod.get("status", {}).get("containerStatuses", [])
        if statuses and statuses[0]["ready"]:
            return pod
    return None


def machines_in_topic(kafka_bootstrap: str, name: str, machines: int) -> dict[str, int]:
    """Records per machine in the topic, once every machine has published a few."""
    consumer = KafkaConsumer(
        name, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False,
    )  # fmt: skip
    counts: dict[str, int] = {}

    def every_machine_published() -> bool:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                machine = json.loads(record.value)["machine_id"]
                counts[machine] = counts.get(machine, 0) + 1
        return len(counts) == machines and min(counts.values()) >= 3

    try:
        wait_until(every_machine_published, timeout=120, message=f"records of {machines} machines")
    finally:
        consumer.close()
    return counts


def test_the_released_chart_runs_a_simulation_from_the_registry_alone(
    release: Release,
    k8s_cluster: KubeCluster,
    runner: PodRunner,  # noqa: F811
    kafka_bootstrap: str,
    topic: str,  # noqa: F811
) -> None:
    api = Api(k8s_cluster, f"release-{uuid.uuid4().hex[:6]}")
    k8s_cluster.helm(
        "install", "sensorsim", release.chart, "--version", release.version, "--plain-http",
        "--namespace", api.namespace, "--create-namespace",
        "--set-json", f"nodeSelector={json.dumps(ON_THE_RUNNER['nodeSelector'])}",
        "--set-json", f"tolerations={json.dumps(ON_THE_RUNNER['tolerations'])}",
    )  # fmt: skip
    try:
        # pulling the image is part of the operator pod's start
        pod = wait_until(lambda: operator_pod(api), timeout=600, message="operator pod Ready")
        assert pod["spec"]["nodeName"] == NODE_NAME
        [container] = pod["spec"]["containers"]
        assert container["image"] == release.image  # the chart's default: registry, appVersion
        digest = release.registry.manifest_digest("sensorsim", release.version)
        expected_id = f"{release.registry.address}/sensorsim@{digest}"
        assert pod["status"]["containerStatuses"][0]["imageID"] == expected_id
        assert release.image in runner.images.pulled

        machines = 4
        api.apply(
            minimal_example(
                "released",
                replicas=2,
                machines=machines,
                intervalMs=200,
                kafka={"bootstrapServers": kafka_bootstrap, "topic": topic},
                podTemplate=ON_THE_RUNNER,
            )
        )
        wait_ready(api, "released", timeout=300)
        producers = api.pods("released")
        assert len(producers) == 2
        for producer in producers:
            assert producer["spec"]["nodeName"] == NODE_NAME
            [status] = producer["status"]["containerStatuses"]
            assert status["image"] == release.image
            assert status["imageID"] == expected_id
        counts = machines_in_topic(kafka_bootstrap, topic, machines)
        assert len(counts) == machines

        # an image the registry does not have: the pull fails as a kubelet's would
        missing = f"{release.registry.address}/sensorsim:0.0.0"
        api.apply(
            minimal_example(
                "unpublished", replicas=1, machines=1, image=missing, podTemplate=ON_THE_RUNNER,
                kafka={"bootstrapServers": kafka_bootstrap, "topic": topic},
            )
        )  # fmt: skip

        def degraded() -> dict[str, Any] | None:
            found = condition(api.simulation("unpublished"), "Degraded")
            return found if found.get("status") == "True" else None

        found = wait_until(degraded, timeout=120, message="unpublished Degraded")
        assert found["reason"] in ("ErrImagePull", "ImagePullBackOff"), found
        assert "unpublished-0" in found["message"], found

        def pull_error() -> str | None:
            [status] = api.pods("unpublished")[0]["status"]["containerStatuses"]
            waiting = status["state"].get("waiting") or {}
            return waiting.get("message") if waiting.get("reason") == "ErrImagePull" else None

        message = wait_until(pull_error, timeout=60, message="unpublished-0 in ErrImagePull")
        assert "manifest unknown" in message, message
    finally:
        k8s_cluster.helm("uninstall", "sensorsim", "-n", api.namespace, check=False)
        k8s_cluster.kubectl("delete", "namespace", api.namespace, "--wait=false", check=False)


def test_the_released_wheel_installs_into_a_fresh_virtualenv_and_runs(
    release: Release, tmp_path: Path
) -> None:
    # The checkout's tree (PYTHONPATH under make) would shadow the installed wheel.
    env = outside_checkout()
    venv = tmp_path / "venv"
    subprocess.run(["uv", "venv", "--quiet", "-p", "python3.11", str(venv)], check=True, env=env)
    python = str(venv / "bin" / "python")
    installed = subprocess.run(
        ["uv", "pip", "install", "--quiet", "--python", python, str(release.wheel)],
        capture_output=True, text=True, check=False, timeout=600, env=env,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    sensorsim = str(venv / "bin" / "sensorsim")
    shown = subprocess.run(
        [sensorsim, "--version"], capture_output=True, text=True, check=True, env=env
    )
    assert shown.stdout.strip() == f"sensorsim {release.version}"

    ran = subprocess.run(
        [sensorsim, "run", "--sink", "stdout", "--machines", "3", "--interval", "50",
         "--max-messages", "30", "--seed", "5"],
        capture_output=True, text=True, check=False, timeout=120, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    records = [json.loads(line) for line in ran.stdout.splitlines() if line.startswith("{")]
    assert len(records) == 30
    assert {r["machine_id"] for r in records} == {r["machine_id"] for r in records[:3]}
    assert len({r["machine_id"] for r in records}) == 3

"""The chart deployed as `skaffold run -p kind` would deploy it, without skaffold (which cannot be
built here: the Go module proxy refuses its module): skaffold.yaml's release, values files and
``setValueTemplates`` with ``IMAGE_REPO_sensorsim``/``IMAGE_TAG_sensorsim`` of the image built
from its artifact (``make image``: podman, stand-in base), on the real control plane.

The operator pod runs as a real container of that image through the pod runner
(testbed/pods.py): the chart's command, security context, probes and a bound token of the
chart's ServiceAccount, so the chart's RBAC is what the operator works with. The dev Kafka and
the sample simulation's producer pods stay on kwok's fake node (the Kafka image cannot be
pulled here).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed import containers
from testbed.cluster import KubeCluster
from testbed.pods import NODE_LABEL, TOLERATION, PodRunner
from testbed.polling import wait_until

pytestmark = [pytest.mark.container, pytest.mark.tools]

REPO = Path(__file__).resolve().parents[2]
SKAFFOLD: dict[str, Any] = yaml.safe_load((REPO / "skaffold.yaml").read_text())


@pytest.fixture
def runner(k8s_cluster: KubeCluster, tmp_path: Path) -> Iterator[PodRunner]:
    with PodRunner(k8s_cluster, tmp_path / "pods") as running:
        yield running
    assert not running.errors, running.errors


def set_value_templates(release: dict[str, Any], image: str) -> list[str]:
    """``--set`` arguments from the release's ``setValueTemplates``, as skaffold fills them."""
    repository, tag = image.rsplit(":", 1)
    fields = {"IMAGE_REPO_sensorsim": repository, "IMAGE_TAG_sensorsim": tag}
    sets = []
    for key, template in release["setValueTemplates"].items():
        value = re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: fields[m.group(1)], template)
        sets += ["--set", f"{key}={value}"]
    return sets


def test_the_skaffold_artifact_is_what_make_image_builds() -> None:
    [artifact] = SKAFFOLD["build"]["artifacts"]
    assert (REPO / artifact["context"]).resolve() == containers.DOCKERFILE.parent
    assert REPO / artifact["context"] / artifact["docker"]["dockerfile"] == containers.DOCKERFILE
    assert containers.IMAGE_REPOSITORY.endswith("/" + artifact["image"])


def test_the_skaffold_release_runs_the_operator_container_on_the_real_control_plane(
    sensorsim_image: str, k8s_cluster: KubeCluster, runner: PodRunner
) -> None:
    [release] = SKAFFOLD["deploy"]["helm"]["releases"]
    namespace = f"{release['namespace']}-{uuid.uuid4().hex[:6]}"
    values = [arg for f in release["valuesFiles"] for arg in ("--values", str(REPO / f))]
    k8s_cluster.helm(
        "install",
        release["name"],
        str(REPO / release["chartPath"]),
        "--namespace",
        namespace,
        "--create-namespace",
        *values,
        *set_value_templates(release, sensorsim_image),
        # The one addition: the operator pod goes to the pod runner's node.
        "--set-json",
        f"nodeSelector={json.dumps({NODE_LABEL[0]: NODE_LABEL[1]})}",
        "--set-json",
        f"tolerations={json.dumps([TOLERATION])}",
    )
    try:

        def operator_pod() -> dict[str, Any] | None:
            listing = json.loads(
                k8s_cluster.kubectl(
                    "-n", namespace, "get", "pods", "-l",
                    "app.kubernetes.io/component=operator", "-o", "json",
                ).stdout
            )  # fmt: skip
            for pod in listing["items"]:
                statuses = pod.get("status", {}).get("containerStatuses", [])
                if statuses and statuses[0]["ready"]:
                    found: dict[str, Any] = pod
                    return found
            return None

        wait_until(
            lambda: operator_pod() is not None, timeout=180, message="the operator pod Ready"
        )
        pod = operator_pod()
        assert pod is not None
        assert pod["spec"]["nodeName"] == "podman-node-0"
        [container] = pod["spec"]["containers"]
        assert container["image"] == sensorsim_image
        assert pod["status"]["containerStatuses"][0]["containerID"].startswith("podman://")

        def demo_ready() -> bool:
            demo = json.loads(
                k8s_cluster.kubectl("-n", namespace, "get", "sensim", "demo", "-o", "json").stdout
            )
            conditions = {c["type"]: c for c in demo.get("status", {}).get("conditions", [])}
            return bool(conditions.get("Ready", {}).get("status") == "True")

        try:
            wait_until(demo_ready, timeout=180, message="the sample simulation Ready")
        except RuntimeError as error:
            status = k8s_cluster.kubectl(
                "-n", namespace, "get", "sensim,statefulset,pods", "-o", "wide", check=False
            ).stdout
            logs = runner.logs(namespace, pod["metadata"]["name"])[-3000:]
            raise AssertionError(f"{error}\n{status}\n{logs}") from None
        sts = json.loads(
            k8s_cluster.kubectl("-n", namespace, "get", "statefulset", "demo", "-o", "json").stdout
        )
        [producer] = sts["spec"]["template"]["spec"]["containers"]
        assert producer["image"] == sensorsim_image  # PRODUCER_IMAGE from the same values
        assert "Traceback" not in runner.logs(namespace, pod["metadata"]["name"])
    finally:
        k8s_cluster.helm("uninstall", release["name"], "--namespace", namespace, check=False)
        k8s_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)

"""The test control plane is a real Kubernetes: CRDs, garbage collection, scheduling onto the
kwok node, Pod Security admission, and helm all work against it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.cluster import KubeCluster
from testbed.polling import wait_until

pytestmark = pytest.mark.k8s

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.smoke.sensorsim.io}
spec:
  group: smoke.sensorsim.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 1}
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: smoke, namespace: smoke-gc}
spec:
  replicas: 2
  selector: {matchLabels: {app: smoke}}
  template:
    metadata: {labels: {app: smoke}}
    spec:
      containers: [{name: app, image: registry.invalid/smoke:1}]
"""

PRIVILEGED_POD = """\
apiVersion: v1
kind: Pod
metadata: {name: too-powerful, namespace: smoke-restricted}
spec:
  containers:
  - name: app
    image: registry.invalid/smoke:1
    securityContext: {runAsUser: 0, allowPrivilegeEscalation: true}
"""

CHART = Path(__file__).resolve().parents[1] / "fixtures" / "tiny-chart"


def test_crd_established_and_custom_object_round_trip(k8s_cluster: KubeCluster) -> None:
    k8s_cluster.kubectl("apply", "-f", "-", input=CRD)
    k8s_cluster.kubectl(
        "wait", "--for=condition=Established", "crd/widgets.smoke.sensorsim.io", "--timeout=60s"
    )
    k8s_cluster.kubectl(
        "apply",
        "-f",
        "-",
        input="apiVersion: smoke.sensorsim.io/v1\nkind: Widget\n"
        "metadata: {name: w1, namespace: default}\nspec: {size: 3}\n",
    )
    widget = json.loads(k8s_cluster.kubectl("get", "widget", "w1", "-o", "json").stdout)
    assert widget["spec"] == {"size": 3}
    rejected = k8s_cluster.kubectl(
        "apply",
        "-f",
        "-",
        input="apiVersion: smoke.sensorsim.io/v1\nkind: Widget\n"
        "metadata: {name: w2, namespace: default}\nspec: {size: 0}\n",
        check=False,
    )
    assert rejected.returncode != 0
    assert "spec.size" in rejected.stderr


def test_deployment_pods_ready_on_kwok_node_and_garbage_collected(
    k8s_cluster: KubeCluster,
) -> None:
    k8s_cluster.kubectl("create", "namespace", "smoke-gc")
    k8s_cluster.kubectl("apply", "-f", "-", input=DEPLOYMENT)
    k8s_cluster.kubectl("rollout", "status", "-n", "smoke-gc", "deployment/smoke", "--timeout=120s")
    pods = json.loads(k8s_cluster.kubectl("get", "pods", "-n", "smoke-gc", "-o", "json").stdout)
    ready = [
        pod
        for pod in pods["items"]
        if any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"])
    ]
    assert len(ready) == 2
    assert {pod["spec"]["nodeName"] for pod in ready} == {"kwok-node-0"}

    k8s_cluster.kubectl("delete", "deployment", "smoke", "-n", "smoke-gc", "--wait=false")

    def nothing_left() -> bool:
        out = k8s_cluster.kubectl("get", "replicasets,pods", "-n", "smoke-gc", "-o", "name")
        return out.stdout.strip() == ""

    wait_until(nothing_left, timeout=90, message="the garbage collector to remove the pods")


def test_restricted_namespace_rejects_privileged_pod(k8s_cluster: KubeCluster) -> None:
    k8s_cluster.kubectl("create", "namespace", "smoke-restricted")
    k8s_cluster.kubectl(
        "label", "namespace", "smoke-restricted", "pod-security.kubernetes.io/enforce=restricted"
    )
    result = k8s_cluster.kubectl("apply", "-f", "-", input=PRIVILEGED_POD, check=False)
    assert result.returncode != 0
    assert 'violates PodSecurity "restricted' in result.stderr


@pytest.mark.tools
def test_helm_installs_and_uninstalls_a_chart(k8s_cluster: KubeCluster) -> None:
    k8s_cluster.helm(
        "install", "tiny", str(CHART), "-n", "smoke-helm", "--create-namespace",
        "--set", "greeting=hi", "--wait", "--timeout", "120s",
    )  # fmt: skip
    config = json.loads(
        k8s_cluster.kubectl(
            "get", "configmap", "tiny-greeting", "-n", "smoke-helm", "-o", "json"
        ).stdout
    )
    assert config["data"] == {"greeting": "hi"}
    assert "tiny" in k8s_cluster.helm("list", "-n", "smoke-helm", "-q").stdout.split()

    k8s_cluster.helm("uninstall", "tiny", "-n", "smoke-helm", "--wait")
    gone = k8s_cluster.kubectl("get", "configmap", "tiny-greeting", "-n", "smoke-helm", check=False)
    assert gone.returncode != 0
    assert "NotFound" in gone.stderr

"""The Helm chart against the real control plane (etcd, kube-apiserver with RBAC and PodSecurity,
controller-manager, scheduler, kwok's fake node).

- `helm install` establishes the CRD and brings the operator Deployment to Ready; `helm upgrade`
  with changed values rolls it; `helm uninstall` removes everything but the CRD.
- RBAC is sufficient and minimal: with a TokenRequest token of the chart's ServiceAccount,
  `kubectl auth can-i` allows what the operator does and nothing else (no Secrets; in namespaced
  mode nothing outside the watched namespaces), and the operator, run locally with that token,
  reconciles a SensorSimulation into a StatefulSet whose pods become Ready.
- In a namespace that enforces the Pod Security "restricted" profile, the operator's, Kafka's,
  the test's and the producers' pods are admitted.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.cluster import KubeCluster
from testbed.operator import OperatorProcess
from testbed.polling import wait_until
from testbed.tools import REPO_ROOT
from tests.chart_support import CHART_DIR, CRD_NAME

pytestmark = pytest.mark.tools  # helm installs the chart

WAIT = "180s"


# --- helpers ------------------------------------------------------------------------------


def kubectl_json(cluster: KubeCluster, *args: str) -> Any:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def create_namespace(cluster: KubeCluster, name: str, restricted: bool = False) -> None:
    labels: dict[str, str] = {}
    if restricted:
        labels = {
            f"pod-security.kubernetes.io/{mode}": "restricted"
            for mode in ("enforce", "warn", "audit")
        }
        labels["pod-security.kubernetes.io/enforce-version"] = "latest"
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(namespace))


def service_account_kubeconfig(
    cluster: KubeCluster, namespace: str, account: str, directory: Path
) -> Path:
    """A kubeconfig that authenticates with a TokenRequest token of ``account``."""
    token = cluster.kubectl(
        "create", "token", account, "-n", namespace, "--duration=2h"
    ).stdout.strip()
    assert token.count(".") == 2, "expected a JWT from the TokenRequest API"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test",
                "cluster": {
                    "server": cluster.server,
                    "certificate-authority": str(cluster.ca_file),
                },
            }
        ],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [
            {
                "name": account,
                "context": {"cluster": "test", "user": account, "namespace": namespace},
            }
        ],
        "current-context": account,
    }
    path = directory / f"{namespace}-{account}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def can_i(cluster: KubeCluster, kubeconfig: Path, *args: str) -> bool:
    """`kubectl auth can-i` as the identity of ``kubeconfig`` (exit 0 = yes, 1 = no)."""
    result = cluster.kubectl("--kubeconfig", str(kubeconfig), "auth", "can-i", *args, check=False)
    answer = result.stdout.strip()
    assert answer in {"yes", "no"}, f"auth can-i {' '.join(args)}: {result.stdout}{result.stderr}"
    return answer == "yes"


def install(
    cluster: KubeCluster, release: str, namespace: str, *values: str
) -> subprocess.CompletedProcess[str]:
    return cluster.helm(
        "install",
        release,
        str(CHART_DIR),
        "-n",
        namespace,
        "--wait",
        "--timeout",
        WAIT,
        *values,
    )


def uninstall(cluster: KubeCluster, release: str, namespace: str) -> None:
    cluster.helm("uninstall", release, "-n", namespace, "--wait", "--timeout", WAIT, check=False)


def simulation(name: str, bootstrap: str, replicas: int = 2, machines: int = 6) -> str:
    return json.dumps(
        {
            "apiVersion": "sensorsim.io/v1alpha1",
            "kind": "SensorSimulation",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "machines": machines,
                "kafka": {"bootstrapServers": bootstrap, "topic": "sensor-data"},
            },
        }
    )


def statefulset_ready(cluster: KubeCluster, namespace: str, name: str, replicas: int) -> bool:
    result = cluster.kubectl("get", "statefulset", name, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        return False
    status = json.loads(result.stdout).get("status", {})
    return bool(status.get("readyReplicas") == replicas and status.get("replicas") == replicas)


@contextmanager
def local_operator(
    cluster: KubeCluster,
    kubeconfig: Path,
    watch_namespaces: str,
    log_file: Path,
    **settings: str,
) -> Iterator[OperatorProcess]:
    """`python -m sensorsim_operator` on this machine, authenticated as the chart's
    ServiceAccount; stopped (SIGTERM) on exit, and its log checked for permission errors."""
    env = {
        **cluster.env,
        "KUBECONFIG": str(kubeconfig),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "operator")]),
    }
    with OperatorProcess(
        env,
        log_file,
        WATCH_NAMESPACES=watch_namespaces,
        PRODUCER_IMAGE="sensorsim:test",
        **settings,
    ) as running:
        yield running
    output = log_file.read_text()
    for marker in ("Forbidden", " 403", "forbidden"):
        assert marker not in output, f"the operator hit a permission error:\n{output}"


def rolled_out_operator(cluster: KubeCluster) -> dict[str, Any]:
    """The operator Deployment of release "sensorsim", once its rollout has finished."""
    cluster.kubectl(
        "-n", "sensorsim", "rollout", "status", "deployment/sensorsim-operator",
        f"--timeout={WAIT}",
    )  # fmt: skip
    deployment: dict[str, Any] = kubectl_json(
        cluster, "-n", "sensorsim", "get", "deployment", "sensorsim-operator"
    )
    return deployment


# --- install, upgrade, uninstall ----------------------------------------------------------


def test_install_upgrade_uninstall(k8s_cluster: KubeCluster) -> None:
    cluster = k8s_cluster
    cluster.helm(
        "install",
        "sensorsim",
        str(CHART_DIR),
        "-n",
        "sensorsim",
        "--create-namespace",
        "--wait",
        "--timeout",
        WAIT,
    )
    try:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
        deployment = rolled_out_operator(cluster)
        assert deployment["status"]["readyReplicas"] == 1
        assert deployment["spec"]["strategy"]["type"] == "Recreate"

        cluster.helm(
            "upgrade",
            "sensorsim",
            str(CHART_DIR),
            "-n",
            "sensorsim",
            "--wait",
            "--timeout",
            WAIT,
            "--set",
            "metrics.enabled=true",
            "--set",
            "logLevel=DEBUG",
            "--set",
            "watchNamespaces={sensorsim}",
        )
        deployment = rolled_out_operator(cluster)
        env = {
            e["name"]: e.get("value")
            for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["OPERATOR_LOG_LEVEL"] == "DEBUG"
        assert env["WATCH_NAMESPACES"] == "sensorsim"
        assert deployment["status"]["readyReplicas"] == 1
        service = kubectl_json(
            cluster, "-n", "sensorsim", "get", "service", "sensorsim-operator-metrics"
        )
        assert service["spec"]["ports"][0]["port"] == 9090
        kubectl_json(cluster, "-n", "sensorsim", "get", "role", "sensorsim-operator")
        status = json.loads(
            cluster.helm("status", "sensorsim", "-n", "sensorsim", "-o", "json").stdout
        )
        assert status["version"] == 2
        assert status["info"]["status"] == "deployed"
    finally:
        cluster.helm("uninstall", "sensorsim", "-n", "sensorsim", "--wait", "--timeout", WAIT)

    assert (
        cluster.kubectl(
            "-n", "sensorsim", "get", "deployment", "sensorsim-operator", check=False
        ).returncode
        != 0
    )
    assert cluster.kubectl("get", "clusterrole", "sensorsim-operator", check=False).returncode != 0
    # Helm never deletes CRDs from crds/: the resource type and users' objects survive.
    crd = kubectl_json(cluster, "get", "crd", CRD_NAME)
    assert crd["metadata"]["name"] == CRD_NAME


# --- RBAC ---------------------------------------------------------------------------------

ALLOWED_CLUSTER_WIDE = [
    ("list", "sensorsimulations.sensorsim.io", "-A"),
    ("watch", "sensorsimulations.sensorsim.io", "-n", "anywhere"),
    ("patch", "sensorsimulations.sensorsim.io", "-n", "anywhere"),
    ("patch", "sensorsimulations.sensorsim.io", "--subresource=status", "-n", "anywhere"),
    ("update", "sensorsimulations.sensorsim.io", "--subresource=finalizers", "-n", "anywhere"),
    ("create", "statefulsets.apps", "-n", "anywhere"),
    ("patch", "statefulsets.apps", "-n", "anywhere"),
    ("patch", "configmaps", "-n", "anywhere"),
    ("create", "services", "-n", "anywhere"),
    ("create", "events", "-n", "anywhere"),
    # status names producer pods that cannot run (read only)
    ("list", "pods", "-n", "anywhere"),
    ("watch", "pods", "-n", "anywhere"),
    ("list", "customresourcedefinitions.apiextensions.k8s.io"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
]
DENIED_EVERYWHERE = [
    ("get", "secrets", "-n", "sensorsim-rbac"),
    # children are removed by the garbage collector, never by the operator
    ("delete", "statefulsets.apps", "-n", "anywhere"),
    ("delete", "configmaps", "-n", "anywhere"),
    ("delete", "services", "-n", "anywhere"),
    # pods are read, never changed
    ("get", "pods", "-n", "anywhere"),
    ("patch", "pods", "-n", "anywhere"),
    ("update", "sensorsimulations.sensorsim.io", "--subresource=scale", "-n", "anywhere"),
    ("list", "secrets", "-A"),
    ("watch", "secrets", "-n", "kube-system"),
    ("create", "pods", "-n", "anywhere"),
    ("delete", "pods", "-n", "anywhere"),
    ("create", "deployments.apps", "-n", "anywhere"),
    ("create", "sensorsimulations.sensorsim.io", "-n", "anywhere"),
    ("delete", "sensorsimulations.sensorsim.io", "-n", "anywhere"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("update", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "roles.rbac.authorization.k8s.io", "-n", "anywhere"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("create", "serviceaccounts", "--subresource=token", "-n", "sensorsim-rbac"),
    ("impersonate", "serviceaccounts", "-A"),
    ("list", "nodes"),
    ("get", "persistentvolumeclaims", "-n", "anywhere"),
]


def test_cluster_wide_rbac_is_sufficient_and_minimal(
    k8s_cluster: KubeCluster, tmp_path: Path
) -> None:
    cluster = k8s_cluster
    create_namespace(cluster, "sensorsim-rbac")
    create_namespace(cluster, "rbac-sims")
    install(cluster, "rbac", "sensorsim-rbac")
    try:
        kubeconfig = service_account_kubeconfig(
            cluster, "sensorsim-rbac", "rbac-sensorsim-operator", tmp_path
        )
        for check in ALLOWED_CLUSTER_WIDE:
            assert can_i(cluster, kubeconfig, *check), f"cannot {' '.join(check)}"
        for check in [*DENIED_EVERYWHERE, ("list", "namespaces")]:
            assert not can_i(cluster, kubeconfig, *check), f"can {' '.join(check)}"
        # The real API agrees: reading a Secret is refused.
        denied = cluster.kubectl(
            "--kubeconfig", str(kubeconfig), "get", "secrets", "-n", "sensorsim-rbac", check=False
        )
        assert denied.returncode != 0
        assert "forbidden" in denied.stderr.lower()

        # Sufficient: the operator, with this token, reconciles a simulation to Ready pods.
        cluster.kubectl(
            "apply",
            "-n",
            "rbac-sims",
            "-f",
            "-",
            input=simulation("rbac-demo", "kafka.invalid:9092"),
        )
        with local_operator(cluster, kubeconfig, "", tmp_path / "operator.log"):
            wait_until(
                lambda: statefulset_ready(cluster, "rbac-sims", "rbac-demo", 2),
                timeout=120,
                interval=1,
                message="the producer StatefulSet to be Ready",
            )
            wait_until(
                lambda: (
                    kubectl_json(cluster, "-n", "rbac-sims", "get", "sensorsimulation", "rbac-demo")
                    .get("status", {})
                    .get("readyReplicas")
                    == 2
                ),
                timeout=120,
                interval=1,
                message="status.readyReplicas of the simulation",
            )
            cluster.kubectl(
                "-n", "rbac-sims", "scale", "sensorsimulation", "rbac-demo", "--replicas=3"
            )
            wait_until(
                lambda: statefulset_ready(cluster, "rbac-sims", "rbac-demo", 3),
                timeout=120,
                interval=1,
                message="the StatefulSet to scale to 3",
            )
            cluster.kubectl(
                "-n", "rbac-sims", "delete", "sensorsimulation", "rbac-demo", "--timeout=120s"
            )
    finally:
        uninstall(cluster, "rbac", "sensorsim-rbac")


def test_the_finalizers_rule_is_needed_for_owned_children(
    k8s_cluster: KubeCluster, tmp_path: Path
) -> None:
    """With OwnerReferencesPermissionEnforcement on (as in the test control plane), a child
    with blockOwnerDeletion needs `update` on the owner's finalizers: without the chart's
    finalizers rule, the operator could not create its children."""
    cluster = k8s_cluster
    namespace = "rbac-finalizers"
    create_namespace(cluster, namespace)
    cluster.kubectl("apply", "--server-side", "-f", str(CHART_DIR / "crds" / f"{CRD_NAME}.yaml"))
    wait_until(
        lambda: (
            "True"
            in cluster.kubectl(
                "get",
                f"crd/{CRD_NAME}",
                "-o",
                'jsonpath={.status.conditions[?(@.type=="Established")].status}',
            ).stdout
        ),
        timeout=60,
        interval=1,
        message="the CRD to be established",
    )
    cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=simulation("owner", "kafka.invalid:9092")
    )
    owner = kubectl_json(cluster, "-n", namespace, "get", "sensorsimulation", "owner")
    config_map_rule = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}
    finalizers_rule = {
        "apiGroups": ["sensorsim.io"],
        "resources": ["sensorsimulations/finalizers"],
        "verbs": ["update"],
    }
    outcomes = {}
    for account, rules in (
        ("without-finalizers", [config_map_rule]),
        ("with-finalizers", [config_map_rule, finalizers_rule]),
    ):
        cluster.kubectl("create", "serviceaccount", account, "-n", namespace)
        role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role"}
        cluster.kubectl(
            "apply",
            "-n",
            namespace,
            "-f",
            "-",
            input=json.dumps({**role, "metadata": {"name": account}, "rules": rules}),
        )
        cluster.kubectl(
            "create",
            "rolebinding",
            account,
            "-n",
            namespace,
            f"--role={account}",
            f"--serviceaccount={namespace}:{account}",
        )
        child = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"child-{account}",
                "ownerReferences": [
                    {
                        "apiVersion": "sensorsim.io/v1alpha1",
                        "kind": "SensorSimulation",
                        "name": "owner",
                        "uid": owner["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
        }
        kubeconfig = service_account_kubeconfig(cluster, namespace, account, tmp_path)
        outcomes[account] = cluster.kubectl(
            "--kubeconfig",
            str(kubeconfig),
            "-n",
            namespace,
            "create",
            "-f",
            "-",
            input=json.dumps(child),
            check=False,
        )
    refused = outcomes["without-finalizers"]
    assert refused.returncode != 0
    assert "blockOwnerDeletion" in refused.stderr, refused.stderr
    assert outcomes["with-finalizers"].returncode == 0, outcomes["with-finalizers"].stderr


def test_namespaced_rbac_confines_the_operator(k8s_cluster: KubeCluster, tmp_path: Path) -> None:
    cluster = k8s_cluster
    for namespace in ("sensorsim-ns", "team-a", "team-b"):
        create_namespace(cluster, namespace)
    install(cluster, "scoped", "sensorsim-ns", "--set", "watchNamespaces={team-a}")
    try:
        kubeconfig = service_account_kubeconfig(
            cluster, "sensorsim-ns", "scoped-sensorsim-operator", tmp_path
        )
        for verb, resource in [
            ("list", "sensorsimulations.sensorsim.io"),
            ("patch", "sensorsimulations.sensorsim.io"),
            ("create", "statefulsets.apps"),
            ("patch", "configmaps"),
            ("watch", "services"),
        ]:
            assert can_i(cluster, kubeconfig, verb, resource, "-n", "team-a")
            for other in ("team-b", "sensorsim-ns", "default"):
                assert not can_i(cluster, kubeconfig, verb, resource, "-n", other), (
                    f"can {verb} {resource} in {other}"
                )
            assert not can_i(cluster, kubeconfig, verb, resource, "-A")
        assert can_i(cluster, kubeconfig, "list", "namespaces")  # kopf's namespace matching
        assert can_i(cluster, kubeconfig, "watch", "customresourcedefinitions.apiextensions.k8s.io")
        for check in DENIED_EVERYWHERE:
            assert not can_i(cluster, kubeconfig, *check), f"can {' '.join(check)}"
        assert not can_i(cluster, kubeconfig, "get", "secrets", "-n", "team-a")

        cluster.kubectl(
            "apply", "-n", "team-a", "-f", "-", input=simulation("scoped-a", "kafka.invalid:9092")
        )
        cluster.kubectl(
            "apply", "-n", "team-b", "-f", "-", input=simulation("scoped-b", "kafka.invalid:9092")
        )
        with local_operator(
            cluster,
            kubeconfig,
            "team-a",
            tmp_path / "operator.log",
            OPERATOR_RESYNC_SECONDS="1",
        ) as running:
            wait_until(
                lambda: statefulset_ready(cluster, "team-a", "scoped-a", 2),
                timeout=120,
                interval=1,
                message="the producer StatefulSet in the watched namespace",
            )
            # A resync pass reconciles every simulation the operator can see; once two have
            # finished, anything it would do in team-b it would have done.
            wait_until(
                lambda: (
                    running.metric("sensorsim_operator_reconciles_total", trigger="resync") >= 2
                ),
                timeout=60,
                interval=1,
                message="two resync passes",
            )
            unmanaged = cluster.kubectl(
                "get", "statefulset", "scoped-b", "-n", "team-b", check=False
            )
            assert unmanaged.returncode != 0, "the operator acted outside its namespaces"
            cluster.kubectl(
                "-n", "team-a", "delete", "sensorsimulation", "scoped-a", "--timeout=120s"
            )
        cluster.kubectl("-n", "team-b", "delete", "sensorsimulation", "scoped-b", "--timeout=60s")
    finally:
        uninstall(cluster, "scoped", "sensorsim-ns")


# --- Pod Security "restricted" ------------------------------------------------------------


def test_pods_are_admitted_under_the_restricted_profile(
    k8s_cluster: KubeCluster, tmp_path: Path
) -> None:
    cluster = k8s_cluster
    namespace = "sensorsim-restricted"
    create_namespace(cluster, namespace, restricted=True)
    values = [
        "--set",
        "kafka.enabled=true",
        "--set",
        "metrics.enabled=true",
        "--set",
        "simulations[0].name=restricted-demo",
        "--set",
        "simulations[0].spec.replicas=2",
        "--set",
        "simulations[0].spec.machines=4",
    ]
    result = install(cluster, "strict", namespace, *values)
    try:
        assert "violate PodSecurity" not in result.stderr, result.stderr
        for workload in (
            "deployment/strict-sensorsim-operator",
            "statefulset/strict-sensorsim-kafka",
        ):
            cluster.kubectl("-n", namespace, "rollout", "status", workload, f"--timeout={WAIT}")
        # The release's `helm test` pod: admission runs on a server-side dry run.
        test_pod = cluster.helm("get", "hooks", "strict", "-n", namespace).stdout
        assert "check-records" in test_pod
        dry_run = cluster.kubectl(
            "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=test_pod
        )
        assert "violate" not in dry_run.stderr, dry_run.stderr
        # ...and the namespace does enforce the profile: a pod without the contexts is refused.
        plain_pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "not-restricted"},
            "spec": {"containers": [{"name": "c", "image": "registry.invalid/c:1"}]},
        }
        refused = cluster.kubectl(
            "apply",
            "--dry-run=server",
            "-n",
            namespace,
            "-f",
            "-",
            input=json.dumps(plain_pod),
            check=False,
        )
        assert refused.returncode != 0
        assert 'violates PodSecurity "restricted' in refused.stderr, refused.stderr

        # The producer pods the operator creates from the chart's SensorSimulation.
        kubeconfig = service_account_kubeconfig(
            cluster, namespace, "strict-sensorsim-operator", tmp_path
        )
        with local_operator(cluster, kubeconfig, "", tmp_path / "operator.log"):
            wait_until(
                lambda: statefulset_ready(cluster, namespace, "restricted-demo", 2),
                timeout=120,
                interval=1,
                message="the producer pods in the restricted namespace",
            )
            events = cluster.kubectl(
                "get",
                "events",
                "-n",
                namespace,
                "--field-selector",
                "reason=FailedCreate",
                "-o",
                "json",
            ).stdout
            assert "PodSecurity" not in events, events
            # Delete the chart's simulation while the operator still runs (its finalizer).
            cluster.kubectl(
                "-n", namespace, "delete", "sensorsimulation", "restricted-demo", "--timeout=120s"
            )
    finally:
        uninstall(cluster, "strict", namespace)


@pytest.fixture(autouse=True)
def _no_stray_operator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-cluster variables would make the local operator ignore its kubeconfig."""
    for key in list(os.environ):
        if key.startswith("KUBERNETES_SERVICE"):
            monkeypatch.delenv(key)

"""The Helm chart renders what DESIGN §7 promises, with defaults and with every option on.

`helm template` and `helm lint` of the pinned helm binary; no cluster (tests/k8s does that).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart_support import (
    ALL_OPTIONS_VALUES,
    CHART_DIR,
    CRD_NAME,
    DEV_VALUES,
    KUBE_VERSION,
    RESTRICTED_UID,
    Manifest,
    find,
    find_all,
    helm,
    kinds,
    parse_manifests,
    pod_specs,
    render,
    restricted_violations,
)

pytestmark = pytest.mark.tools  # helm renders the chart

STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)


def env_of(container: Manifest) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def rules_of(role: Manifest) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples a Role/ClusterRole grants."""
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


NAMESPACED_GRANTS = (
    {("sensorsim.io", "sensorsimulations", verb) for verb in ("get", "list", "watch", "patch")}
    | {("sensorsim.io", "sensorsimulations/status", verb) for verb in ("get", "patch")}
    | {("sensorsim.io", "sensorsimulations/finalizers", "update")}
    | {
        (group, resource, verb)
        for group, resource in (("", "configmaps"), ("", "services"), ("apps", "statefulsets"))
        for verb in ("get", "list", "watch", "create", "patch")
    }
    | {("", "pods", verb) for verb in ("list", "watch")}
    | {("", "events", "create")}
)
CRD_GRANTS = {("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("list", "watch")}
NAMESPACE_GRANTS = {("", "namespaces", verb) for verb in ("list", "watch")}
LEASE_GRANTS = {("coordination.k8s.io", "leases", verb) for verb in ("get", "create", "update")}


@pytest.fixture(scope="module")
def default_render() -> list[Manifest]:
    return render()


@pytest.fixture(scope="module")
def all_options_render() -> list[Manifest]:
    return render("-f", str(ALL_OPTIONS_VALUES), release="everything", namespace="sim-system")


@pytest.fixture(scope="module")
def dev_render() -> list[Manifest]:
    return render("-f", str(DEV_VALUES))


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["kubeVersion"] == ">=1.30.0-0"
    assert chart["version"]
    assert chart["appVersion"]
    assert (CHART_DIR / "values.schema.json").is_file()
    assert (CHART_DIR / "templates" / "NOTES.txt").is_file()


def test_defaults_install_the_operator_and_nothing_else(default_render: list[Manifest]) -> None:
    assert kinds(default_render) == [
        ("ClusterRole", "sensorsim-operator"),
        ("ClusterRoleBinding", "sensorsim-operator"),
        ("Deployment", "sensorsim-operator"),
        ("Role", "sensorsim-leader-election"),
        ("Role", "sensorsim-operator"),
        ("RoleBinding", "sensorsim-leader-election"),
        ("RoleBinding", "sensorsim-operator"),
        ("ServiceAccount", "sensorsim-operator"),
    ]


def test_the_crd_is_the_charts_only_crd() -> None:
    """crds/ holds the operator's generated CRD; helm installs it before the templates."""
    crds = parse_manifests(
        helm(
            "template",
            "sensorsim",
            str(CHART_DIR),
            "--include-crds",
            "--kube-version",
            KUBE_VERSION,
        )
    )
    crd = find(crds, "CustomResourceDefinition")
    assert crd["metadata"]["name"] == CRD_NAME
    assert crd["spec"]["names"]["kind"] == "SensorSimulation"
    assert [p.name for p in (CHART_DIR / "crds").iterdir()] == [f"{CRD_NAME}.yaml"]


def test_every_object_has_the_standard_labels(
    default_render: list[Manifest], all_options_render: list[Manifest]
) -> None:
    for manifest in [*default_render, *all_options_render]:
        labels = manifest["metadata"].get("labels", {})
        missing = [label for label in STANDARD_LABELS if label not in labels]
        assert not missing, f"{manifest['kind']}/{manifest['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


def test_operator_deployment(default_render: list[Manifest]) -> None:
    deployment = find(default_render, "Deployment", "sensorsim-operator")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    # Leader election keeps a rolling update to one active operator: the new pod stands by.
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "sensorsim-operator"
    assert pod["automountServiceAccountToken"] is True
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "sensorsim_operator"]
    assert container["image"] == "sensorsim:0.1.0"
    assert env_of(container) == {
        "WATCH_NAMESPACES": "sensorsim",
        "PRODUCER_IMAGE": "sensorsim:0.1.0",
        "OPERATOR_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        "OPERATOR_LEASE_NAME": "sensorsim-operator",
        "OPERATOR_LEASE_DURATION_SECONDS": "15",
        "OPERATOR_LEASE_RENEW_DEADLINE_SECONDS": "10",
        "OPERATOR_LEASE_RETRY_PERIOD_SECONDS": "2",
        "OPERATOR_HEALTH_PORT": "8080",
        "OPERATOR_METRICS_PORT": "9090",
        "OPERATOR_LOG_LEVEL": "INFO",
        "OPERATOR_LOG_FORMAT": "json",
    }
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    selector = spec["selector"]["matchLabels"]
    assert selector.items() <= spec["template"]["metadata"]["labels"].items()
    assert "app.kubernetes.io/version" not in selector  # selectors are immutable


def test_security_contexts_meet_the_restricted_profile(
    default_render: list[Manifest], all_options_render: list[Manifest], dev_render: list[Manifest]
) -> None:
    checked = 0
    for name, pod in pod_specs([*default_render, *all_options_render, *dev_render]):
        assert restricted_violations(pod) == [], name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["runAsUser"] == RESTRICTED_UID, name
            assert context["readOnlyRootFilesystem"] is True, name
        checked += 1
    assert checked >= 6  # operator x3, Kafka x2, the test pod


SERVICE_ACCOUNT = [
    {"kind": "ServiceAccount", "name": "sensorsim-operator", "namespace": "sensorsim"}
]


def test_default_rbac_is_the_release_namespace_and_least_privilege(
    default_render: list[Manifest],
) -> None:
    cluster_role = find(default_render, "ClusterRole", "sensorsim-operator")
    assert rules_of(cluster_role) == CRD_GRANTS | NAMESPACE_GRANTS
    role = find(default_render, "Role", "sensorsim-operator")
    assert role["metadata"]["namespace"] == "sensorsim"
    assert rules_of(role) == NAMESPACED_GRANTS
    binding = find(default_render, "RoleBinding", "sensorsim-operator")
    assert binding["metadata"]["namespace"] == "sensorsim"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "sensorsim-operator",
    }
    assert binding["subjects"] == SERVICE_ACCOUNT
    cluster_binding = find(default_render, "ClusterRoleBinding", "sensorsim-operator")
    assert cluster_binding["roleRef"]["name"] == "sensorsim-operator"
    assert cluster_binding["subjects"] == SERVICE_ACCOUNT


def test_leader_election_rbac_is_leases_in_the_release_namespace(
    default_render: list[Manifest],
) -> None:
    role = find(default_render, "Role", "sensorsim-leader-election")
    assert role["metadata"]["namespace"] == "sensorsim"
    assert rules_of(role) == LEASE_GRANTS
    binding = find(default_render, "RoleBinding", "sensorsim-leader-election")
    assert binding["metadata"]["namespace"] == "sensorsim"
    assert binding["roleRef"]["name"] == "sensorsim-leader-election"
    assert binding["subjects"] == SERVICE_ACCOUNT


def test_watch_any_namespace_is_cluster_wide() -> None:
    docs = render("--set", "watchAnyNamespace=true")
    cluster_role = find(docs, "ClusterRole", "sensorsim-operator")
    assert rules_of(cluster_role) == NAMESPACED_GRANTS | CRD_GRANTS
    assert [r["metadata"]["name"] for r in find_all(docs, "Role")] == ["sensorsim-leader-election"]
    container = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert env_of(container)["WATCH_NAMESPACES"] == ""


def test_a_standby_operator_and_lease_timing() -> None:
    docs = render(
        "--set",
        "replicaCount=2",
        "--set",
        "leaderElection.leaseName=ops-lease",
        "--set",
        "leaderElection.leaseDurationSeconds=30",
    )
    deployment = find(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["OPERATOR_LEASE_NAME"] == "ops-lease"
    assert env["OPERATOR_LEASE_DURATION_SECONDS"] == "30"


def test_no_role_grants_secrets_or_wildcards(all_options_render: list[Manifest]) -> None:
    roles = find_all(all_options_render, "Role") + find_all(all_options_render, "ClusterRole")
    for role in roles:
        for rule in role["rules"]:
            assert "secrets" not in rule["resources"], role["metadata"]["name"]
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], role["metadata"]["name"]


def test_namespaced_mode_uses_roles_per_namespace(all_options_render: list[Manifest]) -> None:
    docs = all_options_render
    cluster_role = find(docs, "ClusterRole", "sensorsim-all-operator")
    assert rules_of(cluster_role) == CRD_GRANTS | NAMESPACE_GRANTS
    roles = [r for r in find_all(docs, "Role") if r["metadata"]["name"] == "sensorsim-all-operator"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["sim-a", "sim-b"]
    for role in roles:
        assert rules_of(role) == NAMESPACED_GRANTS
    bindings = [
        b
        for b in find_all(docs, "RoleBinding")
        if b["metadata"]["name"] == "sensorsim-all-operator"
    ]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["sim-a", "sim-b"]
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "sensorsim-all-operator",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "sensorsim-operator-sa", "namespace": "sim-system"}
        ]
    container = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert env_of(container)["WATCH_NAMESPACES"] == "sim-a,sim-b"


def test_all_options(all_options_render: list[Manifest]) -> None:
    docs = all_options_render
    assert {kind for kind, _ in kinds(docs)} == {
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "PodMonitor",
        "PrometheusRule",
        "Pod",
        "Role",
        "RoleBinding",
        "SensorSimulation",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
        "StatefulSet",
    }
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    digest = "sha256:" + "0123456789abcdef" * 4
    assert container["image"] == f"registry.example.com/sensorsim/sensorsim@{digest}"
    assert container["command"][:2] == ["python", "-X"]
    env = env_of(container)
    assert env["PRODUCER_IMAGE"] == "registry.example.com/sensorsim/producer:0.1.0"
    assert env["OPERATOR_HEALTH_PORT"] == "8081"
    assert env["OPERATOR_RESYNC_SECONDS"] == "120"
    assert "readinessProbe" not in container
    assert [s["name"] for s in pod["imagePullSecrets"]] == [
        "global-pull-secret",
        "image-pull-secret",
    ]
    assert {v["name"] for v in pod["volumes"]} == {"tmp", "extra-config"}
    for manifest in docs:
        assert manifest["metadata"]["labels"]["team"] == "data-platform"
        assert manifest["metadata"]["annotations"]["example.com/owner"] == "data-platform"
    aggregated = {m["metadata"]["name"] for m in find_all(docs, "ClusterRole")}
    assert aggregated == {"sensorsim-all-operator", "sensorsim-all-view", "sensorsim-all-edit"}
    metrics = find(docs, "Service", "sensorsim-all-operator-metrics")
    assert metrics["spec"]["ports"][0]["port"] == 9191
    assert metrics["spec"]["ports"][0]["targetPort"] == "metrics"
    monitor = find(docs, "ServiceMonitor")
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["spec"]["endpoints"][0]["interval"] == "30s"


def test_metrics_annotations_never_name_a_stale_port(all_options_render: list[Manifest]) -> None:
    """Annotation-based scraping goes to the pod's metrics port (9091 in all-options)."""
    metrics = find(all_options_render, "Service", "sensorsim-all-operator-metrics")
    annotations = metrics["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations.get("prometheus.io/port", "9091") == "9091"


@pytest.mark.parametrize(
    "flags",
    [
        ["--set", "fullnameOverride=" + "f" * 46],
        ["--set", "fullnameOverride="],  # the release name below, 53 characters (Helm's longest)
    ],
    ids=["longest-fullnameOverride", "longest-release-name"],
)
def test_long_names_give_valid_object_names(flags: list[str]) -> None:
    docs = render("-f", str(ALL_OPTIONS_VALUES), *flags, release="r" * 53, namespace="sim-system")
    for manifest in docs:
        name = manifest["metadata"]["name"]
        assert len(name) <= 63, f"{manifest['kind']}/{name} is longer than a DNS label"
    for statefulset in find_all(docs, "StatefulSet"):
        # Its pods get the label controller-revision-hash=<name>-<10 characters>.
        assert len(statefulset["metadata"]["name"]) <= 52


def test_simulations_default_to_the_dev_kafka(all_options_render: list[Manifest]) -> None:
    simulations = {
        m["metadata"]["name"]: m for m in find_all(all_options_render, "SensorSimulation")
    }
    assert set(simulations) == {"line-a", "line-b"}
    line_a = simulations["line-a"]
    assert line_a["apiVersion"] == "sensorsim.io/v1alpha1"
    assert line_a["metadata"]["namespace"] == "sim-a"
    assert line_a["metadata"]["labels"]["example.com/line"] == "a"
    assert line_a["spec"]["replicas"] == 2
    assert line_a["spec"]["kafka"] == {
        "bootstrapServers": "sensorsim-all-kafka.sim-system.svc.cluster.example:9094",
        "topic": "line-a",
    }
    # An explicit address wins over the dev Kafka.
    assert simulations["line-b"]["spec"]["kafka"]["bootstrapServers"] == "kafka.example.com:9092"


def test_dev_kafka(all_options_render: list[Manifest]) -> None:
    docs = all_options_render
    statefulset = find(docs, "StatefulSet", "sensorsim-all-kafka")
    spec = statefulset["spec"]
    assert spec["replicas"] == 1
    assert spec["serviceName"] == "sensorsim-all-kafka-headless"
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example.com/apache/kafka:4.1.1"
    script = container["args"][0]
    assert "kafka-storage.sh format" in script
    assert "kafka-server-start.sh" in script
    assert pod["automountServiceAccountToken"] is False
    claim = spec["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert claim["spec"]["storageClassName"] == "standard"
    assert "data" not in {v["name"] for v in pod["volumes"]}  # the claim provides it
    checksum = spec["template"]["metadata"]["annotations"]["checksum/config"]
    assert len(checksum) == 64
    config = find(docs, "ConfigMap", "sensorsim-all-kafka")["data"]["server.properties"]
    properties = dict(
        line.split("=", 1) for line in config.splitlines() if line and not line.startswith("#")
    )
    assert properties["process.roles"] == "broker,controller"
    assert properties["num.partitions"] == "3"
    assert properties["auto.create.topics.enable"] == "false"
    assert properties["log.segment.bytes"] == "16777216"  # extraConfig
    client = find(docs, "Service", "sensorsim-all-kafka")
    assert client["spec"]["ports"][0]["port"] == 9094
    headless = find(docs, "Service", "sensorsim-all-kafka-headless")
    assert headless["spec"]["clusterIP"] == "None"


def test_dev_kafka_without_persistence_uses_an_empty_dir() -> None:
    docs = render("--set", "kafka.enabled=true")
    pod = find(docs, "StatefulSet")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}
    assert "volumeClaimTemplates" not in find(docs, "StatefulSet")["spec"]


def test_helm_test_pod(dev_render: list[Manifest]) -> None:
    pod = find(dev_render, "Pod", "sensorsim-test-records")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    (container,) = spec["containers"]
    assert container["command"][:2] == ["python", "-c"]
    assert container["command"][2] == (CHART_DIR / "files" / "check_records.py").read_text()
    env = env_of(container)
    assert env["TEST_BOOTSTRAP_SERVERS"] == "sensorsim-kafka.sensorsim.svc.cluster.local:9092"
    assert env["TEST_TOPIC"] == "sensor-data"
    assert env["TEST_MIN_RECORDS"] == "10"


def test_no_test_pod_without_a_bootstrap_address(default_render: list[Manifest]) -> None:
    assert not find_all(default_render, "Pod")
    docs = render("--set", "tests.bootstrapServers=kafka.example.com:9092")
    assert find(docs, "Pod")["spec"]["containers"][0]["env"][0]["value"] == "kafka.example.com:9092"


def test_dev_values_match_skaffold(dev_render: list[Manifest]) -> None:
    names = {name for _, name in kinds(dev_render)}
    assert {"sensorsim-operator-metrics", "demo", "sensorsim-kafka"} <= names


def test_minimum_kubernetes_version_renders() -> None:
    render("--kube-version", "1.30.0", "-f", str(ALL_OPTIONS_VALUES))
    error = helm("template", "x", str(CHART_DIR), "--kube-version", "1.29.9", check=False)
    assert "kubeVersion" in error or "incompatible" in error.lower()


@pytest.mark.parametrize(
    "values",
    [None, ALL_OPTIONS_VALUES, DEV_VALUES],
    ids=["defaults", "all-options", "dev"],
)
def test_lint_strict_is_clean(values: Any) -> None:
    args = ["lint", "--strict", str(CHART_DIR), "--kube-version", KUBE_VERSION]
    if values is not None:
        args += ["-f", str(values)]
    output = helm(*args)
    assert "0 chart(s) failed" in output
    assert "[WARNING]" not in output
    assert "[ERROR]" not in output


def test_plain_helm_lint_is_clean() -> None:
    """`helm lint --strict charts/sensorsim` exactly as documented, with helm's compiled-in
    Kubernetes version. (A helm built without Helm's Makefile ldflags for
    pkg/chartutil.k8sVersionMajor/Minor defaults to v1.20 and fails the chart's kubeVersion.)"""
    output = helm("lint", "--strict", str(CHART_DIR))
    assert "0 chart(s) failed" in output


def test_notes_tell_the_next_command(tmp_path: Path) -> None:
    # `helm template` does not print NOTES.txt: render a copy of it through tpl in a template.
    chart = tmp_path / "sensorsim"
    shutil.copytree(CHART_DIR, chart)
    shutil.copy(CHART_DIR / "templates" / "NOTES.txt", chart / "files" / "NOTES.txt")
    (chart / "templates" / "notes-preview.yaml").write_text(
        'notes: |\n{{ tpl (.Files.Get "files/NOTES.txt") . | indent 2 }}\n'
    )
    rendered = helm(
        "template",
        "sensorsim",
        str(chart),
        "-n",
        "sensorsim",
        "--kube-version",
        KUBE_VERSION,
        "-f",
        str(DEV_VALUES),
        "--show-only",
        "templates/notes-preview.yaml",
    )
    notes = str(yaml.safe_load(rendered)["notes"])
    assert "kubectl -n sensorsim rollout status deployment/sensorsim-operator" in notes
    assert "kubectl -n sensorsim rollout status statefulset/sensorsim-kafka" in notes
    assert "kubectl -n sensorsim get sensorsimulation demo" in notes
    assert "helm test sensorsim -n sensorsim --logs" in notes
    assert "kubectl apply --server-side -f charts/sensorsim/crds/" in notes
    assert "{{" not in notes

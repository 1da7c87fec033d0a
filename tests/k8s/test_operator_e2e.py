"""The operator against a real control plane (kube-apiserver, controller-manager, scheduler,
kwok): what the operator does with a simulation's children, status, scale, suspension and
failures. The data plane end to end, with the producer pods as real containers, is in
test_pods_as_containers.py.

The operator runs as a subprocess (``python -m sensorsim_operator``), exactly as in its pod,
with the cluster's kubeconfig; each test gets its own namespace that enforces the Pod Security
"restricted" profile, so every producer pod that exists has passed it.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from domain.partitioning import shard_table
from sensorsim_operator.children.pod_resources import need_bytes, quantity
from testbed.cluster import KubeCluster
from testbed.operator import OperatorProcess
from testbed.polling import WaitTimeoutError, log_tail, wait_until
from testbed.watching import Change, Watch

pytestmark = pytest.mark.k8s

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "charts" / "sensorsim" / "crds" / "sensorsimulations.sensorsim.io.yaml"
MINIMAL = REPO / "examples" / "minimal.yaml"
COMPLETE = REPO / "examples" / "complete.yaml"
GROUP_VERSION = "sensorsim.io/v1alpha1"
HASH_ANNOTATION = "sensorsim.io/config-hash"
STREAM_HASH_ANNOTATION = "sensorsim.io/stream-hash"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
TIMEOUT = 180.0

T = TypeVar("T")


# --- helpers ------------------------------------------------------------------------------


class Api:
    """kubectl, parsed."""

    def __init__(self, cluster: KubeCluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return self.cluster.kubectl("-n", self.namespace, *args, input=input).stdout

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        result = self.cluster.kubectl(
            "-n", self.namespace, "get", kind, name, "-o", "json", check=False
        )
        if result.returncode != 0:
            assert "NotFound" in result.stderr, result.stderr
            return None
        found: dict[str, Any] = json.loads(result.stdout)
        return found

    def items(self, kind: str, selector: str) -> list[dict[str, Any]]:
        listing = json.loads(self.kubectl("get", kind, "-l", selector, "-o", "json"))
        items: list[dict[str, Any]] = listing["items"]
        return items

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def dry_run(self, manifest: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        """``kubectl apply --dry-run=server``: admission in full, nothing stored."""
        return self.cluster.kubectl(
            "-n",
            self.namespace,
            "apply",
            "--dry-run=server",
            "-f",
            "-",
            input=json.dumps(manifest),
            check=False,
        )

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.kubectl("patch", "sensim", name, "--type", "merge", "-p", json.dumps({"spec": spec}))

    def simulation(self, name: str) -> dict[str, Any]:
        found = self.get("sensim", name)
        assert found is not None, f"SensorSimulation {name} is gone"
        return found

    def pods(self, simulation: str) -> list[dict[str, Any]]:
        return self.items("pods", f"app.kubernetes.io/instance={simulation}")


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for entry in obj.get("status", {}).get("conditions", []):
        if entry["type"] == kind:
            found: dict[str, Any] = entry
            return found
    return {}


def settled_ready(api: Api, name: str) -> dict[str, Any] | None:
    """The simulation once its status says: this generation applied, all shards Ready."""
    obj = api.simulation(name)
    status = obj.get("status", {})
    if (
        status.get("observedGeneration") == obj["metadata"]["generation"]
        and condition(obj, "Ready").get("status") == "True"
        and status.get("readyReplicas") == obj["spec"]["replicas"]
        and status.get("replicas") == obj["spec"]["replicas"]
    ):
        return obj
    return None


def wait_ready(api: Api, name: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    try:
        return wait_until(
            lambda: settled_ready(api, name), timeout=timeout, message=f"{name} Ready"
        )
    except WaitTimeoutError as error:
        obj = api.get("sensim", name) or {}
        detail = f"spec: {obj.get('spec')}\nstatus: {obj.get('status')}"
        raise AssertionError(f"{error}\n{detail}") from None


def minimal_example(name: str = "minimal", **spec: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load(MINIMAL.read_text())
    manifest["metadata"]["name"] = name
    manifest["spec"] |= spec
    return manifest


def children_versions(api: Api, name: str) -> dict[str, str]:
    versions = {}
    for kind, child in (
        ("statefulset", name),
        ("service", name),
        ("configmap", f"{name}-settings"),
    ):
        obj = api.get(kind, child)
        assert obj is not None, f"{kind}/{child} missing"
        versions[kind] = obj["metadata"]["resourceVersion"]
    return versions


def settled_versions(api: Api, name: str, quiet: float = 3.0) -> dict[str, str]:
    """The children's resourceVersions once none has changed for ``quiet`` seconds."""
    versions = children_versions(api, name)
    since = time.monotonic()

    def unchanged_for_quiet_period() -> dict[str, str] | None:
        nonlocal versions, since
        now = children_versions(api, name)
        if now != versions:
            versions, since = now, time.monotonic()
        return versions if time.monotonic() - since >= quiet else None

    return wait_until(
        unchanged_for_quiet_period, timeout=TIMEOUT, interval=0.5, message="children to settle"
    )


def container_env(stateful_set: dict[str, Any]) -> dict[str, dict[str, Any]]:
    container = stateful_set["spec"]["template"]["spec"]["containers"][0]
    return {entry["name"]: entry for entry in container["env"]}


def rolled_out(api: Api, name: str) -> dict[str, Any] | None:
    """The StatefulSet once it has the simulation's replica count (not the 0 of a handover in
    progress) and every pod runs its latest revision."""
    sts = api.get("statefulset", name)
    simulation = api.get("sensorsimulation", name)
    if sts is None or simulation is None:
        return None
    spec = simulation.get("spec", {})
    if sts["spec"]["replicas"] != (0 if spec.get("suspend") else spec.get("replicas")):
        return None
    status = sts.get("status", {})
    revision = status.get("updateRevision")
    pods = api.pods(name)
    if (
        status.get("observedGeneration", 0) >= sts["metadata"]["generation"]
        and status.get("currentRevision") == revision
        and len(pods) == sts["spec"]["replicas"]
        and all(p["metadata"]["labels"].get("controller-revision-hash") == revision for p in pods)
        and all("deletionTimestamp" not in p["metadata"] for p in pods)
    ):
        return sts
    return None


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crd(k8s_cluster: KubeCluster) -> None:
    k8s_cluster.kubectl("apply", "--server-side", "-f", str(CRD_FILE))

    # Not `kubectl wait`: it fails outright when it reads the CRD before the API server has
    # written any condition (".status.conditions accessor error").
    def established() -> bool:
        found = k8s_cluster.kubectl(
            "get",
            "crd/sensorsimulations.sensorsim.io",
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Established")].status}',
        )
        return found.stdout.strip() == "True"

    wait_until(established, timeout=TIMEOUT, message="the CRD to be established")


@pytest.fixture(scope="module")
def operator(
    k8s_cluster: KubeCluster, crd: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    running = OperatorProcess(
        k8s_cluster.env,
        tmp_path_factory.mktemp("operator") / "operator.log",
        WATCH_NAMESPACES="",
        PRODUCER_IMAGE="sensorsim:e2e",
        OPERATOR_RESYNC_SECONDS="60",
    )
    assert "KUBERNETES_SERVICE_HOST" not in k8s_cluster.env
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def resync_off(operator: OperatorProcess) -> Iterator[OperatorProcess]:
    """The module's operator, restarted without its periodic resync for one test."""
    operator.stop()
    operator.settings["OPERATOR_RESYNC_SECONDS"] = "0"
    operator.start()
    try:
        yield operator
    finally:
        operator.stop()
        operator.settings["OPERATOR_RESYNC_SECONDS"] = "60"
        operator.start()


@pytest.fixture
def api(k8s_cluster: KubeCluster, operator: OperatorProcess) -> Iterator[Api]:
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"
    k8s_cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": namespace,
                    "labels": {
                        "pod-security.kubernetes.io/enforce": "restricted",
                        "pod-security.kubernetes.io/enforce-version": "latest",
                    },
                },
            }
        ),
    )
    yield Api(k8s_cluster, namespace)
    if operator.process is not None and operator.process.poll() is not None:
        print(log_tail(operator.log_file, 80))
    k8s_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


# --- the resource and its children ----------------------------------------------------------


def test_minimal_example_creates_owned_children_and_reports_ready(api: Api) -> None:
    api.kubectl("apply", "-f", str(MINIMAL))
    obj = wait_ready(api, "minimal")
    uid = obj["metadata"]["uid"]
    for kind, child in (
        ("configmap", "minimal-settings"),
        ("service", "minimal"),
        ("statefulset", "minimal"),
    ):
        found = api.get(kind, child)
        assert found is not None, f"{kind}/{child}"
        [owner] = found["metadata"]["ownerReferences"]
        assert owner["uid"] == uid
        assert owner["kind"] == "SensorSimulation"
        assert owner["controller"] is True
    pods = api.pods("minimal")
    assert sorted(p["metadata"]["name"] for p in pods) == ["minimal-0", "minimal-1", "minimal-2"]
    assert all(
        any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])
        for p in pods
    )
    status = obj["status"]
    expected = shard_table(12, 3)
    assert [(s["ordinal"], s["start"], s["stop"]) for s in status["shards"]] == [
        (r.shard, r.start, r.stop) for r in expected
    ]
    sts = api.get("statefulset", "minimal")
    assert sts is not None
    assert (
        status["configHash"] == sts["spec"]["template"]["metadata"]["annotations"][HASH_ANNOTATION]
    )
    assert condition(obj, "Progressing")["status"] == "False"
    assert condition(obj, "Degraded")["status"] == "False"
    assert {"lastTransitionTime", "reason", "message"} <= condition(obj, "Ready").keys()


def test_scale_subresource_drives_shards_and_serves_an_hpa(
    api: Api, k8s_cluster: KubeCluster
) -> None:
    api.kubectl("apply", "-f", str(MINIMAL))
    wait_ready(api, "minimal")
    api.kubectl("scale", "sensim/minimal", "--replicas=5")
    obj = wait_ready(api, "minimal")
    sts = wait_until(
        lambda: rolled_out(api, "minimal"), timeout=TIMEOUT, message="rollout to 5 shards"
    )
    assert sts["spec"]["replicas"] == 5
    assert container_env(sts)["SHARD_COUNT"]["value"] == "5"
    assert [(s["start"], s["stop"]) for s in obj["status"]["shards"]] == [
        (r.start, r.stop) for r in shard_table(12, 5)
    ]

    def scale_settled() -> dict[str, Any] | None:
        # status.replicas is written by the reconcile after the rollout (0 during the handover)
        scale: dict[str, Any] = json.loads(
            k8s_cluster.kubectl(
                "get",
                "--raw",
                f"/apis/{GROUP_VERSION}/namespaces/{api.namespace}/sensorsimulations/minimal/scale",
            ).stdout
        )
        return scale if scale["status"].get("replicas") == 5 else None

    scale = wait_until(
        scale_settled, timeout=TIMEOUT, message="the scale subresource to report 5 replicas"
    )
    assert scale["spec"]["replicas"] == 5
    selector = scale["status"]["selector"]
    assert len(api.items("pods", selector)) == 5

    api.apply(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "minimal", "namespace": api.namespace},
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": GROUP_VERSION,
                    "kind": "SensorSimulation",
                    "name": "minimal",
                },
                "minReplicas": 1,
                "maxReplicas": 6,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 80},
                        },
                    }
                ],
            },
        }
    )

    def hpa_read_the_scale() -> dict[str, Any] | None:
        hpa = api.get("hpa", "minimal")
        if hpa is None:
            return None
        conditions = {c["type"]: c for c in hpa.get("status", {}).get("conditions", [])}
        able = conditions.get("AbleToScale", {})
        active = conditions.get("ScalingActive", {})
        if able.get("status") == "True" and active and hpa["status"].get("currentReplicas"):
            return hpa
        return None

    hpa = wait_until(
        hpa_read_the_scale, timeout=90, message="the HPA to read the /scale subresource"
    )
    assert hpa["status"]["currentReplicas"] == 5
    # No metrics server here: the HPA got past the selector and failed only on metrics.
    active = next(c for c in hpa["status"]["conditions"] if c["type"] == "ScalingActive")
    assert active["reason"] != "InvalidSelector", active


def stream_hashes_over_time(changes: list[Change]) -> list[set[str]]:
    """After each watch event, the stream hashes of the pods that existed then."""
    alive: dict[str, str] = {}
    moments = []
    for change in changes:
        pod = change.object
        name = pod["metadata"]["name"]
        if change.type == "DELETED":
            alive.pop(name, None)
        else:
            alive[name] = pod["metadata"].get("annotations", {}).get(STREAM_HASH_ANNOTATION, "")
        moments.append(set(alive.values()))
    return moments


def test_a_change_that_keeps_the_stream_rolls_the_pods(api: Api) -> None:
    api.kubectl("apply", "-f", str(MINIMAL))
    before = wait_ready(api, "minimal")
    sts_before = wait_until(
        lambda: rolled_out(api, "minimal"), timeout=TIMEOUT, message="initial rollout"
    )
    api.patch_spec("minimal", {"logLevel": "DEBUG"})
    after = wait_ready(api, "minimal")
    assert after["status"]["configHash"] != before["status"]["configHash"]
    assert after["status"]["observedGeneration"] == before["status"]["observedGeneration"] + 1
    sts_after = wait_until(
        lambda: rolled_out(api, "minimal"), timeout=TIMEOUT, message="rollout of the new revision"
    )
    assert sts_after["status"]["updateRevision"] != sts_before["status"]["updateRevision"]
    assert container_env(sts_after)["LOG_LEVEL"]["value"] == "DEBUG"
    template = sts_after["spec"]["template"]["metadata"]["annotations"]
    assert (
        template[STREAM_HASH_ANNOTATION]
        == (sts_before["spec"]["template"]["metadata"]["annotations"][STREAM_HASH_ANNOTATION])
    )


@pytest.mark.parametrize(
    "change",
    [{"machines": 9}, {"failures": {"probability": 0.2}}],
    ids=["machines", "failure-probability"],
)
def test_a_stream_change_stops_every_old_pod_before_a_new_one_exists(
    api: Api, k8s_cluster: KubeCluster, change: dict[str, Any]
) -> None:
    api.kubectl("apply", "-f", str(MINIMAL))
    before = wait_ready(api, "minimal")
    sts_before = wait_until(
        lambda: rolled_out(api, "minimal"), timeout=TIMEOUT, message="initial rollout"
    )
    old_hash = sts_before["spec"]["template"]["metadata"]["annotations"][STREAM_HASH_ANNOTATION]
    watch = Watch(k8s_cluster, api.namespace, "pods", "app.kubernetes.io/instance=minimal")
    wait_until(
        lambda: len(watch.snapshot()) >= 3,
        timeout=TIMEOUT,
        message="the watch to list the running pods",
    )
    api.patch_spec("minimal", change)
    after = wait_ready(api, "minimal")
    sts_after = wait_until(
        lambda: rolled_out(api, "minimal"), timeout=TIMEOUT, message="the new pods"
    )
    changes = watch.stop()

    new_hash = sts_after["spec"]["template"]["metadata"]["annotations"][STREAM_HASH_ANNOTATION]
    assert new_hash != old_hash
    moments = stream_hashes_over_time(changes)
    assert {old_hash} in moments
    assert {new_hash} in moments
    assert all(len(hashes) <= 1 for hashes in moments), moments
    assert after["status"]["observedGeneration"] == before["status"]["observedGeneration"] + 1
    assert after["status"].get("handoverSince") is None
    assert condition(after, "Degraded")["status"] == "False"
    settings = api.get("configmap", "minimal-settings")
    assert settings is not None
    env = container_env(sts_after)
    expected = {"NUM_MACHINES": "9" if "machines" in change else "12"}
    if "failures" in change:
        expected["FAILURE_PROBABILITY"] = "0.2"
    else:  # unset: the start chance follows from the failing share
        assert "FAILURE_PROBABILITY" not in env
    for key, value in expected.items():
        assert env[key]["value"] == value
        assert settings["data"][key] == value
    assert env["SIMULATION_UID"]["value"] == after["metadata"]["uid"]
    grace = sts_after["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert env["SHUTDOWN_GRACE_SECONDS"]["value"] == str(grace)


def test_the_seed_cannot_change_nor_be_added_or_removed(api: Api) -> None:
    api.apply(minimal_example("seeded", seed=5))
    api.apply(minimal_example("unseeded"))
    for name, patch in (
        ("seeded", {"spec": {"seed": 6}}),
        ("seeded", {"spec": {"seed": None}}),
        ("unseeded", {"spec": {"seed": 6}}),
    ):
        result = api.cluster.kubectl(
            "-n",
            api.namespace,
            "patch",
            "sensim",
            name,
            "--type",
            "merge",
            "-p",
            json.dumps(patch),
            check=False,
        )
        assert result.returncode != 0, (name, patch, result.stdout)
        assert "spec.seed is immutable" in result.stderr, result.stderr
        assert "create a new SensorSimulation" in result.stderr, result.stderr
    assert api.simulation("seeded")["spec"]["seed"] == 5
    assert "seed" not in api.simulation("unseeded")["spec"]
    # Other fields of a seeded simulation still change.
    api.patch_spec("seeded", {"machines": 9})


def test_the_longest_topic_admitted_leaves_room_for_its_state_topic(api: Api) -> None:
    longest = 249 - len("-state")
    for length, admitted in ((longest, True), (longest + 1, False)):
        manifest = minimal_example(
            "topic", kafka={"bootstrapServers": "k:9092", "topic": "t" * length}
        )
        result = api.dry_run(manifest)
        assert (result.returncode == 0) == admitted, result.stderr
        if not admitted:
            assert "spec.kafka.topic" in result.stderr, result.stderr


def test_labels_or_annotations_of_the_simulation_roll_nothing(
    api: Api, operator: OperatorProcess
) -> None:
    api.kubectl("apply", "-f", str(MINIMAL))
    wait_ready(api, "minimal")
    sts = wait_until(lambda: rolled_out(api, "minimal"), timeout=TIMEOUT, message="initial rollout")
    versions = children_versions(api, "minimal")
    pods = {p["metadata"]["uid"] for p in api.pods("minimal")}
    updates = operator.metric("sensorsim_operator_reconciles_total", trigger="update")
    api.kubectl("label", "sensim/minimal", "team=reliability")
    api.kubectl("annotate", "sensim/minimal", "note=only-metadata")

    def handled() -> bool:
        # kopf records what it handled; both changes must be in it, and a reconcile ran.
        annotations = api.simulation("minimal")["metadata"].get("annotations", {})
        last = annotations.get("sensorsim.io/last-handled-configuration", "")
        reconciled = operator.metric("sensorsim_operator_reconciles_total", trigger="update")
        return "reliability" in last and "only-metadata" in last and reconciled > updates

    # The reconcile counter moves when a reconcile has finished: whatever it would have
    # applied has been applied by then.
    wait_until(handled, timeout=TIMEOUT, message="the operator to handle the metadata changes")
    assert children_versions(api, "minimal") == versions
    assert {p["metadata"]["uid"] for p in api.pods("minimal")} == pods
    again = api.get("statefulset", "minimal")
    assert again is not None
    assert again["status"]["updateRevision"] == sts["status"]["updateRevision"]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"replicas": 5, "machines": 4}, "spec.replicas"),
        ({"failures": {"minCycles": 70, "maxCycles": 60}}, "spec.failures.minCycles"),
        ({"intervalMs": -100}, "spec.intervalMs"),
        ({"messageFormat": "avro"}, "spec.messageFormat"),
        ({"kafka": {"topic": "t"}}, "spec.kafka.bootstrapServers"),
        # Rejected at admission instead of failing later when the StatefulSet is applied:
        ({"podTemplate": {"tolerations": [{}]}}, "spec.podTemplate.tolerations[0].operator"),
        ({"podTemplate": {"labels": {"bad key!": "x"}}}, "spec.podTemplate.labels"),
        (
            {"resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "512Mi"}}},
            "spec.resources.requests.memory",
        ),
    ],
)
def test_invalid_objects_are_rejected_naming_the_field(
    api: Api, k8s_cluster: KubeCluster, spec: dict[str, Any], field: str
) -> None:
    manifest = minimal_example("invalid", **spec)
    result = k8s_cluster.kubectl(
        "-n", api.namespace, "apply", "-f", "-", input=json.dumps(manifest), check=False
    )
    assert result.returncode != 0, result.stdout
    assert field in result.stderr, result.stderr
    assert api.get("sensim", "invalid") is None


def test_invalid_name_is_rejected(api: Api, k8s_cluster: KubeCluster) -> None:
    manifest = minimal_example("x" * 53)
    result = k8s_cluster.kubectl(
        "-n", api.namespace, "apply", "-f", "-", input=json.dumps(manifest), check=False
    )
    assert result.returncode != 0
    assert "metadata.name must be at most 52 characters" in result.stderr


def test_the_complete_example_is_accepted(api: Api, k8s_cluster: KubeCluster) -> None:
    result = k8s_cluster.kubectl(
        "-n", api.namespace, "apply", "--dry-run=server", "-f", str(COMPLETE), check=False
    )
    assert result.returncode == 0, result.stderr


def test_operator_restart_creates_no_duplicate_and_changes_nothing(
    api: Api, operator: OperatorProcess
) -> None:
    api.kubectl("apply", "-f", str(MINIMAL))
    wait_ready(api, "minimal")
    wait_until(lambda: rolled_out(api, "minimal"), timeout=TIMEOUT, message="initial rollout")
    # The StatefulSet controller and kwok keep updating the StatefulSet's status for a moment
    # after the pods are Ready; compare from a quiet state.
    versions = settled_versions(api, "minimal")
    before = api.get("statefulset", "minimal")
    status = api.simulation("minimal")["status"]
    pods = {p["metadata"]["uid"] for p in api.pods("minimal")}

    operator.stop()
    operator.start()
    # kopf runs no handler before its indexes hold every child and pod: the resume reconcile
    # compares all of them (the children's own events coalesce into it).
    wait_until(
        lambda: operator.metric("sensorsim_operator_reconciles_total", trigger="resume") >= 1,
        timeout=TIMEOUT,
        message="the restarted operator to resume the simulations",
    )
    # The counter counts finished reconciles: any apply it made is visible now.
    after = api.get("statefulset", "minimal")
    assert after is not None
    assert before is not None
    assert children_versions(api, "minimal") == versions, (
        before["metadata"]["managedFields"],
        after["metadata"]["managedFields"],
    )
    assert api.simulation("minimal")["status"] == status
    assert {p["metadata"]["uid"] for p in api.pods("minimal")} == pods
    selector = "app.kubernetes.io/instance=minimal"
    for kind in ("statefulsets", "services", "configmaps"):
        assert len(api.items(kind, selector)) == 1, kind


def test_deleting_the_simulation_removes_its_children(api: Api) -> None:
    api.kubectl("apply", "-f", str(MINIMAL))
    wait_ready(api, "minimal")
    api.kubectl("delete", "sensim", "minimal", "--wait=true")

    def all_gone() -> bool:
        return all(
            api.get(kind, name) is None
            for kind, name in (
                ("statefulset", "minimal"),
                ("service", "minimal"),
                ("configmap", "minimal-settings"),
            )
        ) and not api.pods("minimal")

    wait_until(all_gone, timeout=TIMEOUT, message="the garbage collector to remove the children")


def test_a_deleted_child_is_restored(api: Api) -> None:
    api.kubectl("apply", "-f", str(MINIMAL))
    wait_ready(api, "minimal")
    service = api.get("service", "minimal")
    assert service is not None
    api.kubectl("delete", "service", "minimal")

    def recreated() -> bool:
        found = api.get("service", "minimal")
        return found is not None and found["metadata"]["uid"] != service["metadata"]["uid"]

    wait_until(recreated, timeout=TIMEOUT, message="the Service to be recreated")


def test_suspend_and_resume(api: Api) -> None:
    api.kubectl("apply", "-f", str(MINIMAL))
    running = wait_ready(api, "minimal")
    revision = wait_until(lambda: rolled_out(api, "minimal"), timeout=TIMEOUT, message="rollout")[
        "status"
    ]["updateRevision"]

    api.patch_spec("minimal", {"suspend": True})

    def suspended() -> dict[str, Any] | None:
        obj = api.simulation("minimal")
        ready = condition(obj, "Ready")
        sts = api.get("statefulset", "minimal")
        if (
            obj["status"].get("observedGeneration") == obj["metadata"]["generation"]
            and ready.get("reason") == "Suspended"
            and obj["status"]["replicas"] == 0
            and sts is not None
            and sts["spec"]["replicas"] == 0
            and not api.pods("minimal")
        ):
            return obj
        return None

    stopped = wait_until(suspended, timeout=TIMEOUT, message="suspension")
    assert condition(stopped, "Ready")["status"] == "False"
    assert stopped["status"]["shards"] == []
    assert condition(stopped, "Progressing")["reason"] == "Suspended"

    api.patch_spec("minimal", {"suspend": False})
    resumed = wait_ready(api, "minimal")
    assert resumed["status"]["configHash"] == running["status"]["configHash"]
    sts = wait_until(lambda: rolled_out(api, "minimal"), timeout=TIMEOUT, message="pods back")
    assert sts["status"]["updateRevision"] == revision  # same pods, no new revision
    assert len(resumed["status"]["shards"]) == 3


# --- admission refuses what the producer would refuse ---------------------------------------


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"kafka": {"bootstrapServers": "kafka:0"}}, "spec.kafka.bootstrapServers"),
        ({"kafka": {"bootstrapServers": "kafka:99999"}}, "spec.kafka.bootstrapServers"),
        ({"kafka": {"bootstrapServers": "k:9092", "topic": "."}}, "spec.kafka.topic"),
        ({"kafka": {"bootstrapServers": "k:9092", "topic": ".."}}, "spec.kafka.topic"),
        (
            {"kafka": {"bootstrapServers": "k:9092", "topic": "__consumer_offsets"}},
            "spec.kafka.topic",
        ),
        ({"sensors": 21}, "spec.sensors"),
        ({"machines": 1_000_001, "replicas": 1}, "spec.machines"),
        ({"model": "walk"}, "spec.model"),
        ({"persistence": 1}, "spec.persistence"),
        ({"failures": {"probability": 1.5}}, "spec.failures.probability"),
        ({"seed": -1}, "spec.seed"),
    ],
)
def test_server_side_dry_run_refuses_what_the_producer_refuses(
    api: Api, spec: dict[str, Any], field: str
) -> None:
    result = api.dry_run(minimal_example("refused", **spec))
    assert result.returncode != 0, result.stdout
    assert field in result.stderr, result.stderr
    assert "Invalid value" in result.stderr, result.stderr


def test_messages_say_what_to_fix(api: Api) -> None:
    def refusal(**spec: Any) -> str:
        return api.dry_run(minimal_example("refused", **spec)).stderr

    assert "port of 1-65535" in refusal(kafka={"bootstrapServers": "kafka:0"})
    assert "Kafka's internal topics" in refusal(
        kafka={"bootstrapServers": "k:9092", "topic": "__consumer_offsets"}
    )
    assert "give referenceData with more columns" in refusal(sensors=21)
    assert "raise replicas" in refusal(machines=1_000_001, replicas=1)
    # With a reference CSV of the user's, more sensors are the user's call.
    wide = minimal_example("wide", sensors=40, referenceData={"configMapName": "csv"})
    accepted = api.dry_run(wide)
    assert accepted.returncode == 0, accepted.stderr


def test_a_million_machines_on_one_pod_get_memory_for_them(api: Api) -> None:
    api.apply(minimal_example("million", machines=1_000_000, replicas=1))
    sts = wait_until(
        lambda: api.get("statefulset", "million"), timeout=TIMEOUT, message="the StatefulSet"
    )
    resources = sts["spec"]["template"]["spec"]["containers"][0]["resources"]
    # At least the memory docs/operator.md ("Memory") gives for 1,000,000 machines.
    sensors = sts_sensors(sts)
    assert quantity(resources["limits"]["memory"]) >= need_bytes(1_000_000, 1, sensors)
    assert quantity(resources["requests"]["memory"]) >= need_bytes(1_000_000, 1, sensors)


def sts_sensors(sts: dict[str, Any]) -> int:
    env = sts["spec"]["template"]["spec"]["containers"][0]["env"]
    return int(next(e["value"] for e in env if e["name"] == "NUM_SENSORS"))


def test_a_memory_limit_below_the_need_is_refused_naming_the_need(api: Api) -> None:
    api.apply(
        minimal_example(
            "starved", machines=100_000, replicas=1, resources={"limits": {"memory": "256Mi"}}
        )
    )

    def refused() -> dict[str, Any] | None:
        degraded = condition(api.simulation("starved"), "Degraded")
        return degraded if degraded.get("reason") == "MemoryBelowNeed" else None

    degraded = wait_until(refused, timeout=TIMEOUT, message="Degraded/MemoryBelowNeed")
    assert "256Mi" in degraded["message"]
    assert "Mi a producer of 100000 machines" in degraded["message"]
    assert api.get("statefulset", "starved") is None  # nothing applied


# --- never adopt ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "child", "create"),
    [
        (
            "configmap",
            "owned-settings",
            ["create", "configmap", "owned-settings", "--from-literal=NUM_MACHINES=77"],
        ),
        (
            "service",
            "owned",
            ["create", "service", "clusterip", "owned", "--clusterip=None", "--tcp=80:80"],
        ),
    ],
)
def test_someone_elses_object_is_never_adopted(
    api: Api, kind: str, child: str, create: list[str]
) -> None:
    api.kubectl(*create)
    theirs = api.get(kind, child)
    assert theirs is not None
    api.apply(minimal_example("owned"))

    def conflict() -> dict[str, Any] | None:
        degraded = condition(api.simulation("owned"), "Degraded")
        return degraded if degraded.get("reason") == "ChildNameConflict" else None

    degraded = wait_until(conflict, timeout=TIMEOUT, message="Degraded/ChildNameConflict")
    assert degraded["status"] == "True"
    assert f"{api.namespace}/{child}" in degraded["message"]
    assert "never adopts" in degraded["message"]
    after = api.get(kind, child)
    assert after is not None
    for key in ("labels", "ownerReferences", "resourceVersion"):
        assert after["metadata"].get(key) == theirs["metadata"].get(key), key
    assert after.get("data") == theirs.get("data")
    assert api.get("statefulset", "owned") is None  # nothing applied while a name is taken

    api.kubectl("delete", "sensim", "owned", "--wait=true")
    survivor = api.get(kind, child)
    assert survivor is not None  # never owned, so the garbage collector has no claim on it
    assert survivor["metadata"]["uid"] == theirs["metadata"]["uid"]


# --- status shows broken pods ---------------------------------------------------------------


def test_a_crash_looping_pod_makes_the_simulation_degraded_naming_it(api: Api) -> None:
    api.apply(minimal_example("crashy", replicas=2, machines=4))
    wait_ready(api, "crashy")
    # What the kubelet writes for a container that keeps exiting.
    crash = {
        "status": {
            "containerStatuses": [
                {
                    "name": "producer",
                    "image": "sensorsim:e2e",
                    "imageID": "",
                    "ready": False,
                    "started": False,
                    "restartCount": 4,
                    "state": {
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": "back-off 1m20s restarting failed container=producer",
                        }
                    },
                    "lastState": {"terminated": {"exitCode": 2, "reason": "Error"}},
                }
            ]
        }
    }
    api.kubectl(
        "patch", "pod", "crashy-1", "--subresource=status", "--type=merge", "-p", json.dumps(crash)
    )

    def degraded() -> dict[str, Any] | None:
        found = condition(api.simulation("crashy"), "Degraded")
        return found if found.get("reason") == "CrashLoopBackOff" else None

    found = wait_until(degraded, timeout=TIMEOUT, message="Degraded/CrashLoopBackOff")
    assert found["status"] == "True"
    assert "crashy-1: CrashLoopBackOff" in found["message"]
    assert "crashy-0" not in found["message"]


# --- retries --------------------------------------------------------------------------------


def deny_creating(api: Api, config_map: str) -> list[dict[str, Any]]:
    """A ValidatingAdmissionPolicy (and binding) refusing to create ``config_map`` in the test's
    namespace: a transient API failure, real to the operator."""
    name = f"deny-{api.namespace}"
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["configmaps"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": f"object.metadata.name != '{config_map}'",
                        "message": "injected failure",
                    }
                ],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": api.namespace}
                    }
                },
            },
        },
    ]


def test_a_failed_child_restore_is_retried_without_waiting_for_the_resync(
    api: Api, k8s_cluster: KubeCluster, resync_off: OperatorProcess
) -> None:
    operator = resync_off  # with no resync, only a retry can restore the ConfigMap
    api.apply(minimal_example("retry"))
    wait_ready(api, "retry")
    policy = deny_creating(api, "retry-settings")
    k8s_cluster.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": policy})
    )
    try:

        def denied() -> bool:
            probe = api.cluster.kubectl(
                "-n",
                api.namespace,
                "create",
                "configmap",
                "retry-settings",
                "--dry-run=server",
                check=False,
            )
            return "injected failure" in probe.stderr

        wait_until(denied, timeout=TIMEOUT, message="the policy to be in force")
        retried_before = operator.metric(
            "sensorsim_operator_reconciles_total", trigger="retry", result="ok"
        )
        api.kubectl("delete", "configmap", "retry-settings")

        def failed() -> dict[str, Any] | None:
            found = condition(api.simulation("retry"), "Degraded")
            return found if "injected failure" in found.get("message", "") else None

        wait_until(failed, timeout=TIMEOUT, message="the restore to fail and be reported")
    finally:
        k8s_cluster.kubectl(
            "delete", "validatingadmissionpolicybinding", policy[1]["metadata"]["name"], check=False
        )
        k8s_cluster.kubectl(
            "delete", "validatingadmissionpolicy", policy[0]["metadata"]["name"], check=False
        )
    restored = wait_until(
        lambda: api.get("configmap", "retry-settings"),
        timeout=TIMEOUT,
        message="the ConfigMap restored",
    )
    assert restored["data"]["NUM_MACHINES"] == "12"
    assert (
        operator.metric("sensorsim_operator_reconciles_total", trigger="retry", result="ok")
        > retried_before
    )
    wait_until(
        lambda: condition(api.simulation("retry"), "Degraded").get("status") == "False",
        timeout=TIMEOUT,
        message="Degraded to clear",
    )


def test_printer_columns_and_explain(api: Api, k8s_cluster: KubeCluster) -> None:
    api.kubectl("apply", "-f", str(MINIMAL))
    wait_ready(api, "minimal")
    header, _ = api.kubectl("get", "sensim").strip().splitlines()
    assert header.split() == ["NAME", "REPLICAS", "READY", "MACHINES", "TOPIC", "AGE"]

    def columns() -> list[str] | None:
        # READY is status.readyReplicas, which can trail the Ready condition by a status write
        row = api.kubectl("get", "sensim", "--no-headers").split()[:5]
        return row if row == ["minimal", "3", "3", "12", "sensor-data"] else None

    wait_until(columns, timeout=TIMEOUT, message="the printer columns of a ready simulation")
    header, row = api.kubectl("get", "sensim", "-o", "wide").strip().splitlines()
    assert header.split()[5:7] == ["MODEL", "STATUS"]
    assert row.split()[5:7] == ["learned", "AllShardsReady"]
    explained = k8s_cluster.kubectl("explain", "sensorsimulation.spec.failures").stdout
    assert "Failure model" in explained
    assert "Probability per cycle that a healthy machine starts a failure episode" in explained
    assert "minCycles" in explained


# The data plane end to end (the producer pods as real containers of the image, records from
# every machine before and after a scale, crash loops): tests/k8s/test_pods_as_containers.py.

"""The pure builders of a simulation's ConfigMap, headless Service and StatefulSet."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from domain import settings_contract as contract
from sensorsim_operator import names
from sensorsim_operator.api.v1alpha1 import SimulationSpec, parse_spec
from sensorsim_operator.children import grace_period, pod_resources
from sensorsim_operator.children.conformance import conforms, same_object
from sensorsim_operator.children.identity import SimulationRef
from sensorsim_operator.children.manifests import Children, build_children
from sensorsim_operator.children.ownership import controller_owner
from sensorsim_operator.children.pod_template import BuildDefaults
from sensorsim_operator.children.producer_env import producer_settings
from sensorsim_operator.handover import Handover, StoppingPod

pytestmark = pytest.mark.unit

SIMULATION = SimulationRef(
    namespace="plant", name="line-a", uid="uid-1", generation=4, created="2026-11-29T08:00:00Z"
)
DEFAULTS = BuildDefaults(producer_image="sensorsim:test")
BASE: dict[str, Any] = {"replicas": 3, "machines": 10, "kafka": {"bootstrapServers": "k:9092"}}


def spec_of(**changes: Any) -> SimulationSpec:
    return parse_spec({**BASE, **changes})


def build(**changes: Any) -> Children:
    return build_children(SIMULATION, spec_of(**changes), DEFAULTS)


def container(children: Children) -> dict[str, Any]:
    containers = children.stateful_set["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def env_of(children: Children) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container(children)["env"]}


def test_children_have_fixed_names_and_one_controlling_owner() -> None:
    children = build()
    assert children.config_map["metadata"]["name"] == "line-a-settings"
    assert children.service["metadata"]["name"] == "line-a"
    assert children.stateful_set["metadata"]["name"] == "line-a"
    for manifest in children.in_apply_order():
        meta = manifest["metadata"]
        assert "generateName" not in meta
        assert meta["namespace"] == "plant"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "sensorsim.io/v1alpha1",
                "kind": "SensorSimulation",
                "name": "line-a",
                "uid": "uid-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert meta["labels"][names.MANAGED_BY_LABEL] == "sensorsim-operator"
        assert controller_owner(manifest) == "line-a"


def test_children_do_not_depend_on_the_order_of_the_input() -> None:
    # The API server does not keep map order; the manifests (and so the hash) must not care.
    labels = {"b": "2", "a": "1", "example.com/c": "3"}
    extras = {"labels": labels, "annotations": labels, "nodeSelector": labels}
    reversed_extras = {key: dict(reversed(value.items())) for key, value in extras.items()}
    one, other = build(podTemplate=extras), build(podTemplate=reversed_extras)
    assert json.dumps(one.stateful_set) == json.dumps(other.stateful_set)
    assert one.config_hash == other.config_hash


def test_shard_index_comes_from_the_pod_index_label_and_shard_count_from_replicas() -> None:
    env = env_of(build())
    assert env["SHARD_INDEX"] == {
        "name": "SHARD_INDEX",
        "valueFrom": {
            "fieldRef": {
                "apiVersion": "v1",
                "fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']",
            }
        },
    }
    assert env["SHARD_COUNT"]["value"] == "3"
    assert env["NUM_MACHINES"]["value"] == "10"
    assert env["SIMULATION_NAME"]["value"] == "line-a"


def test_every_setting_is_in_the_pod_env_and_the_config_map() -> None:
    children = build(seed=7, failures={"probability": 0.2})
    env = env_of(children)
    settings = children.config_map["data"]
    for key, value in settings.items():
        assert env[key]["value"] == value
    assert settings["SIMULATION_SEED"] == "7"
    assert settings["FAILURE_PROBABILITY"] == "0.2"
    assert settings["KAFKA_BOOTSTRAP_SERVERS"] == "k:9092"
    assert settings["HTTP_PORT"] == "8080"


def test_the_epoch_is_the_resource_creation_time() -> None:
    simulation = SimulationRef.from_object(
        {
            "metadata": {
                "namespace": "plant",
                "name": "line-a",
                "uid": "uid-1",
                "generation": 7,
                "creationTimestamp": "2026-11-29T08:00:00Z",
            }
        }
    )
    assert simulation == SimulationRef(
        namespace="plant", name="line-a", uid="uid-1", generation=7, created="2026-11-29T08:00:00Z"
    )
    children = build_children(simulation, spec_of(), DEFAULTS)
    epoch = env_of(children)["SIMULATION_EPOCH"]["value"]
    assert children.config_map["data"]["SIMULATION_EPOCH"] == epoch
    # What the producer requires of it: ISO-8601 with a UTC offset.
    assert datetime.fromisoformat(epoch) == datetime(2026, 11, 29, 8, tzinfo=UTC)


def test_no_epoch_without_a_creation_time() -> None:
    unsaved = SimulationRef(namespace="plant", name="line-a", uid="uid-1", generation=1)
    assert "SIMULATION_EPOCH" not in producer_settings(unsaved, spec_of())


def test_env_names_are_the_contract_names() -> None:
    spec = spec_of(
        seed=1,
        persistence=0.9,
        referenceData={"configMapName": "csv"},
        kafka={
            "bootstrapServers": "k:9093",
            "securityProtocol": "SASL_SSL",
            "sasl": {"credentialsSecret": {"name": "creds"}},
            "tls": {"caSecret": {"name": "ca"}},
        },
    )
    env = {e["name"] for e in container(build_children(SIMULATION, spec, DEFAULTS))["env"]}
    assert env - set(contract.BY_ENV) == set()
    assert {"SIMULATION_MODEL", "SIMULATION_PERSISTENCE", "KAFKA_SASL_PASSWORD"} <= env


def test_kafka_credentials_only_through_secret_key_refs() -> None:
    children = build(
        kafka={
            "bootstrapServers": "k:9093",
            "securityProtocol": "SASL_PLAINTEXT",
            "sasl": {
                "mechanism": "SCRAM-SHA-512",
                "credentialsSecret": {"name": "creds", "usernameKey": "u", "passwordKey": "p"},
            },
        }
    )
    env = env_of(children)
    assert env["KAFKA_SASL_USERNAME"] == {
        "name": "KAFKA_SASL_USERNAME",
        "valueFrom": {"secretKeyRef": {"name": "creds", "key": "u"}},
    }
    assert env["KAFKA_SASL_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "creds", "key": "p"}
    }
    assert env["KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
    assert "KAFKA_SASL_PASSWORD" not in children.config_map["data"]
    assert "KAFKA_SASL_USERNAME" not in children.config_map["data"]


def test_pods_meet_the_restricted_pod_security_profile() -> None:
    pod = build().stateful_set["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container(build())["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsNonRoot"] is True
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    # A read-only root needs a writable /tmp.
    assert {"name": "tmp", "mountPath": "/tmp"} in container(build())["volumeMounts"]


def test_probes_resources_and_ports() -> None:
    producer = container(build(resources={"limits": {"cpu": "1"}}))
    assert producer["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert producer["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert producer["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert producer["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # Memory unset: sized from the machines per pod (4 here) and the sensors (20).
    assert producer["resources"] == {
        "requests": {"cpu": "100m", "memory": "178Mi"},
        "limits": {"cpu": "1", "memory": "350Mi"},
    }
    assert producer["image"] == "sensorsim:test"
    assert container(build(image="registry.example/p:2"))["image"] == "registry.example/p:2"


def test_stateful_set_shape() -> None:
    sts = build().stateful_set["spec"]
    assert sts["replicas"] == 3
    assert sts["serviceName"] == "line-a"
    assert sts["podManagementPolicy"] == "Parallel"
    assert sts["selector"] == {"matchLabels": names.selector_labels("line-a")}
    assert "volumeClaimTemplates" not in sts
    labels = sts["template"]["metadata"]["labels"]
    assert names.selector_labels("line-a").items() <= labels.items()


def test_headless_service_selects_the_pods() -> None:
    service = build().service["spec"]
    assert service["clusterIP"] == "None"
    assert service["selector"] == names.selector_labels("line-a")
    assert service["ports"][0]["port"] == 8080


def test_reference_data_is_mounted_and_pointed_at() -> None:
    children = build(referenceData={"configMapName": "pump-csv", "key": "pump.csv"})
    pod = children.stateful_set["spec"]["template"]["spec"]
    assert {
        "name": "reference-data",
        "configMap": {"name": "pump-csv", "items": [{"key": "pump.csv", "path": "pump.csv"}]},
    } in pod["volumes"]
    mount = next(m for m in container(children)["volumeMounts"] if m["name"] == "reference-data")
    assert mount["readOnly"] is True
    assert env_of(children)["SENSOR_DATA_FILE"]["value"] == f"{mount['mountPath']}/pump.csv"
    assert "SENSOR_DATA_FILE" not in env_of(build())  # default: the image's bundled data


def test_kafka_ca_is_mounted_and_pointed_at() -> None:
    children = build(
        kafka={
            "bootstrapServers": "k:9093",
            "securityProtocol": "SSL",
            "tls": {"caSecret": {"name": "kafka-ca"}},
        }
    )
    pod = children.stateful_set["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "kafka-ca")
    assert volume["secret"]["secretName"] == "kafka-ca"
    assert env_of(children)["KAFKA_SSL_CAFILE"]["value"] == "/etc/sensorsim/kafka-ca/ca.crt"


def test_pod_template_extras() -> None:
    children = build(
        podTemplate={
            "labels": {"team": "a"},
            "annotations": {"note": "x"},
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
            "serviceAccountName": "producer",
        }
    )
    template = children.stateful_set["spec"]["template"]
    assert template["metadata"]["labels"]["team"] == "a"
    assert template["metadata"]["annotations"]["note"] == "x"
    assert template["spec"]["nodeSelector"] == {"disk": "ssd"}
    assert template["spec"]["tolerations"] == [
        {"key": "k", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert template["spec"]["serviceAccountName"] == "producer"


@pytest.mark.parametrize(
    "change",
    [
        {"failures": {"probability": 0.5}},
        {"replicas": 4},
        {"machines": 11},
        {"intervalMs": 250},
        {"seed": 9},
        {"messageFormat": "extended"},
        {"kafka": {"bootstrapServers": "other:9092"}},
        {"image": "sensorsim:other"},
        {"resources": {"requests": {"cpu": "200m"}}},
        {"podTemplate": {"labels": {"team": "b"}}},
        {"referenceData": {"configMapName": "csv"}},
    ],
)
def test_a_pod_affecting_change_changes_the_config_hash(change: dict[str, Any]) -> None:
    before, after = build(), build(**change)
    assert after.config_hash != before.config_hash
    annotations = after.stateful_set["spec"]["template"]["metadata"]["annotations"]
    assert annotations[names.CONFIG_HASH_ANNOTATION] == after.config_hash


def test_suspend_scales_to_zero_without_touching_the_template() -> None:
    running, suspended = build(), build(suspend=True)
    assert suspended.stateful_set["spec"]["replicas"] == 0
    assert suspended.config_hash == running.config_hash
    assert suspended.stateful_set["spec"]["template"] == running.stateful_set["spec"]["template"]


def test_the_simulation_generation_does_not_reach_the_pods() -> None:
    later = SimulationRef(
        namespace="plant", name="line-a", uid="uid-1", generation=99, created=SIMULATION.created
    )
    assert build_children(later, spec_of(), DEFAULTS) == build()


def test_settings_map_has_no_secret_and_no_shard_index() -> None:
    settings = producer_settings(SIMULATION, spec_of())
    assert "SHARD_INDEX" not in settings
    assert all(isinstance(value, str) for value in settings.values())


def test_controller_owner_ignores_foreign_objects() -> None:
    assert controller_owner({"metadata": {}}) is None
    foreign = {"metadata": {"ownerReferences": [{"kind": "Deployment", "name": "x"}]}}
    assert controller_owner(foreign) is None


def test_conforms_accepts_extra_fields_and_rejects_differences() -> None:
    port = {"name": "http", "port": 8080}
    desired = {"spec": {"replicas": 3, "ports": [port]}}
    defaulted = {"spec": {"replicas": 3, "ports": [port | {"protocol": "TCP"}]}, "status": {}}
    assert conforms(desired, defaulted)
    assert not conforms(desired, {"spec": {"replicas": 5, "ports": [port]}})
    assert not conforms(desired, {"spec": {"replicas": 3, "ports": []}})
    assert not conforms(desired, {"spec": {"ports": [port]}})


def test_a_built_child_conforms_to_itself_and_not_to_another_spec() -> None:
    children = build()
    live = json.loads(json.dumps(children.stateful_set)) | {"status": {"replicas": 3}}
    assert conforms(children.stateful_set, live)
    assert same_object(children.stateful_set, live)
    assert not same_object(children.service, live)
    assert not conforms(build(seed=3).stateful_set, live)


def test_resource_quantities_conform_by_value() -> None:
    # The API server stores quantities canonicalised: "0.5" CPU as "500m", "1024Mi" as "1Gi".
    children = build(
        resources={"requests": {"cpu": "0.5", "memory": "1024Mi"}, "limits": {"memory": "2Gi"}}
    )
    assert container(children)["resources"]["requests"] == {"cpu": "0.5", "memory": "1024Mi"}
    live = json.loads(json.dumps(children.stateful_set))
    live_container = live["spec"]["template"]["spec"]["containers"][0]
    live_container["resources"]["requests"] = {"cpu": "500m", "memory": "1Gi"}
    assert conforms(children.stateful_set, live)
    live_container["resources"]["requests"]["cpu"] = "600m"
    assert not conforms(children.stateful_set, live)
    # Only quantities compare by value: other strings must still be equal.
    assert not conforms({"image": "1k"}, {"image": "1000"})
    assert conforms(
        {"resources": {"limits": {"memory": "1G"}}}, {"resources": {"limits": {"memory": "1e9"}}}
    )


@pytest.mark.parametrize(
    ("machines", "replicas", "sensors", "requested", "limit"),
    [
        # need: 157 MiB + 1,025 KiB x sensors + machines x (559 B + 102 B x sensors)
        #       + min(machines, 300,000) x (1,120 B + 16 B x sensors)
        (200_000, 1, 20, "948Mi", "1313Mi"),
        (200_000, 4, 20, "370Mi", "591Mi"),
        (1_000_000, 1, 20, "3068Mi", "3963Mi"),
        (100_000, 1, 100, "1543Mi", "2057Mi"),
        (1_000, 1, 6, "166Mi", "335Mi"),
    ],
)
def test_memory_is_sized_from_the_machines_per_pod_and_the_sensors(
    machines: int, replicas: int, sensors: int, requested: str, limit: str
) -> None:
    children = build(machines=machines, replicas=replicas, sensors=sensors)
    resources = container(children)["resources"]
    assert (resources["requests"]["memory"], resources["limits"]["memory"]) == (requested, limit)


# Peak RSS (MiB) measured with the Kafka sink, `bench/producer_bench.py --memory` (the table in
# docs/operator.md, "Memory"): (machines, sensors) -> MiB.
MEASURED_RSS_MIB = {
    (1_000, 6): 164, (1_000, 20): 180, (1_000, 100): 263,
    (10_000, 6): 187, (10_000, 20): 220, (10_000, 100): 404,
    (100_000, 6): 377, (100_000, 20): 602, (100_000, 100): 1487,
    (1_000_000, 6): 1632, (1_000_000, 20): 3058, (1_000_000, 100): 11334,
}  # fmt: skip


@pytest.mark.parametrize(("machines", "sensors"), sorted(MEASURED_RSS_MIB))
def test_the_need_is_within_a_tenth_of_every_measurement_and_the_limit_covers_it(
    machines: int, sensors: int
) -> None:
    measured = MEASURED_RSS_MIB[(machines, sensors)] * pod_resources.MIB
    need = pod_resources.need_bytes(machines, 1, sensors)
    assert abs(measured - need) <= 0.1 * need
    _, limit = pod_resources.sized(machines, 1, sensors)
    assert pod_resources.quantity(limit) >= Decimal(measured) * Decimal("1.2")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"limits": {"memory": "8Gi"}}, ("3068Mi", "8Gi")),
        ({"limits": {"memory": "1Gi"}}, ("1Gi", "1Gi")),  # request never above the limit
        ({"requests": {"memory": "9Gi"}}, ("9Gi", "9Gi")),  # limit never below the request
        ({"requests": {"memory": "1Gi"}, "limits": {"memory": "2Gi"}}, ("1Gi", "2Gi")),
    ],
)
def test_explicit_memory_wins(given: dict[str, Any], expected: tuple[str, str]) -> None:
    resources = container(build(machines=1_000_000, replicas=1, resources=given))["resources"]
    assert (resources["requests"]["memory"], resources["limits"]["memory"]) == expected


def test_a_memory_limit_below_the_need_names_the_need() -> None:
    assert pod_resources.shortfall(100_000, 1, 100, limit="2Gi") is None
    why = pod_resources.shortfall(100_000, 2, 100, limit="512Mi")
    assert why is not None
    assert "512Mi" in why
    assert "900Mi" in why
    assert "50000 machines x 100 sensors" in why
    assert pod_resources.shortfall(100_000, 2, 100, limit=None) is None


def test_more_records_allowed_pending_size_more_memory() -> None:
    # a shard of 1,000,000 machines: the default bound lets 300,000 records wait, a bound of
    # 1,000,000 lets the whole cycle wait
    resources = container(
        build(machines=1_000_000, replicas=1, kafka={**BASE["kafka"],
              "producer": {"maxPendingRecords": 1_000_000}})
    )["resources"]  # fmt: skip
    assert (resources["requests"]["memory"], resources["limits"]["memory"]) == (
        "4029Mi",
        "5165Mi",
    )
    assert pod_resources.shortfall(
        1_000_000, 1, 20, limit="4000Mi", max_pending=1_000_000
    ) is not None  # fmt: skip
    assert pod_resources.shortfall(1_000_000, 1, 20, limit="4000Mi") is None


def test_the_sensors_of_sensor_columns_size_the_memory() -> None:
    data = {"configMapName": "ref", "key": "data.csv", "sensorColumns": "a,b,c,d,e,f"}
    by_columns = build(machines=100_000, replicas=1, sensors=100, referenceData=data)
    six = build(machines=100_000, replicas=1, sensors=6)
    assert container(by_columns)["resources"] == container(six)["resources"]


def test_the_pods_get_the_simulation_uid() -> None:
    assert env_of(build())["SIMULATION_UID"]["value"] == SIMULATION.uid


@pytest.mark.parametrize(
    ("machines", "replicas", "grace"),
    [(10, 3, 32), (10_000, 1, 32), (10_001, 1, 34), (100_000, 1, 50), (1_000_000, 1, 230)],
)
def test_the_grace_period_grows_with_the_machines_per_pod_and_the_producer_is_told(
    machines: int, replicas: int, grace: int
) -> None:
    children = build(machines=machines, replicas=replicas)
    pod = children.stateful_set["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == grace
    assert env_of(children)["SHUTDOWN_GRACE_SECONDS"]["value"] == str(grace)


@pytest.mark.parametrize("interval_ms", [1, 50, 200, 1000, 60_000])
@pytest.mark.parametrize(("machines", "replicas"), [(12, 5), (100_000, 1), (1_000_000, 1)])
def test_the_catch_up_bound_covers_a_handover_that_is_not_stuck(
    interval_ms: int, machines: int, replicas: int
) -> None:
    """A replica change stops every old pod (up to the handover's deadline before it counts as
    stuck) and then starts the new ones: the machines' pause must be caught up, never skipped
    by a restored machine beyond CATCH_UP_MAX_CYCLES."""
    children = build(machines=machines, replicas=replicas, intervalMs=interval_ms)
    env = env_of(children)
    grace = int(env["SHUTDOWN_GRACE_SECONDS"]["value"])
    bound = int(env["CATCH_UP_MAX_CYCLES"]["value"])
    old_pod = StoppingPod("sim-0", node=None, terminating=True, grace_seconds=grace)
    deadline = Handover((old_pod,), scale_down=False, stateful_set_missing=False).deadline
    pause_seconds = deadline.total_seconds() + grace_period.POD_START_SECONDS
    assert bound * interval_ms >= pause_seconds * 1000
    assert bound >= contract.setting("CATCH_UP_MAX_CYCLES").default  # never below the default


def test_the_catch_up_bound_at_200_ms_exceeds_the_producer_default() -> None:
    """600 cycles of 200 ms are 2 minutes: less than a handover of 32 s pods may take."""
    env = env_of(build(machines=12, replicas=5, intervalMs=200))
    assert int(env["CATCH_UP_MAX_CYCLES"]["value"]) == 1520  # (2 x 32 + 60 + 180) s / 0.2 s


def test_without_a_schedule_the_pods_keep_the_default_catch_up_bound() -> None:
    assert "CATCH_UP_MAX_CYCLES" not in env_of(build(intervalMs=0))


def stream_hash_of(children: Children) -> str:
    annotations = children.stateful_set["spec"]["template"]["metadata"]["annotations"]
    return str(annotations[names.STREAM_HASH_ANNOTATION])


def test_the_stream_hash_covers_the_stream_settings_only() -> None:
    base = stream_hash_of(build())
    assert stream_hash_of(build()) == base  # stable
    assert stream_hash_of(build(failures={"probability": 0.5})) != base
    assert stream_hash_of(build(logLevel="DEBUG", image="sensorsim:other")) == base
    other = SimulationRef(namespace="plant", name="line-a", uid="uid-2", generation=4)
    assert stream_hash_of(build_children(other, spec_of(), DEFAULTS)) != base


def test_the_stream_hash_covers_the_reference_data_content_when_known() -> None:
    spec = spec_of(referenceData={"configMapName": "csv"})
    hashes = {
        digest: stream_hash_of(build_children(SIMULATION, spec, DEFAULTS, digest))
        for digest in (None, "a", "b")
    }
    assert len(set(hashes.values())) == 3
    annotations = build_children(SIMULATION, spec, DEFAULTS, "a").stateful_set["spec"]["template"][
        "metadata"
    ]["annotations"]
    assert annotations[names.REFERENCE_DATA_HASH_ANNOTATION] == "a"

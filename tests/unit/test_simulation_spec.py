"""The SensorSimulation models and the CRD schema generated from them say the same thing.

What the API server itself enforces (CEL rules, patterns) is asked of the real API server in
tests/k8s/test_operator_e2e.py (server-side dry runs), not re-implemented here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from sensorsim_operator.api.simulation_status import SimulationStatus
from sensorsim_operator.api.v1alpha1 import SimulationSpec, parse_spec
from sensorsim_operator.crd import crd, spec_schema, status_schema

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MINIMAL_SPEC: dict[str, Any] = {"kafka": {"bootstrapServers": "kafka:9092"}}


def _walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if "items" in schema:
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """What the API server's structural defaulting does: fill absent properties that have a
    default, then recurse (also into the defaults just filled)."""
    if schema.get("type") == "object" and isinstance(value, dict):
        value = dict(value)
        for name, child in schema.get("properties", {}).items():
            if name not in value and "default" in child:
                value[name] = child["default"]
            if name in value:
                value[name] = apply_defaults(child, value[name])
    elif schema.get("type") == "array" and isinstance(value, list):
        value = [apply_defaults(schema["items"], item) for item in value]
    return value


def test_minimal_spec_gets_documented_defaults() -> None:
    spec = parse_spec(MINIMAL_SPEC)
    assert (spec.replicas, spec.machines, spec.sensors, spec.interval_ms) == (1, 1, 20, 1000)
    assert spec.seed is None
    assert spec.suspend is False
    assert spec.kafka.topic == "sensor-data"
    assert spec.kafka.security_protocol == "PLAINTEXT"
    # unset: the producer derives it from failures.share or the reference's labelled share
    assert spec.failures.probability is None
    assert (spec.failures.min_cycles, spec.failures.max_cycles) == (30, 60)
    assert spec.failures.ramp_cycles == 10
    assert spec.message_format == "original"
    assert spec.model == "learned"
    assert spec.persistence is None
    assert spec.resources.requests.memory is None  # sized from the machines per pod


@pytest.mark.parametrize("example", ["minimal.yaml", "complete.yaml"])
def test_examples_are_valid_for_both_the_model_and_the_schema(example: str) -> None:
    document = yaml.safe_load((EXAMPLES / example).read_text())
    assert document["apiVersion"] == "sensorsim.io/v1alpha1"
    assert document["kind"] == "SensorSimulation"
    jsonschema.Draft4Validator(spec_schema()).validate(document["spec"])  # OpenAPI 3.0 bounds
    parse_spec(document["spec"])


def test_the_complete_example_sets_every_spec_field() -> None:
    document = yaml.safe_load((EXAMPLES / "complete.yaml").read_text())
    missing = [
        path
        for path, node in _walk(spec_schema())
        if path and "[]" not in path and "{}" not in path and not _has(document["spec"], path)
    ]
    assert missing == []


def _has(document: dict[str, Any], path: str) -> bool:
    node: Any = document
    for part in path.strip(".").split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_schema_defaults_equal_model_defaults() -> None:
    """The API server fills the same defaults the Python model assumes."""
    defaulted = apply_defaults(spec_schema(), MINIMAL_SPEC)
    expected = parse_spec(MINIMAL_SPEC).model_dump(by_alias=True, exclude_none=True)
    assert defaulted == expected


def test_every_field_is_described_and_bounded() -> None:
    problems: list[str] = []
    for schema, root in ((spec_schema(), "spec"), (status_schema(), "status")):
        for path, node in _walk(schema, root):
            if "description" not in node and not path.endswith("{}"):
                problems.append(f"{path}: no description")
            kind = node.get("type")
            if kind in ("integer", "number") and not {"minimum", "maximum"} <= node.keys():
                problems.append(f"{path}: number without minimum and maximum")
            if kind == "string" and "enum" not in node and "maxLength" not in node:
                problems.append(f"{path}: string without maxLength or enum")
            if kind == "array" and "maxItems" not in node:
                problems.append(f"{path}: list without maxItems")
            if kind == "object" and "additionalProperties" in node and "maxProperties" not in node:
                problems.append(f"{path}: map without maxProperties")
            if kind is None:
                problems.append(f"{path}: no type (not a structural schema)")
    assert problems == []


def test_crd_has_subresources_columns_and_short_name() -> None:
    version = crd()["spec"]["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert version["subresources"]["status"] == {}
    columns = version["additionalPrinterColumns"]
    default = [column["name"] for column in columns if not column.get("priority")]
    assert default == ["Replicas", "Ready", "Machines", "Topic", "Age"]
    wide = [column["name"] for column in columns if column.get("priority") == 1]
    assert wide == ["Model", "Status", "Scenarios", "Guarantee"]
    assert crd()["spec"]["names"]["shortNames"] == ["sensim"]


def test_cross_field_rules_exist_as_cel() -> None:
    schema = spec_schema()
    rules = [r["rule"] for r in schema["x-kubernetes-validations"]]
    assert "self.replicas <= self.machines" in rules
    assert any("self.sensors <= 20" in rule for rule in rules)
    assert any("/ self.replicas <= 1000000" in rule for rule in rules)
    failures = schema["properties"]["failures"]
    assert "self.minCycles <= self.maxCycles" in [
        r["rule"] for r in failures["x-kubernetes-validations"]
    ]


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"replicas": 5, "machines": 4}, "replicas must be less than or equal to machines"),
        ({"failures": {"minCycles": 61, "maxCycles": 60}}, "minCycles"),
        ({"intervalMs": -1}, "greater than or equal to 0"),
        ({"model": "walk"}, "'learned' or 'original'"),
        ({"persistence": 1.0}, "less than 1"),
        ({"persistence": -0.1}, "greater than or equal to 0"),
        ({"kafka": {"bootstrapServers": "kafka:0"}}, "port of 1-65535"),
        ({"kafka": {"bootstrapServers": "kafka:99999"}}, "port of 1-65535"),
        ({"kafka": {"bootstrapServers": "k:9092", "topic": ".."}}, "not valid Kafka topic"),
        ({"kafka": {"bootstrapServers": "k:9092", "topic": "__consumer_offsets"}}, "internal"),
        ({"messageFormat": "xml"}, "'original' or 'extended'"),
        ({"kafka": {}}, "bootstrapServers"),
        ({"kafka": {"bootstrapServers": "no-port"}}, "host:port"),
        ({"kafka": {"bootstrapServers": "k:9092", "securityProtocol": "SASL_SSL"}}, "sasl"),
        ({"podTemplate": {"labels": {"app.kubernetes.io/instance": "x"}}}, "may not set"),
        ({"replicas": 2, "machines": 2, "surprise": 1}, "Extra inputs"),
        ({"podTemplate": {"tolerations": [{}]}}, "without a key must use operator Exists"),
        (
            {"podTemplate": {"tolerations": [{"operator": "Exists", "value": "x"}]}},
            "remove value",
        ),
        (
            {"podTemplate": {"tolerations": [{"key": "a", "tolerationSeconds": 5}]}},
            "only used with effect NoExecute",
        ),
        ({"podTemplate": {"tolerations": [{"key": "bad key"}]}}, "pattern"),
        ({"podTemplate": {"labels": {"bad key!": "x"}}}, "labels keys"),
        ({"podTemplate": {"annotations": {"/x": "x"}}}, "annotations keys"),
        ({"podTemplate": {"nodeSelector": {"a/b/c": "x"}}}, "nodeSelector keys"),
        ({"resources": {"requests": {"cpu": "-1"}}}, "pattern"),
    ],
)
def test_invalid_specs_are_rejected_with_the_field_named(
    patch: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_spec({**MINIMAL_SPEC, **patch})


@pytest.mark.parametrize(
    "patch",
    [
        {"podTemplate": {"tolerations": [{"operator": "Exists"}]}},
        {
            "podTemplate": {
                "tolerations": [
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists"},
                    {"key": "a", "value": "b", "effect": "NoExecute", "tolerationSeconds": 5},
                ],
                "labels": {"example.com/a_b.c": "x", "team": "a"},
                "annotations": {"prometheus.io/scrape": "true"},
                "nodeSelector": {"kubernetes.io/os": "linux"},
            }
        },
        {"resources": {"requests": {"cpu": "0.5", "memory": "512Mi"}, "limits": {"cpu": "500m"}}},
        {"resources": {"requests": {"memory": "0.5Gi"}, "limits": {"memory": "536870912"}}},
    ],
)
def test_valid_pod_settings_are_accepted(patch: dict[str, Any]) -> None:
    parse_spec({**MINIMAL_SPEC, **patch})


def test_pod_setting_rules_exist_as_cel() -> None:
    schema = spec_schema()["properties"]
    resources = [r["rule"] for r in schema["resources"]["x-kubernetes-validations"]]
    assert any("quantity(self.requests.memory)" in rule for rule in resources)
    toleration = schema["podTemplate"]["properties"]["tolerations"]["items"]
    assert len(toleration["x-kubernetes-validations"]) == 3
    extras = [r["fieldPath"] for r in schema["podTemplate"]["x-kubernetes-validations"]]
    assert {".labels", ".annotations", ".nodeSelector"} <= set(extras)


def test_status_round_trips_in_camel_case() -> None:
    status = SimulationStatus(observed_generation=3, ready_replicas=2, config_hash="abc")
    body = status.model_dump(by_alias=True, mode="json")
    assert body["observedGeneration"] == 3
    assert body["readyReplicas"] == 2
    assert SimulationStatus.model_validate(body) == status


def test_spec_is_immutable() -> None:
    spec = parse_spec(MINIMAL_SPEC)
    with pytest.raises(ValidationError):
        spec.replicas = 3  # type: ignore[misc]
    assert isinstance(spec, SimulationSpec)

"""values.schema.json accepts the chart's values files and rejects wrong types and values.

Checked twice: with the jsonschema library directly (fast, precise), and through helm itself
(`helm template` / `helm lint` refuse the values), since helm is what users run.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.chart_support import (
    ALL_OPTIONS_VALUES,
    CHART_DIR,
    DEV_VALUES,
    KUBE_VERSION,
    helm,
    helm_fails,
)

KV = ("--kube-version", KUBE_VERSION)

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
DEFAULTS: dict[str, Any] = yaml.safe_load((CHART_DIR / "values.yaml").read_text())


def with_value(dotted: str, value: Any) -> dict[str, Any]:
    values = copy.deepcopy(DEFAULTS)
    *parents, last = dotted.split(".")
    current = values
    for key in parents:
        current = current.setdefault(key, {})
    current[last] = value
    return values


def errors(values: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [error.message for error in validator.iter_errors(values)]


def test_the_schema_is_valid_draft7() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("path", [None, DEV_VALUES, ALL_OPTIONS_VALUES], ids=str)
def test_the_charts_values_are_accepted(path: Path | None) -> None:
    values = copy.deepcopy(DEFAULTS)
    if path is not None:
        values.update(yaml.safe_load(path.read_text()))  # top-level keys replace whole maps
    assert errors(values) == []


BAD_VALUES: list[tuple[str, Any]] = [
    ("image.pullPolicy", "Sometimes"),
    ("image.repository", ""),
    ("image.digest", "md5:1234"),
    ("image.tag", 1.0),
    ("watchNamespaces", "team-a"),
    ("watchNamespaces", ["Team_A"]),
    ("watchNamespaces", ["a", "a"]),
    ("logLevel", "TRACE"),
    ("containerPorts.health", 0),
    ("containerPorts.metrics", 70000),
    ("containerPorts.metrics", "9090"),
    ("livenessProbe.successThreshold", 2),
    ("readinessProbe.periodSeconds", 0),
    ("resources.requests.cpu", "lots"),
    ("resources.requets", {}),
    ("podSecurityContext.runAsUser", -1),
    ("podSecurityContext.seccompProfile.type", "Default"),
    ("containerSecurityContext.readOnlyRootFilesystem", "yes"),
    ("serviceAccount.create", "true"),
    ("rbac.create", 1),
    ("metrics.service.type", "Ingress"),
    ("metrics.serviceMonitor.interval", "30 seconds"),
    ("commonLabels", {"team": 5}),
    ("nodeSelector", ["linux"]),
    ("simulations", {"name": "demo"}),
    ("simulations", [{"spec": {}}]),
    ("simulations", [{"name": "Demo"}]),
    ("simulations", [{"name": "d" * 53}]),
    ("simulations", [{"name": "demo", "replicas": 2}]),
    ("simulations", [{"name": "demo", "spec": {"replicas": "two"}}]),
    ("simulations", [{"name": "demo", "spec": {"kafka": {"bootstrapServers": "no-port"}}}]),
    ("simulations", [{"name": "demo", "spec": {"kafka": {"topic": "bad topic"}}}]),
    ("kafka.enabled", "false"),
    ("kafka.clusterId", "too-short"),
    ("kafka.numPartitions", 0),
    ("kafka.persistence.size", "eight gigs"),
    ("kafka.persistence.accessModes", ["ReadWriteSometimes"]),
    ("kafka.image.pullPolicy", "always"),
    ("tests.minRecords", 0),
    ("tests.timeoutSeconds", 1),
    ("tests.bootstrapServers", "kafka"),
    ("unknownTopLevel", True),
    # An empty Kafka tag would fall back to sensorsim's appVersion: apache/kafka:0.1.0.
    ("kafka.image.tag", ""),
    # The chart's own labels: overriding them renders the key twice and can break selectors.
    ("commonLabels", {"app.kubernetes.io/name": "other"}),
    ("podLabels", {"app.kubernetes.io/instance": "other"}),
    ("kafka.podLabels", {"app.kubernetes.io/component": "broker"}),
    ("metrics.serviceMonitor.labels", {"helm.sh/chart": "x"}),
    ("simulations", [{"name": "demo", "labels": {"app.kubernetes.io/part-of": "x"}}]),
    # Longer names make `<fullname>-operator-metrics` an invalid Service name.
    ("fullnameOverride", "f" * 47),
]


@pytest.mark.parametrize(
    ("key", "value"), BAD_VALUES, ids=[f"{k}={v!r}"[:60] for k, v in BAD_VALUES]
)
def test_bad_values_are_rejected(key: str, value: Any) -> None:
    assert errors(with_value(key, value)), f"{key}={value!r} was accepted"


@pytest.mark.tools
@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("containerPorts.health=0", "health"),
        ("kafka.numPartitions=0", "numPartitions"),
        ("watchNamespaces[0]=Not_A_Namespace", "watchNamespaces"),
        ("simulations[0].name=Demo", "simulations"),
        ("nosuchvalue=1", "nosuchvalue"),
        ("commonLabels.app\\.kubernetes\\.io/name=other", "app.kubernetes.io/name"),
        ("kafka.image.tag=", "kafka/image"),
    ],
)
def test_helm_rejects_bad_values(flag: str, expected: str) -> None:
    for command in (["template", "x", str(CHART_DIR)], ["lint", "--strict", str(CHART_DIR)]):
        output = helm_fails(*command, *KV, "--set", flag)
        assert "values don't meet the specifications of the schema" in output, output
        assert expected in output, output


@pytest.mark.tools
def test_helm_rejects_a_string_where_a_number_belongs() -> None:
    output = helm_fails(
        "template", "x", str(CHART_DIR), *KV, "--set-string", "kafka.numPartitions=6"
    )
    assert "numPartitions" in output


@pytest.mark.tools
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--set", "simulations[0].name=demo"],
            "set spec.kafka.bootstrapServers, or kafka.enabled=true",
        ),
        (
            [
                "--set",
                "kafka.enabled=true",
                "--set",
                "simulations[0].name=demo",
                "--set",
                "watchNamespaces[0]=other",
            ],
            "is not in watchNamespaces",
        ),
        (
            [
                "--set",
                "kafka.enabled=true",
                "--set",
                "simulations[0].name=demo",
                "--set",
                "simulations[1].name=demo",
            ],
            "is used twice",
        ),
        (["--set", "metrics.serviceMonitor.enabled=true"], "needs metrics.enabled=true"),
    ],
    ids=["no-bootstrap", "unwatched-namespace", "duplicate-name", "servicemonitor-no-metrics"],
)
def test_cross_field_rules_fail_the_render(flags: list[str], message: str) -> None:
    output = helm_fails("template", "x", str(CHART_DIR), *KV, *flags)
    assert message in output


@pytest.mark.tools
def test_good_values_pass_helm() -> None:
    helm(
        "template",
        "x",
        str(CHART_DIR),
        *KV,
        "--set",
        "kafka.enabled=true",
        "--set",
        "simulations[0].name=demo",
        "--set",
        "simulations[0].spec.machines=4",
    )


def test_a_kafka_image_by_digest_needs_no_tag() -> None:
    values = with_value("kafka.image.tag", "")
    values["kafka"]["image"]["digest"] = "sha256:" + "0" * 64
    assert errors(values) == []


def test_other_labels_are_accepted() -> None:
    assert errors(with_value("commonLabels", {"team": "data", "app.kubernetes.io/x": "y"})) == []

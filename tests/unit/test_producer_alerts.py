"""The chart's producer alerts, unit-tested by promtool: for each alert, input series where it
must fire and where it must not (tests/fixtures/prometheus/producer-alerts.test.yaml), against
the PrometheusRule the chart renders with its default values."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from testbed import tools
from testbed.prometheus import promtool
from tests.chart_support import find, render

pytestmark = [pytest.mark.tools, pytest.mark.subprocess]

ALERT_TESTS = Path(__file__).parents[1] / "fixtures" / "prometheus" / "producer-alerts.test.yaml"


def promtool_test(tmp_path: Path, *values: str) -> tuple[int, str]:
    """``promtool test rules`` of the alert tests against the chart rendered with ``values``."""
    tools.install(tools.PROMETHEUS)
    flags = ["--set", "producerMonitoring.prometheusRule.enabled=true"]
    for value in values:
        flags += ["--set", value]
    rule = find(render(*flags), "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    checked = promtool("check", "rules", str(tmp_path / "rules.yaml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    result = promtool("test", "rules", str(tmp_path / ALERT_TESTS.name))
    return result.returncode, result.stdout + result.stderr


def test_each_alert_fires_when_it_should_and_not_otherwise(tmp_path: Path) -> None:
    code, output = promtool_test(tmp_path)
    assert code == 0, output
    assert "SUCCESS" in output


def test_every_alert_of_the_rule_is_tested_firing_and_quiet() -> None:
    rule = find(render("--set", "producerMonitoring.prometheusRule.enabled=true"), "PrometheusRule")
    alerts = {r["alert"] for group in rule["spec"]["groups"] for r in group["rules"]}
    cases = [
        case for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
    ]  # fmt: skip
    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert firing == alerts
    assert quiet == alerts


def test_the_tests_follow_the_values(tmp_path: Path) -> None:
    """A longer ``for`` than the tests expect makes them fail: they test the rendered rule."""
    code, output = promtool_test(
        tmp_path, "producerMonitoring.prometheusRule.deliveryStalled.for=5m"
    )
    assert code != 0
    assert "SensorsimDeliveryStalled, time: 6m30s" in output

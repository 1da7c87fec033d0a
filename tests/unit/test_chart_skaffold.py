"""skaffold.yaml validates against skaffold's v4beta14 schema and matches the repository
(scripts/check_skaffold.py; the schema lives at ../shared/schemas/ beside the repository)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import check_skaffold
from tests.chart_support import repo_path

CONFIG: dict[str, Any] = yaml.safe_load(repo_path("skaffold.yaml").read_text())


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    path = check_skaffold.DEFAULT_SCHEMA
    assert path.is_file(), f"skaffold's schema is missing: {path}"
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def test_skaffold_yaml_is_valid_and_consistent() -> None:
    assert check_skaffold.check() == []


@pytest.mark.subprocess
def test_the_check_runs_as_a_script() -> None:
    result = subprocess.run(
        [sys.executable, str(repo_path("scripts", "check_skaffold.py"))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_skaffold_config_wires_the_built_image_into_the_chart() -> None:
    (artifact,) = CONFIG["build"]["artifacts"]
    assert artifact["image"] == "sensorsim"
    assert artifact["docker"]["dockerfile"] == "Dockerfile"
    (release,) = CONFIG["deploy"]["helm"]["releases"]
    assert release["chartPath"] == "charts/sensorsim"
    assert release["setValueTemplates"] == {
        "image.repository": "{{.IMAGE_REPO_sensorsim}}",
        "image.tag": "{{.IMAGE_TAG_sensorsim}}",
    }
    dev_values = yaml.safe_load(repo_path(release["valuesFiles"][0]).read_text())
    assert dev_values["kafka"]["enabled"] is True
    assert dev_values["simulations"]
    (kind_profile,) = [p for p in CONFIG["profiles"] if p["name"] == "kind"]
    assert {"op": "add", "path": "/build/local/push", "value": False} in kind_profile["patches"]


def write(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "skaffold.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_schema_errors_are_reported(tmp_path: Path, schema: dict[str, Any]) -> None:
    broken = copy.deepcopy(CONFIG)
    broken["deploy"]["helm"]["releases"][0]["chartPaht"] = "charts/sensorsim"
    broken["portForward"][0]["localPort"] = "9090"
    problems = check_skaffold.schema_errors(broken, schema)
    assert problems, "a misspelt key and a string port were accepted"


def test_a_wrong_image_variable_is_reported(tmp_path: Path) -> None:
    broken = copy.deepcopy(CONFIG)
    broken["deploy"]["helm"]["releases"][0]["setValueTemplates"]["image.tag"] = (
        "{{.IMAGE_TAG_other}}"
    )
    problems = check_skaffold.check(write(tmp_path, broken), check_skaffold.DEFAULT_SCHEMA)
    assert any("IMAGE_TAG_other" in p for p in problems), problems


def test_a_value_the_chart_does_not_have_is_reported(tmp_path: Path) -> None:
    broken = copy.deepcopy(CONFIG)
    broken["deploy"]["helm"]["releases"][0]["setValueTemplates"]["image.name"] = (
        "{{.IMAGE_REPO_sensorsim}}"
    )
    problems = check_skaffold.check(write(tmp_path, broken), check_skaffold.DEFAULT_SCHEMA)
    assert any("image.name is not a chart value" in p for p in problems), problems


def test_a_port_forward_to_nothing_is_reported(tmp_path: Path) -> None:
    broken = copy.deepcopy(CONFIG)
    broken["portForward"][0]["resourceName"] = "sensorsim-metrics"
    broken["portForward"][1]["port"] = 9999
    problems = check_skaffold.check(write(tmp_path, broken), check_skaffold.DEFAULT_SCHEMA)
    assert any("creates no such object" in p for p in problems), problems
    assert any("is not the served port" in p for p in problems), problems


def test_a_missing_schema_is_an_error_not_a_pass(tmp_path: Path) -> None:
    problems = check_skaffold.check(repo_path("skaffold.yaml"), tmp_path / "missing.json")
    assert problems
    assert "schema not found" in problems[0]

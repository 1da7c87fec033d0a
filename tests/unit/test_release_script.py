"""What `make release` checks and writes before it builds anything (scripts/release.py)."""

from __future__ import annotations

import tomllib

import pytest
import yaml
from packaging.version import Version

from scripts import release
from testbed.tools import REPO_ROOT

VALUES = (REPO_ROOT / "charts" / "sensorsim" / "values.yaml").read_text()


@pytest.mark.parametrize("version", ["0.1.0", "1.22.333", "10.0.0"])
def test_a_version_is_one_spelling_for_wheel_chart_and_tag(version: str) -> None:
    assert release.checked_version(version) == version
    assert str(Version(version)) == version  # PEP 440, already normalised


@pytest.mark.parametrize("version", ["", "1.2", "v1.2.3", "1.2.3rc1", "1.2.3-rc.1", "01.2.3"])
def test_other_versions_are_refused_with_the_rule(version: str) -> None:
    with pytest.raises(release.ReleaseError, match="VERSION"):
        release.checked_version(version)


def test_the_version_lands_in_pyproject() -> None:
    text = release.with_version((REPO_ROOT / "pyproject.toml").read_text(), "3.4.5")
    assert tomllib.loads(text)["project"]["version"] == "3.4.5"


def test_the_registry_lands_in_the_image_block_only() -> None:
    stamped = yaml.safe_load(release.with_image_registry(VALUES, "127.0.0.1:5000"))
    original = yaml.safe_load(VALUES)
    assert stamped["image"]["registry"] == "127.0.0.1:5000"
    assert stamped["kafka"]["image"] == original["kafka"]["image"]
    stamped["image"]["registry"] = original["image"]["registry"]
    assert stamped == original


def test_loopback_registries_are_plain_http() -> None:
    assert release.plain_http("127.0.0.1:5000")
    assert release.plain_http("localhost:5000")
    assert not release.plain_http("registry.example.com")
    assert not release.plain_http("registry.example.com:5000")


def test_an_unreachable_registry_is_refused_before_anything_is_built() -> None:
    with pytest.raises(release.ReleaseError, match="unreachable"):
        release.check_registry("127.0.0.1:1")
    with pytest.raises(release.ReleaseError, match="host"):
        release.check_registry("127.0.0.1:5000/charts")

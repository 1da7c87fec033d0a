"""The distribution ships every package of the source tree (a package missing from
``[tool.setuptools] packages`` works in the editable checkout and fails in the image)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
ROOTS = {"domain": REPO / "domain", "producer": REPO / "producer",
         "sensorsim_operator": REPO / "operator" / "sensorsim_operator"}  # fmt: skip


def source_packages() -> set[str]:
    found = set()
    for name, root in ROOTS.items():
        for init in root.rglob("__init__.py"):
            relative = init.parent.relative_to(root)
            found.add(".".join((name, *relative.parts)))
    return found


def test_every_package_of_the_source_tree_is_distributed() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    assert source_packages() - listed == set()
    assert listed - source_packages() == set()

"""Check skaffold.yaml offline: skaffold's own JSON schema, and agreement with the repository.

skaffold cannot be installed here (not in Debian; the Go module proxy answers 403 for its
module), so this is the check CI runs (tests/k8s/test_skaffold_deploy.py deploys its release):

1. ``skaffold.yaml`` validates against skaffold's ``v4beta14`` JSON schema, kept outside the
   repository at ``../shared/schemas/skaffold-v4beta14.json`` (override with ``--schema`` or
   ``SKAFFOLD_SCHEMA``).
2. What it names exists and matches: each artifact's context and Dockerfile; each Helm release's
   chart and values files; ``setValueTemplates`` keys that are values of the chart and templates
   that use the ``IMAGE_REPO_<artifact>``/``IMAGE_TAG_<artifact>`` of a declared artifact; the
   values (chart defaults + values files + placeholders for the templates) pass the chart's
   ``values.schema.json``; port-forwards that point at a Service/StatefulSet the release creates,
   on a port it serves.

Usage::

    python scripts/check_skaffold.py [--schema PATH]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
SKAFFOLD_FILE = REPO_ROOT / "skaffold.yaml"
DEFAULT_SCHEMA = REPO_ROOT.parent / "shared" / "schemas" / "skaffold-v4beta14.json"
API_VERSION = "skaffold/v4beta14"
# Where the producer pods serve /healthz, /readyz and /metrics (docs/contracts.md).
PRODUCER_HTTP_PORT = 8080

_TEMPLATE_VAR = re.compile(r"\{\{\s*\.(IMAGE_[A-Z_]+?)_(\w+)\s*\}\}")


def schema_path(cli_value: str | None) -> Path:
    if cli_value:
        return Path(cli_value)
    if os.environ.get("SKAFFOLD_SCHEMA"):
        return Path(os.environ["SKAFFOLD_SCHEMA"])
    return DEFAULT_SCHEMA


def schema_errors(config: Any, schema: Mapping[str, Any]) -> list[str]:
    """Errors of ``config`` against skaffold's schema, most specific first."""
    validator = jsonschema.Draft7Validator(schema)
    found: list[str] = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path)):
        # The schema is an anyOf of variants: report the variant errors that explain the failure.
        leaves = [error]
        if error.context:
            best = jsonschema.exceptions.best_match(error.context)
            leaves = [best] if best is not None else leaves
        for leaf in leaves:
            where = "/".join(str(part) for part in leaf.absolute_path) or "(top level)"
            found.append(f"skaffold.yaml: {where}: {leaf.message}")
    return found


def deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's value merge: maps merge key by key, everything else is replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def set_dotted(values: dict[str, Any], dotted: str, value: Any) -> None:
    """``--set a.b=value`` on a values map."""
    *parents, last = dotted.split(".")
    current = values
    for key in parents:
        current = current.setdefault(key, {})
    current[last] = value


def has_dotted(values: Mapping[str, Any], dotted: str) -> bool:
    current: Any = values
    for key in dotted.split("."):
        if not isinstance(current, Mapping) or key not in current:
            return False
        current = current[key]
    return True


def artifact_key(image: str) -> str:
    """How skaffold names an artifact in template variables (non-alphanumerics become _)."""
    return re.sub(r"[^A-Za-z0-9]", "_", image)


def chart_fullname(release: str, chart: Mapping[str, Any], values: Mapping[str, Any]) -> str:
    """The chart's `sensorsim.fullname` helper, in Python."""
    if values.get("fullnameOverride"):
        return str(values["fullnameOverride"])[:52].rstrip("-")
    name = str(values.get("nameOverride") or chart["name"])
    full = release if name in release else f"{release}-{name}"
    return full[:52].rstrip("-")


def release_values(release: Mapping[str, Any], chart_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """The values helm would get: chart defaults, values files, setValues (no templates yet)."""
    found: list[str] = []
    values: dict[str, Any] = yaml.safe_load((chart_dir / "values.yaml").read_text()) or {}
    for values_file in release.get("valuesFiles", []):
        path = REPO_ROOT / values_file
        if not path.is_file():
            found.append(f"release {release['name']}: values file {values_file} does not exist")
            continue
        values = deep_merge(values, yaml.safe_load(path.read_text()) or {})
    for key, value in (release.get("setValues") or {}).items():
        set_dotted(values, key, value)
    return values, found


def template_problems(
    release: Mapping[str, Any], values: dict[str, Any], artifacts: set[str]
) -> list[str]:
    """setValueTemplates must set chart values from declared artifacts' image variables."""
    found: list[str] = []
    name = release["name"]
    for key, template in (release.get("setValueTemplates") or {}).items():
        if not has_dotted(values, key):
            found.append(f"release {name}: setValueTemplates key {key} is not a chart value")
        used = _TEMPLATE_VAR.findall(str(template))
        if not used:
            found.append(f"release {name}: setValueTemplates {key} uses no image variable")
        found.extend(
            f"release {name}: {key} uses {variable}_{artifact}, but no build artifact is named "
            f"so (artifacts: {sorted(artifacts)})"
            for variable, artifact in used
            if artifact not in artifacts
        )
        # What skaffold would substitute, shaped like a real value, for the schema check.
        set_dotted(values, key, "localhost/sensorsim" if "REPO" in str(template) else "dev")
    return found


def port_forward_problems(
    release: Mapping[str, Any], fullname: str, values: Mapping[str, Any], config: Mapping[str, Any]
) -> list[str]:
    """Port-forwards in the release's namespace must target its objects on served ports."""
    found: list[str] = []
    namespace = release.get("namespace", "default")
    metrics = values.get("metrics", {})
    services: dict[str, int] = {}
    if metrics.get("enabled"):
        services[f"{fullname}-operator-metrics"] = int(metrics.get("service", {}).get("port", 0))
    statefulsets = {sim["name"]: PRODUCER_HTTP_PORT for sim in values.get("simulations", [])}
    for forward in config.get("portForward", []):
        if forward.get("namespace", namespace) != namespace:
            continue
        kind = str(forward.get("resourceType", "")).lower()
        target = forward.get("resourceName")
        known = {"service": services, "statefulset": statefulsets}.get(kind)
        if known is None:
            found.append(f"portForward {target}: unsupported resourceType {kind}")
        elif target not in known:
            found.append(
                f"portForward {kind}/{target}: release {release['name']} creates no such "
                f"object (it creates {sorted(known)})"
            )
        elif int(forward.get("port", 0)) != known[target]:
            found.append(
                f"portForward {kind}/{target}: port {forward.get('port')} is not the served "
                f"port {known[target]}"
            )
    return found


def release_problems(
    release: Mapping[str, Any], artifacts: set[str], config: Mapping[str, Any]
) -> list[str]:
    """What is wrong between one Helm release and the repository."""
    name = release["name"]
    chart_dir = REPO_ROOT / str(release.get("chartPath", ""))
    if not (chart_dir / "Chart.yaml").is_file():
        return [f"release {name}: chartPath {chart_dir} is not a chart"]
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    values, found = release_values(release, chart_dir)
    found += template_problems(release, values, artifacts)
    schema_file = chart_dir / "values.schema.json"
    if schema_file.is_file():
        validator = jsonschema.Draft7Validator(json.loads(schema_file.read_text()))
        for error in validator.iter_errors(values):
            where = ".".join(str(part) for part in error.absolute_path)
            found.append(f"release {name}: values.schema.json rejects {where}: {error.message}")
    fullname = chart_fullname(name, chart, values)
    return found + port_forward_problems(release, fullname, values, config)


def consistency_problems(config: Mapping[str, Any]) -> list[str]:
    """What skaffold.yaml names that does not exist or does not match."""
    found: list[str] = []
    if config.get("apiVersion") != API_VERSION:
        found.append(f"apiVersion must be {API_VERSION}")
    artifacts: set[str] = set()
    for artifact in config.get("build", {}).get("artifacts", []):
        image = artifact["image"]
        artifacts.add(artifact_key(image))
        context = REPO_ROOT / artifact.get("context", ".")
        dockerfile = context / artifact.get("docker", {}).get("dockerfile", "Dockerfile")
        if not context.is_dir():
            found.append(f"artifact {image}: context {context} does not exist")
        if not dockerfile.is_file():
            found.append(f"artifact {image}: Dockerfile {dockerfile} does not exist")
    releases = config.get("deploy", {}).get("helm", {}).get("releases", [])
    if not releases:
        found.append("deploy.helm.releases is empty: the chart is not deployed")
    for release in releases:
        found.extend(release_problems(release, artifacts, config))
    return found


def check(skaffold_file: Path = SKAFFOLD_FILE, schema_file: Path = DEFAULT_SCHEMA) -> list[str]:
    """All problems of ``skaffold_file``; empty when it is valid and consistent."""
    if not schema_file.is_file():
        return [
            f"skaffold schema not found at {schema_file} (expected ../shared/schemas/ beside "
            "the repository; pass --schema or set SKAFFOLD_SCHEMA)"
        ]
    documents = [doc for doc in yaml.safe_load_all(skaffold_file.read_text()) if doc is not None]
    schema = json.loads(schema_file.read_text())
    found: list[str] = []
    for config in documents:
        found.extend(schema_errors(config, schema))
        found.extend(consistency_problems(config))
    if not documents:
        found.append(f"{skaffold_file} is empty")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--schema", help="skaffold's JSON schema (default ../shared/schemas/...)")
    parser.add_argument("--file", type=Path, default=SKAFFOLD_FILE, help="skaffold.yaml to check")
    args = parser.parse_args(argv)
    found = check(args.file, schema_path(args.schema))
    for problem in found:
        print(problem, file=sys.stderr)
    if not found:
        print(f"{args.file}: valid {API_VERSION} and consistent with the repository")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

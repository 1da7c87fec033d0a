"""Helpers shared by the Helm chart's tests (tests/unit/test_chart_*.py, tests/k8s/test_chart_*.py).

helm comes from the project's pinned tool build (``tool_path("helm")``); when it is missing the
calls raise, so the tests fail with the reason instead of being skipped.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from testbed.tools import REPO_ROOT, tool_path, versions

CHART_DIR = REPO_ROOT / "charts" / "sensorsim"
CI_VALUES_DIR = CHART_DIR / "ci"
ALL_OPTIONS_VALUES = CI_VALUES_DIR / "all-options-values.yaml"
DEV_VALUES = CI_VALUES_DIR / "dev-values.yaml"
CRD_NAME = "sensorsimulations.sensorsim.io"
RESTRICTED_UID = 10001
# Render and lint for the Kubernetes version the project tests against (tools/versions.env), so
# results do not depend on the default version compiled into the helm binary.
KUBE_VERSION = versions()["KUBERNETES_VERSION"]

Manifest = dict[str, Any]


def helm(*args: str, check: bool = True, env: Mapping[str, str] | None = None) -> str:
    """Run the pinned helm binary; return stdout, raise with helm's message on failure."""
    result = subprocess.run(
        [str(tool_path("helm")), *args],
        capture_output=True,
        text=True,
        check=False,
        env=dict(env) if env is not None else None,
        timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}{result.stdout}"
        )
    return result.stdout if result.returncode == 0 else result.stderr + result.stdout


def helm_fails(*args: str) -> str:
    """Run helm expecting failure; return its error output."""
    result = subprocess.run(
        [str(tool_path("helm")), *args], capture_output=True, text=True, check=False, timeout=300
    )
    assert result.returncode != 0, f"helm {' '.join(args)} unexpectedly succeeded"
    return result.stderr + result.stdout


def parse_manifests(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]


def render(*args: str, release: str = "sensorsim", namespace: str = "sensorsim") -> list[Manifest]:
    """``helm template`` of the chart; extra args like ``-f file`` or ``--set k=v``."""
    return parse_manifests(
        helm(
            "template",
            release,
            str(CHART_DIR),
            "-n",
            namespace,
            "--kube-version",
            KUBE_VERSION,
            *args,
        )
    )


def kinds(manifests: Sequence[Manifest]) -> list[tuple[str, str]]:
    return sorted((m["kind"], m["metadata"]["name"]) for m in manifests)


def find(manifests: Sequence[Manifest], kind: str, name: str | None = None) -> Manifest:
    matches = [
        m
        for m in manifests
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {kinds(matches)}"
    return matches[0]


def find_all(manifests: Sequence[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def pod_specs(manifests: Sequence[Manifest]) -> Iterator[tuple[str, Manifest]]:
    """(``Kind/name``, pod spec) of every workload and pod in ``manifests``."""
    for manifest in manifests:
        kind = manifest["kind"]
        if kind == "Pod":
            yield f"Pod/{manifest['metadata']['name']}", manifest["spec"]
        elif kind in {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}:
            yield f"{kind}/{manifest['metadata']['name']}", manifest["spec"]["template"]["spec"]


_RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(pod: Mapping[str, Any]) -> list[str]:
    """Where a pod spec breaks the Pod Security Standards "restricted" profile (empty: none).

    The checks of the profile's current version: the baseline host/privilege rules, restricted
    volume types, no privilege escalation, non-root, a RuntimeDefault/Localhost seccomp profile,
    and capabilities dropped to ALL (adding back at most NET_BIND_SERVICE).
    """
    problems: list[str] = []
    problems.extend(
        f"{field} is set" for field in ("hostNetwork", "hostPID", "hostIPC") if pod.get(field)
    )
    pod_context = pod.get("securityContext") or {}
    for volume in pod.get("volumes") or []:
        types = set(volume) - {"name"}
        if not types <= _RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']} has type {sorted(types)}")
    containers = [*(pod.get("initContainers") or []), *pod["containers"]]
    for container in containers:
        name = container["name"]
        context = container.get("securityContext") or {}
        if context.get("privileged"):
            problems.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser is 0")
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get(
            "type"
        )
        if seccomp not in {"RuntimeDefault", "Localhost"}:
            problems.append(f"{name}: seccompProfile.type is {seccomp!r}")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{name}: capabilities.drop lacks ALL")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {capabilities['add']}")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{name}: hostPort {port['hostPort']}")
    return problems


def repo_path(*parts: str) -> Path:
    return REPO_ROOT.joinpath(*parts)

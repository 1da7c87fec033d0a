"""kubectl and helm as clients of a test cluster: the environment they run in and how a failure
is reported.

The environment points them at the cluster's kubeconfig and drops the in-cluster variables that
would make them ignore it; helm's cache, configuration and data live with the cluster, so
charts and repositories of one test run never leak into another or into the user's home.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from testbed import tools


def client_env(kubeconfig: Path, helm_home: Path) -> dict[str, str]:
    """This process's environment with KUBECONFIG set, the pinned tools first on PATH, helm's
    directories under ``helm_home`` and no ``KUBERNETES_SERVICE_*`` variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
    path = os.pathsep.join(str(d) for d in tools.bin_dirs())
    env["PATH"] = f"{path}{os.pathsep}{env.get('PATH', '')}"
    env["KUBECONFIG"] = str(kubeconfig)
    env["HELM_CACHE_HOME"] = str(helm_home / "cache")
    env["HELM_CONFIG_HOME"] = str(helm_home / "config")
    env["HELM_DATA_HOME"] = str(helm_home / "data")
    return env


def run_client(
    tool: str,
    args: Sequence[str],
    *,
    env: dict[str, str],
    input: str | None,
    check: bool,
    timeout: float,
) -> subprocess.CompletedProcess[str]:
    """Run the pinned ``tool`` (``kubectl``, ``helm``) with ``args``; with ``check``, a non-zero
    exit raises with the command and its whole output, which is what a failing test needs."""
    result = subprocess.run(
        [str(tools.tool_path(tool)), *args],
        input=input,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{tool} {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result

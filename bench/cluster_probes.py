"""What the operator benchmark reads from the cluster and the processes: the control plane,
kwok nodes, the API server's request counters, a process's CPU time and memory, the operator's
metrics."""

from __future__ import annotations

import json
import math
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testbed import tools
from testbed.cluster import NODE_NAME, KubeCluster

PODS_PER_NODE = 450  # below the fake node's capacity of 500, which also holds other pods
OPERATOR_REQUESTS = {  # (verb, resource, subresource) the operator alone sends
    ("GET", "sensorsimulations", ""),
    ("PATCH", "sensorsimulations", ""),
    ("PATCH", "sensorsimulations", "status"),
    *((verb, kind, "") for verb in ("GET", "PATCH") for kind in ("configmaps", "services")),
    ("GET", "statefulsets", ""),
    ("PATCH", "statefulsets", ""),
    # server-side apply (kubectl's of the simulations taken off)
    *(("APPLY", kind, "") for kind in ("configmaps", "services", "statefulsets")),
    ("APPLY", "sensorsimulations", ""),
}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: every reported value was measured)."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


@contextmanager
def control_plane(kubeconfig: str | None, workdir: Path) -> Iterator[dict[str, str]]:
    """The environment of a cluster: the given kubeconfig, or a fresh local control plane."""
    if kubeconfig:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
        env["KUBECONFIG"] = kubeconfig
        yield env
        return
    for tool in tools.GO_TOOLS:
        tools.install(tool)
    cluster = KubeCluster(workdir / "cluster")
    cluster.start()
    try:
        yield cluster.env
    finally:
        cluster.stop()


def kubectl(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    binary = str(tools.tool_path("kubectl")) if "KUBECONFIG" in env else "kubectl"
    result = subprocess.run(
        [binary, *args], input=stdin, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr}")
    return result.stdout


def metric_samples(port: int, name: str) -> dict[str, float]:
    """The samples of one metric from the operator's /metrics, by label set."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        line.rsplit(" ", 1)[0][len(name) :]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{")
    }


def ensure_nodes(env: dict[str, str], pods: int) -> None:
    """Enough kwok nodes for ``pods``: copies of the control plane's first fake node."""
    first = json.loads(kubectl(env, "get", "node", NODE_NAME, "-o", "json"))
    for i in range(1, math.ceil(pods / PODS_PER_NODE)):
        name = f"{NODE_NAME.rsplit('-', 1)[0]}-{i}"
        labels = {**first["metadata"].get("labels", {}), "kubernetes.io/hostname": name}
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": first["metadata"].get("annotations", {}),
            },
            "status": {key: first["status"][key] for key in ("allocatable", "capacity")},
        }
        kubectl(env, "apply", "--server-side", "-f", "-", stdin=json.dumps(node))
        kubectl(env, "wait", "--for=condition=Ready", f"node/{name}", "--timeout=120s")


def request_counts(env: dict[str, str]) -> dict[tuple[str, str, str], float]:
    """apiserver_request_total by (verb, resource, subresource), summed over the other labels."""
    counts: dict[tuple[str, str, str], float] = {}
    for line in kubectl(env, "get", "--raw", "/metrics").splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, value = line[len("apiserver_request_total{") :].rsplit("} ", 1)
        labels = {
            part.split("=", 1)[0]: part.split("=", 1)[1].strip('"')
            for part in labels_text.split('",')
            if "=" in part
        }
        key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
        counts[key] = counts.get(key, 0.0) + float(value)
    return counts


def operator_requests(
    before: dict[tuple[str, str, str], float], after: dict[tuple[str, str, str], float], count: int
) -> dict[str, float]:
    """The operator's requests over a run, by "VERB resource[/subresource]" (kubectl's one
    apply per simulation taken off)."""
    found: dict[str, float] = {}
    for key in sorted(OPERATOR_REQUESTS):
        delta = after.get(key, 0.0) - before.get(key, 0.0)
        if key == ("APPLY", "sensorsimulations", ""):
            delta -= count
        verb, resource, sub = key
        if delta:
            found[f"{verb} {resource}{'/' + sub if sub else ''}"] = delta
    return found

"""Operator benchmark: how fast SensorSimulations applied at once get their StatefulSets and
reach Ready=True, what it costs the operator and the API server, by fleet size.

    .venv/bin/python bench/operator_bench.py                         # 50, on its own control plane
    .venv/bin/python bench/operator_bench.py --series 50,200,500 --baseline
    .venv/bin/python bench/operator_bench.py --kubeconfig K          # uses an existing cluster
    .venv/bin/python bench/operator_bench.py --count 50 --replicas 2 --json out.json
    .venv/bin/python bench/operator_bench.py --big-simulation 1000,250   # bench/big_simulation.py

Method, per size: the CRD is installed, enough kwok nodes for every pod are added, and the
operator (``python -m sensorsim_operator``, a subprocess) is started and idle; then one
``kubectl apply --server-side`` creates ``--count`` simulations in a fresh namespace. t0 is taken
just before kubectl starts. Meanwhile a poller lists the simulations and the StatefulSets every
``--poll`` seconds and records, per simulation, the first poll that sees it, the first that sees
its StatefulSet, and the first that sees ``Ready=True`` with ``observedGeneration == generation``
and all replicas ready. Latencies are reported from t0 (what a user applying them waits) and
from the first poll that saw each object (the operator's own share); both are upper bounds
within one poll interval. ``--baseline`` first applies the same StatefulSets directly (no
operator) and times them to all pods Ready: the floor the operator's Ready latency is compared
with, measured in the same run.

The operator's peak resident memory is its ``VmHWM`` from ``/proc/<pid>/status``, read before
it stops; its CPU time from ``/proc/<pid>/stat``; its reconciles from its own /metrics. API
requests come from the API server's ``apiserver_request_total`` (difference over the run),
counting what only the operator sends: reads and patches of simulations (less kubectl's one
apply each), their status, and the reads and patches of their ConfigMaps, Services and
StatefulSets (the StatefulSet controller writes only their status). Lists and watches are left
out (the poller lists; the watches are long-lived), and so are Events.

SIGTERM and SIGINT stop the operator and the control plane the bench started.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "operator")]

from bench.big_simulation import BigResult, print_big, run_big  # noqa: E402
from bench.cluster_probes import (  # noqa: E402
    control_plane,
    cpu_seconds,
    ensure_nodes,
    kubectl,
    metric_samples,
    operator_requests,
    percentile,
    request_counts,
    rss_mib,
)
from bench.simulation_manifests import baseline_manifest, is_ready, simulations  # noqa: E402
from sensorsim_operator.kube import ApiKube  # noqa: E402
from testbed import tools  # noqa: E402
from testbed.operator import OperatorProcess  # noqa: E402

CRD_FILE = REPO / "charts" / "sensorsim" / "crds" / "sensorsimulations.sensorsim.io.yaml"
SELECTOR = "app.kubernetes.io/managed-by=sensorsim-operator"


@dataclass
class Latencies:
    """Seconds until the StatefulSet was seen, and until Ready=True was seen."""

    sts_created_p50: float
    sts_created_p95: float
    sts_created_max: float
    ready_p50: float
    ready_p95: float
    ready_max: float

    @classmethod
    def of(cls, created: list[float], ready: list[float]) -> Latencies:
        return cls(
            sts_created_p50=round(percentile(created, 50), 3),
            sts_created_p95=round(percentile(created, 95), 3),
            sts_created_max=round(max(created), 3),
            ready_p50=round(percentile(ready, 50), 3),
            ready_p95=round(percentile(ready, 95), 3),
            ready_max=round(max(ready), 3),
        )


@dataclass
class Result:
    count: int
    replicas_each: int
    poll_seconds: float
    apply_seconds: float
    from_apply: Latencies
    from_object_seen: Latencies
    baseline_statefulsets: Latencies | None  # the same StatefulSets applied without the operator
    baseline_from_seen: Latencies | None  # per StatefulSet, from the first poll that saw it
    operator_peak_rss_mib: float
    operator_rss_idle_mib: float
    operator_cpu_seconds: float
    reconciles: dict[str, float]
    reconciles_per_simulation: float
    api_requests: dict[str, float]  # the operator's, by "VERB resource[/subresource]"
    api_requests_per_simulation: float
    baseline_ready_ratio: float | None  # seen -> Ready p95 over the baseline's, both per object
    baseline_apply_ratio: float | None  # kubectl start -> Ready p95 over the baseline's
    poll_gap_p50: float
    poll_gap_max: float
    timeline: dict[str, tuple[float, float, float]]  # per simulation: seen, StatefulSet, Ready
    cpu_count: int
    python: str


@dataclass
class Timeline:
    """Seconds after t0 (kubectl starting) at which each object was first seen: applied, its
    StatefulSet existing, Ready."""

    applied_seconds: float
    seen: dict[str, float]
    created: dict[str, float]
    ready: dict[str, float]
    poll_gaps: list[float]


def apply_and_watch(
    api: ApiKube,
    kubectl_binary: str,
    env: dict[str, str],
    manifest: str,
    *,
    namespace: str,
    args: argparse.Namespace,
    baseline: bool = False,
) -> Timeline:
    """Apply ``manifest`` with one ``kubectl apply --server-side`` and poll until every object is
    Ready. The poller runs while kubectl is still sending objects."""
    sims_path = f"/apis/sensorsim.io/v1alpha1/namespaces/{namespace}/sensorsimulations"
    sts_path = f"/apis/apps/v1/namespaces/{namespace}/statefulsets"
    t0 = time.monotonic()
    applying = subprocess.Popen(
        [kubectl_binary, "apply", "--server-side", "-f", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    assert applying.stdin is not None
    applying.stdin.write(manifest)
    applying.stdin.close()
    timeline = Timeline(applied_seconds=0.0, seen={}, created={}, ready={}, poll_gaps=[])
    applied: float | None = None
    last_poll = time.monotonic()
    while len(timeline.ready) < args.count and time.monotonic() < t0 + args.timeout:
        if applied is None and applying.poll() is not None:
            if applying.returncode != 0:
                raise RuntimeError("kubectl apply failed")
            applied = time.monotonic() - t0
        now = time.monotonic() - t0
        if not baseline:
            for item in (api.get(sims_path) or {"items": []})["items"]:
                timeline.seen.setdefault(item["metadata"]["name"], now)
                if is_ready(item):
                    timeline.ready.setdefault(item["metadata"]["name"], now)
        for item in (api.get(sts_path) or {"items": []})["items"]:
            name = item["metadata"]["name"]
            timeline.created.setdefault(name, now)
            if baseline:
                timeline.seen.setdefault(name, now)
                status = item.get("status") or {}
                if status.get("readyReplicas") == item["spec"]["replicas"]:
                    timeline.ready.setdefault(name, now)
        time.sleep(args.poll)
        timeline.poll_gaps.append(time.monotonic() - last_poll)
        last_poll = time.monotonic()
    applying.wait(timeout=60)
    if len(timeline.ready) < args.count or applied is None:
        raise RuntimeError(
            f"only {len(timeline.ready)}/{args.count} Ready within {args.timeout}s "
            f"(StatefulSets: {len(timeline.created)})"
        )
    timeline.applied_seconds = applied
    return timeline


def run_size(env: dict[str, str], workdir: Path, args: argparse.Namespace, count: int) -> Result:
    """One size of the series: the baseline (if asked), then the operator's run."""
    args = argparse.Namespace(**{**vars(args), "count": count})
    ensure_nodes(env, count * args.replicas)
    namespace = f"bench-{count}-{int(time.time())}"
    kubectl(env, "create", "namespace", namespace)
    api = ApiKube.from_environment()
    binary = str(tools.tool_path("kubectl")) if not args.kubeconfig else "kubectl"
    base: Timeline | None = None
    if args.baseline:
        # First, on a quiet cluster, and cleaned up before the operator's run.
        base_ns = f"{namespace}-base"
        kubectl(env, "create", "namespace", base_ns)
        base = apply_and_watch(
            api,
            binary,
            env,
            baseline_manifest(base_ns, count, args.replicas),
            namespace=base_ns,
            args=args,
            baseline=True,
        )
        kubectl(env, "delete", "namespace", base_ns, "--wait=true", "--timeout=600s")
    running = OperatorProcess(
        env,
        workdir / f"operator-{count}.log",
        OPERATOR_LOG_FORMAT="json",
        OPERATOR_LOG_LEVEL="WARNING",
        PRODUCER_IMAGE="sensorsim:bench",
    )
    with running:
        assert running.process is not None
        pid = running.process.pid
        time.sleep(2)  # idle: startup done
        idle_rss = rss_mib(pid, "VmRSS")
        cpu_before = cpu_seconds(pid)
        requests_before = request_counts(env)
        manifest = simulations(namespace, count, args.replicas)
        timeline = apply_and_watch(api, binary, env, manifest, namespace=namespace, args=args)
        requests = operator_requests(requests_before, request_counts(env), count)
        peak = rss_mib(pid, "VmHWM")
        operator_cpu = cpu_seconds(pid) - cpu_before
        reconciles = metric_samples(running.metrics_port, "sensorsim_operator_reconciles_total")
    kubectl(env, "delete", "namespace", namespace, "--wait=true", "--timeout=600s")
    api.close()
    seen, created, ready = timeline.seen, timeline.created, timeline.ready
    # Per object, from the first poll that saw it: the operator's own share, without the
    # time kubectl spent sending the objects before it.
    own = Latencies.of([created[n] - seen[n] for n in created], [ready[n] - seen[n] for n in ready])
    baseline = (
        Latencies.of(list(base.created.values()), list(base.ready.values())) if base else None
    )
    baseline_seen = (
        Latencies.of(
            [base.created[n] - base.seen[n] for n in base.created],
            [base.ready[n] - base.seen[n] for n in base.ready],
        )
        if base
        else None
    )
    from_apply = Latencies.of(list(created.values()), list(ready.values()))
    return Result(
        count=count,
        replicas_each=args.replicas,
        poll_seconds=args.poll,
        apply_seconds=round(timeline.applied_seconds, 3),
        from_apply=from_apply,
        from_object_seen=own,
        baseline_statefulsets=baseline,
        baseline_from_seen=baseline_seen,
        operator_peak_rss_mib=round(peak, 1),
        operator_rss_idle_mib=round(idle_rss, 1),
        operator_cpu_seconds=round(operator_cpu, 2),
        reconciles=reconciles,
        reconciles_per_simulation=round(sum(reconciles.values()) / count, 2),
        api_requests=requests,
        api_requests_per_simulation=round(sum(requests.values()) / count, 2),
        baseline_ready_ratio=(
            round(own.ready_p95 / baseline_seen.ready_p95, 2)
            if baseline_seen and baseline_seen.ready_p95
            else None
        ),
        baseline_apply_ratio=(
            round(from_apply.ready_p95 / baseline.ready_p95, 2)
            if baseline and baseline.ready_p95
            else None
        ),
        poll_gap_p50=round(percentile(timeline.poll_gaps, 50), 3),
        poll_gap_max=round(max(timeline.poll_gaps), 3),
        timeline={n: (seen[n], created[n], ready[n]) for n in sorted(ready)},
        cpu_count=os.cpu_count() or 0,
        python=platform.python_version(),
    )


def run(args: argparse.Namespace) -> tuple[list[Result], list[BigResult]]:
    results: list[Result] = []
    big: list[BigResult] = []
    with tempfile.TemporaryDirectory(prefix="operator-bench-") as tmp:
        workdir = Path(tmp)
        with control_plane(args.kubeconfig, workdir) as env:
            kubectl(env, "apply", "--server-side", "-f", str(CRD_FILE))
            kubectl(env, "wait", "--for=condition=Established", "crd/" + CRD_FILE.stem)
            os.environ["KUBECONFIG"] = env["KUBECONFIG"]
            for count in args.series:
                result = run_size(env, workdir, args, count)
                print_result(result)
                results.append(result)
            for pods in args.big_simulation:
                big.append(run_big(env, workdir, pods, timeout=args.timeout))
    return results, big


def print_result(result: Result) -> None:
    print(f"{result.count} SensorSimulations x {result.replicas_each} pods, applied at once")
    print(f"kubectl apply --server-side of all objects took {result.apply_seconds:.2f} s")
    print("| latency (s) | p50 | p95 | max |")
    print("|---|---|---|---|")
    for label, lat in (
        ("kubectl apply start", result.from_apply),
        ("simulation first seen", result.from_object_seen),
    ):
        print(
            f"| {label} -> StatefulSet created | {lat.sts_created_p50:.2f} | "
            f"{lat.sts_created_p95:.2f} | {lat.sts_created_max:.2f} |"
        )
        print(
            f"| {label} -> Ready=True | {lat.ready_p50:.2f} | {lat.ready_p95:.2f} | "
            f"{lat.ready_max:.2f} |"
        )
    for label, base in (
        ("kubectl apply start", result.baseline_statefulsets),
        ("StatefulSet first seen", result.baseline_from_seen),
    ):
        if base is not None:
            print(
                f"| baseline (StatefulSets applied directly): {label} -> all pods Ready | "
                f"{base.ready_p50:.2f} | {base.ready_p95:.2f} | {base.ready_max:.2f} |"
            )
    print(
        f"Ready p95 over the baseline's: {result.baseline_ready_ratio} per object, "
        f"{result.baseline_apply_ratio} from kubectl's start"
    )
    print(
        f"operator RSS: idle {result.operator_rss_idle_mib} MiB, "
        f"peak {result.operator_peak_rss_mib} MiB (VmHWM)"
    )
    print(f"operator CPU during the run: {result.operator_cpu_seconds} s")
    print(f"reconciles: {result.reconciles_per_simulation} per simulation {result.reconciles}")
    print(
        f"operator API requests: {result.api_requests_per_simulation} per simulation "
        f"{result.api_requests}"
    )
    print(
        f"poll period: p50 {result.poll_gap_p50} s, max {result.poll_gap_max} s "
        f"(the resolution of the latencies)"
    )
    print(flush=True)


def print_series(results: list[Result]) -> None:
    print("| simulations | seen->STS p50 | p95 | seen->Ready p50 | p95 | baseline seen->Ready "
          "p95 | ratio | reconciles/sim | API requests/sim | CPU s | peak RSS MiB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        own, base = r.from_object_seen, r.baseline_from_seen
        print(
            f"| {r.count} | {own.sts_created_p50:.2f} | {own.sts_created_p95:.2f} | "
            f"{own.ready_p50:.2f} | {own.ready_p95:.2f} | "
            f"{f'{base.ready_p95:.2f}' if base else '-'} | "
            f"{r.baseline_ready_ratio if r.baseline_ready_ratio is not None else '-'} | "
            f"{r.reconciles_per_simulation} | {r.api_requests_per_simulation} | "
            f"{r.operator_cpu_seconds} | {r.operator_peak_rss_mib} |"
        )


def _stop_on_sigterm(signum: int, _frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so the operator and the control plane are stopped."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50, help="simulations applied at once")
    parser.add_argument(
        "--series", help="several counts, comma-separated (e.g. 50,200,500), one after the other"
    )
    parser.add_argument("--replicas", type=int, default=2, help="producer pods per simulation")
    parser.add_argument("--poll", type=float, default=0.1, help="poll interval (seconds)")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after (seconds)")
    parser.add_argument("--kubeconfig", help="use this cluster instead of starting one")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--big-simulation",
        help="pods of one large simulation, comma-separated (e.g. 1000,250): create, a replica "
        "change with a second simulation created meanwhile, a settings rollout (after the series)",
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also time the same StatefulSets applied directly, without the operator",
    )
    args = parser.parse_args(argv)
    args.big_simulation = [int(n) for n in (args.big_simulation or "").split(",") if n]
    default = [] if args.big_simulation else [args.count]
    args.series = [int(n) for n in args.series.split(",")] if args.series else default
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        results, big = run(args)
    except KeyboardInterrupt as stopped:
        print(f"stopped ({stopped}); the control plane was stopped", file=sys.stderr)
        return 130
    if results:
        print_series(results)
    if big:
        print_big(big)
    if args.json:
        found = {"series": [asdict(r) for r in results], "big": [asdict(b) for b in big]}
        args.json.write_text(json.dumps(found, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

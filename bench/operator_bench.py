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
just before kubectl starts. Two watches, of the simulations and of the StatefulSets, started
before kubectl (bench/object_watch.py), record the arrival time of each object's first event and
of the first event showing it ready: for a simulation ``Ready=True`` with ``observedGeneration
== generation`` and all replicas ready. Latencies are reported from t0 (what a user applying
them waits) and from the simulation's first event (the operator's own share). ``--baseline``
first applies the same StatefulSets directly (no operator) and times them, from each
StatefulSet's first event, to all pods Ready: the floor the operator's Ready latency is compared
with, measured in the same run. Each watch reports how many objects it learnt from events and
from lists against those expected.

The operator's peak resident memory is its ``VmHWM`` from ``/proc/<pid>/status``, read before
it stops; its CPU time from ``/proc/<pid>/stat``; its reconciles from its own /metrics. API
requests come from the API server's ``apiserver_request_total`` (difference over the run),
counting what only the operator sends: reads and patches of simulations (less kubectl's one
apply each), their status, and the reads and patches of their ConfigMaps, Services and
StatefulSets (the StatefulSet controller writes only their status). Lists and watches are left
out (the bench's watches list once; the watches are long-lived), and so are Events.

SIGTERM and SIGINT stop the operator and the control plane the bench started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

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
from bench.object_watch import ObjectWatch, api_client, latencies, wait_for  # noqa: E402
from bench.simulation_manifests import (  # noqa: E402
    SIMULATIONS,
    STATEFULSETS,
    baseline_manifest,
    is_ready,
    object_names,
    simulations,
)
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
    apply_seconds: float
    from_apply: Latencies
    from_object_seen: Latencies
    baseline_statefulsets: Latencies | None  # the same StatefulSets applied without the operator
    baseline_from_seen: Latencies | None  # per StatefulSet, from its first event
    operator_peak_rss_mib: float
    operator_rss_idle_mib: float
    operator_cpu_seconds: float
    reconciles: dict[str, float]
    reconciles_per_simulation: float
    api_requests: dict[str, float]  # the operator's, by "VERB resource[/subresource]"
    api_requests_per_simulation: float
    baseline_ready_ratio: float | None  # seen -> Ready p95 over the baseline's, both per object
    baseline_apply_ratio: float | None  # kubectl start -> Ready p95 over the baseline's
    watch_coverage: dict[str, str]  # by watch: objects learnt from events and lists, expected
    missing: dict[str, int]  # by latency: expected objects lacking one of its two times
    timeline: dict[str, tuple[float, float, float]]  # per simulation: seen, StatefulSet, Ready
    cpu_count: int
    python: str


@dataclass
class Timeline:
    """Seconds after t0 (kubectl starting) at which each object's events arrived: the
    simulation's first (seen), its StatefulSet's first (created), the first showing it Ready;
    and how the watches learnt them, against the objects expected."""

    applied_seconds: float
    seen: dict[str, float]
    created: dict[str, float]
    ready: dict[str, float]
    coverage: dict[str, str]


def _all_pods_ready(stateful_set: dict[str, Any]) -> bool:
    status = stateful_set.get("status") or {}
    return bool(status.get("readyReplicas") == stateful_set["spec"]["replicas"])


def apply_and_watch(
    kubectl_binary: str,
    env: dict[str, str],
    manifest: str,
    *,
    namespace: str,
    args: argparse.Namespace,
    baseline: bool = False,
) -> Timeline:
    """Apply ``manifest`` with one ``kubectl apply --server-side`` and wait until every object
    is Ready, as the watches (started before kubectl) report it. Baseline: the manifest holds
    StatefulSets; each is seen and created by its first event, Ready with all pods ready."""
    changed = threading.Condition()
    api = api_client()
    simulations_watch = ObjectWatch(api, SIMULATIONS, namespace, is_ready, changed)
    sets_watch = ObjectWatch(api, STATEFULSETS, namespace, _all_pods_ready, changed)
    watches = [sets_watch] if baseline else [simulations_watch, sets_watch]
    ready = sets_watch.log if baseline else simulations_watch.log
    with contextlib.ExitStack() as stack:
        for each in watches:
            stack.enter_context(each)
        t0 = time.monotonic()
        applying = subprocess.run(
            [kubectl_binary, "apply", "--server-side", "-f", "-"],
            input=manifest,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            check=False,
        )
        applied = time.monotonic() - t0
        if applying.returncode != 0:
            raise RuntimeError(f"kubectl apply failed: {applying.stderr}")
        finished = wait_for(
            changed,
            watches,
            lambda: len(ready.ready) >= args.count,
            timeout=max(0.0, args.timeout - applied),
        )
    api.close()  # type: ignore[no-untyped-call]
    coverage = {"StatefulSets": sets_watch.log.coverage(args.count)}
    if not baseline:
        coverage["simulations"] = simulations_watch.log.coverage(args.count)
    if not finished:
        raise RuntimeError(f"not all Ready within {args.timeout}s: {coverage}")
    seen = sets_watch.log.added if baseline else simulations_watch.log.added
    return Timeline(
        applied_seconds=applied,
        seen={name: at - t0 for name, at in seen.items()},
        created={name: at - t0 for name, at in sets_watch.log.added.items()},
        ready={name: at - t0 for name, at in ready.ready.items()},
        coverage=coverage,
    )


def run_size(env: dict[str, str], workdir: Path, args: argparse.Namespace, count: int) -> Result:
    """One size of the series: the baseline (if asked), then the operator's run."""
    args = argparse.Namespace(**{**vars(args), "count": count})
    ensure_nodes(env, count * args.replicas)
    namespace = f"bench-{count}-{int(time.time())}"
    kubectl(env, "create", "namespace", namespace)
    binary = str(tools.tool_path("kubectl")) if not args.kubeconfig else "kubectl"
    base: Timeline | None = None
    if args.baseline:
        # First, on a quiet cluster, and cleaned up before the operator's run.
        base_ns = f"{namespace}-base"
        kubectl(env, "create", "namespace", base_ns)
        base = apply_and_watch(
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
        timeline = apply_and_watch(binary, env, manifest, namespace=namespace, args=args)
        requests = operator_requests(requests_before, request_counts(env), count)
        peak = rss_mib(pid, "VmHWM")
        operator_cpu = cpu_seconds(pid) - cpu_before
        reconciles = metric_samples(running.metrics_port, "sensorsim_operator_reconciles_total")
    kubectl(env, "delete", "namespace", namespace, "--wait=true", "--timeout=600s")
    missing: dict[str, int] = {}

    def sample(label: str, start: dict[str, float], end: dict[str, float], of: str) -> list[float]:
        """``end - start`` per expected object; those lacking a time are counted as missing."""
        found = latencies(start, end, object_names(of, count))
        if found.missing:
            missing[label] = len(found.missing)
        return found.values

    seen, created, ready = timeline.seen, timeline.created, timeline.ready
    t0 = dict.fromkeys(seen | created | ready, 0.0)
    # Per object, from its simulation's first event: the operator's own share, without the
    # time kubectl spent sending the objects before it.
    own = Latencies.of(
        sample("seen -> StatefulSet", seen, created, "bench"),
        sample("seen -> Ready", seen, ready, "bench"),
    )
    from_apply = Latencies.of(
        sample("t0 -> StatefulSet", t0, created, "bench"),
        sample("t0 -> Ready", t0, ready, "bench"),
    )
    baseline = baseline_seen = None
    if base is not None:
        b0 = dict.fromkeys(base.seen, 0.0)
        baseline = Latencies.of(
            sample("baseline t0 -> StatefulSet", b0, base.created, "base"),
            sample("baseline t0 -> Ready", b0, base.ready, "base"),
        )
        baseline_seen = Latencies.of(
            sample("baseline seen -> StatefulSet", base.seen, base.created, "base"),
            sample("baseline seen -> Ready", base.seen, base.ready, "base"),
        )
    return Result(
        count=count,
        replicas_each=args.replicas,
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
        watch_coverage={
            **timeline.coverage,
            **{f"baseline {k}": v for k, v in (base.coverage if base else {}).items()},
        },
        missing=missing,
        timeline={
            n: (seen[n], created[n], ready[n]) for n in sorted(ready) if n in seen and n in created
        },
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
    for watched, coverage in result.watch_coverage.items():
        print(f"watch of {watched}: {coverage}")
    print(f"objects missing from a latency: {result.missing or 'none'}")
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

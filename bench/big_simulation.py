"""The operator with one large simulation: ``bench/operator_bench.py --big-simulation 1000,250``.

Per size (pods of the large simulation), on a fresh namespace and a fresh operator process:

1. **create**: one simulation of ``pods`` replicas (5 machines each), until it is Ready with
   every pod;
2. **replica change**: ``replicas`` lowered by a tenth, a handover (every old pod stops before a
   new one starts), until Ready at the new generation; a second, small simulation (2 pods) is
   created while the handover runs, and the time until its StatefulSet exists is recorded
   (from kubectl's apply returning, and from the simulation's first watch event);
3. **settings rollout**: ``failures.probability`` changed, another handover, until Ready.

Each step reports its wall time, the operator's reconciles (by trigger) and API requests (by
verb and resource, from the API server's ``apiserver_request_total`` before and after, as the
series counts them), its CPU time, and both per pod of the
step (the pods it stops plus the pods it starts), so sizes compare: linear growth shows as equal
per-pod figures. The operator's peak resident memory (``VmHWM``) is read at the end of the
size. A step ends when the watches of the namespace's simulations and StatefulSets (started
before the first step; bench/object_watch.py) bring the simulation Ready at the generation its
apply returned.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.cluster_probes import (
    cpu_seconds,
    ensure_nodes,
    kubectl,
    metric_samples,
    operator_requests,
    request_counts,
    rss_mib,
)
from bench.object_watch import ObjectWatch, api_client, wait_for
from bench.simulation_manifests import SIMULATIONS, STATEFULSETS, is_ready, simulation
from testbed.operator import OperatorProcess

RECONCILES = "sensorsim_operator_reconciles_total"
SECOND_SIMULATION_PODS = 2


@dataclass
class Step:
    name: str
    pods: int  # pods stopped plus pods started by the step
    seconds: float
    reconciles: dict[str, float]
    api_requests: dict[str, float]
    cpu_seconds: float

    @property
    def reconciles_per_pod(self) -> float:
        return sum(self.reconciles.values()) / self.pods

    @property
    def requests_per_pod(self) -> float:
        return sum(self.api_requests.values()) / self.pods


@dataclass
class BigResult:
    pods: int
    steps: list[Step] = field(default_factory=list)
    second_simulation_statefulset_seconds: float | None = None  # from its apply returning
    second_simulation_seen_to_statefulset_seconds: float | None = None  # from its first event
    watch_coverage: dict[str, str] = field(default_factory=dict)
    operator_peak_rss_mib: float = 0.0
    operator_rss_idle_mib: float = 0.0


@dataclass
class _Probe:
    """Where the counters of a step come from: the API server and the operator process."""

    env: dict[str, str]
    running: OperatorProcess
    pid: int

    def counters(self) -> tuple[dict[str, float], dict[tuple[str, str, str], float], float]:
        return (
            metric_samples(self.running.metrics_port, RECONCILES),
            request_counts(self.env),
            cpu_seconds(self.pid),
        )


def _step(
    name: str,
    pods: int,
    probe: _Probe,
    *,
    act: Callable[[], int],
    done: Callable[[], bool],
    watches: _Watches,
    timeout: float,
) -> Step:
    """Run ``act`` (which returns the simulation applies it sent through kubectl) and wait until
    the watches' events make ``done`` true."""
    reconciles_before, requests_before, cpu_before = probe.counters()
    start = time.monotonic()
    applies = act()
    if not wait_for(watches.changed, watches.both, done, timeout=timeout):
        raise RuntimeError(f"{name}: not done within {timeout} s")
    seconds = time.monotonic() - start
    reconciles_after, requests_after, cpu_after = probe.counters()
    requests = operator_requests(requests_before, requests_after, applies)
    return Step(
        name=name,
        pods=pods,
        seconds=round(seconds, 2),
        reconciles={
            k: v - reconciles_before.get(k, 0.0)
            for k, v in reconciles_after.items()
            if v - reconciles_before.get(k, 0.0)
        },
        api_requests={request: n for request, n in requests.items() if n},
        cpu_seconds=round(cpu_after - cpu_before, 2),
    )


@dataclass
class _Watches:
    """The simulations and the StatefulSets of the namespace, as their events arrive."""

    changed: threading.Condition
    simulations: ObjectWatch
    stateful_sets: ObjectWatch

    @property
    def both(self) -> list[ObjectWatch]:
        return [self.simulations, self.stateful_sets]


def run_big(env: dict[str, str], workdir: Path, pods: int, *, timeout: float) -> BigResult:
    """The three steps for one size; a fresh namespace and operator, deleted after."""
    changed = pods - pods // 10  # a simulation has at most 1,024 replicas
    ensure_nodes(env, changed + pods + SECOND_SIMULATION_PODS)
    namespace = f"big-{pods}-{int(time.time())}"
    kubectl(env, "create", "namespace", namespace)
    api = api_client()
    notified = threading.Condition()
    watches = _Watches(
        notified,
        ObjectWatch(api, SIMULATIONS, namespace, is_ready, notified),
        ObjectWatch(api, STATEFULSETS, namespace, lambda _: False, notified),
    )
    result = BigResult(pods=pods)
    big_generation = 0

    def apply(name: str, replicas: int, probability: float) -> int:
        """Apply a simulation; its generation, as the API server returned it."""
        body = simulation(namespace, name, replicas, failure_probability=probability)
        applied = kubectl(
            env,
            "apply",
            "--server-side",
            "-f",
            "-",
            "-o",
            "jsonpath={.metadata.generation}",
            stdin=json.dumps(body),
        )
        return int(applied)

    def apply_big(replicas: int, probability: float) -> int:
        nonlocal big_generation
        big_generation = apply("big", replicas, probability)
        return 1

    def big_ready() -> bool:
        found = watches.simulations.log.latest.get("big")
        return (
            found is not None
            and found["metadata"].get("generation", 0) >= big_generation
            and is_ready(found)
        )

    def big_ready_and_second_created() -> bool:
        return big_ready() and "second" in watches.stateful_sets.log.added

    second_sent_at = 0.0

    def change_replicas_and_create_second() -> int:
        nonlocal second_sent_at
        apply_big(changed, 0.05)
        time.sleep(1.0)  # the handover has begun: its pods are stopping
        apply("second", SECOND_SIMULATION_PODS, 0.05)
        second_sent_at = time.monotonic()  # kubectl returned: the simulation exists
        return 2

    running = OperatorProcess(
        env,
        workdir / f"operator-big-{pods}.log",
        OPERATOR_LOG_FORMAT="json",
        OPERATOR_LOG_LEVEL="WARNING",
        PRODUCER_IMAGE="sensorsim:bench",
    )
    with running, watches.simulations, watches.stateful_sets:
        assert running.process is not None
        pid = running.process.pid
        time.sleep(2)  # idle: startup done
        result.operator_rss_idle_mib = round(rss_mib(pid, "VmRSS"), 1)
        steps = (
            ("create", pods, lambda: apply_big(pods, 0.05), big_ready),
            (
                "replica change",
                pods + changed,
                change_replicas_and_create_second,
                big_ready_and_second_created,
            ),
            ("settings rollout", 2 * changed, lambda: apply_big(changed, 0.02), big_ready),
        )
        for name, step_pods, act, done in steps:
            step = _step(
                name,
                step_pods,
                _Probe(env, running, pid),
                act=act,
                done=done,
                watches=watches,
                timeout=timeout,
            )
            result.steps.append(step)
            print_step(pods, step, flush=True)
        result.operator_peak_rss_mib = round(rss_mib(pid, "VmHWM"), 1)
    api.close()  # type: ignore[no-untyped-call]
    second_sts = watches.stateful_sets.log.added["second"]
    result.second_simulation_statefulset_seconds = round(second_sts - second_sent_at, 2)
    result.second_simulation_seen_to_statefulset_seconds = round(
        second_sts - watches.simulations.log.added["second"], 2
    )
    result.watch_coverage = {
        "simulations": watches.simulations.log.coverage(2),
        "StatefulSets": watches.stateful_sets.log.coverage(2),
    }
    kubectl(env, "delete", "namespace", namespace, "--wait=true", "--timeout=900s")
    return result


def print_step(size: int, step: Step, *, flush: bool = False) -> None:
    print(
        f"{size} pods, {step.name}: {step.seconds:.1f} s, {step.pods} pods stopped or started, "
        f"reconciles {sum(step.reconciles.values()):.0f} ({step.reconciles_per_pod:.3f} per pod) "
        f"{step.reconciles}, operator API requests {sum(step.api_requests.values()):.0f} "
        f"({step.requests_per_pod:.3f} per pod) {step.api_requests}, "
        f"operator CPU {step.cpu_seconds} s",
        flush=flush,
    )


def print_big(results: list[BigResult]) -> None:
    print("| pods | step | seconds | pods stopped + started | reconciles | per pod | "
          "API requests | per pod | CPU s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for result in results:
        for step in result.steps:
            print(
                f"| {result.pods} | {step.name} | {step.seconds:.1f} | {step.pods} | "
                f"{sum(step.reconciles.values()):.0f} | {step.reconciles_per_pod:.3f} | "
                f"{sum(step.api_requests.values()):.0f} | {step.requests_per_pod:.3f} | "
                f"{step.cpu_seconds} |"
            )
    for result in results:
        print(
            f"{result.pods} pods: second simulation's StatefulSet "
            f"{result.second_simulation_statefulset_seconds} s after its apply returned, "
            f"{result.second_simulation_seen_to_statefulset_seconds} s after its first event; "
            f"operator RSS idle {result.operator_rss_idle_mib} MiB, "
            f"peak {result.operator_peak_rss_mib} MiB"
        )
        for watched, coverage in result.watch_coverage.items():
            print(f"{result.pods} pods, watch of {watched}: {coverage}")

"""The operator's keyed work queue and the reconciles it runs, with fakes (no API server)."""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

import kopf
import pytest
from prometheus_client import REGISTRY

from sensorsim_operator import handlers, names
from sensorsim_operator.background_reconciles import SETTLE_SECONDS, Reconciles
from sensorsim_operator.event_relevance import Relevance
from sensorsim_operator.kube import KubeError
from sensorsim_operator.observed import Key, Observed
from sensorsim_operator.simulation_reconciler import Outcome, ReconcileError, Reconciler
from sensorsim_operator.work_queue import Handled, WorkQueue

pytestmark = pytest.mark.unit


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), timeout=10))


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the loop until ``condition`` holds (the test's timeout bounds it)."""
    while not condition():
        await asyncio.sleep(0.001)


class Gated:
    """A ``process`` that records its runs and holds each key until released."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.running: dict[str, int] = {}
        self.most_at_once: dict[str, int] = {}
        self.gates: dict[str, asyncio.Event] = {}
        self.handled: dict[str, list[Handled]] = {}

    def gate(self, key: str) -> asyncio.Event:
        return self.gates.setdefault(key, asyncio.Event())

    async def __call__(self, key: str) -> Handled:
        self.running[key] = self.running.get(key, 0) + 1
        self.most_at_once[key] = max(self.most_at_once.get(key, 0), self.running[key])
        self.runs.append(key)
        try:
            if key in self.gates:
                await self.gates[key].wait()
                self.gates[key].clear()
            outcomes = self.handled.get(key)
            return outcomes.pop(0) if outcomes else Handled.DONE
        finally:
            self.running[key] -= 1


def queue_of(process: Callable[[str], Awaitable[Handled]], workers: int) -> WorkQueue[str]:
    queue: WorkQueue[str] = WorkQueue(
        process, workers=workers, first_retry_delay=0.01, max_retry_delay=0.04
    )
    queue.start()
    return queue


def test_events_while_a_key_waits_coalesce_into_one_run() -> None:
    async def main() -> None:
        process = Gated()
        queue: WorkQueue[str] = WorkQueue(process, workers=1)
        for _ in range(5):
            queue.add("a")
        assert len(queue) == 1
        queue.start()
        await until(lambda: process.runs == ["a"] and not queue.processing)
        await asyncio.sleep(0.01)
        assert process.runs == ["a"]
        await queue.stop()

    run(main)


def test_events_during_a_run_leave_exactly_one_run_pending() -> None:
    async def main() -> None:
        process = Gated()
        process.gate("a")
        queue = queue_of(process, workers=4)
        queue.add("a")
        await until(lambda: process.runs == ["a"])
        for _ in range(10):
            queue.add("a")  # the key is busy: one run pending behind it, not ten
        process.gates["a"].set()
        await until(lambda: len(process.runs) == 2)
        process.gates["a"].set()
        await until(lambda: not queue.processing and len(queue) == 0)
        await asyncio.sleep(0.01)
        assert process.runs == ["a", "a"]
        assert process.most_at_once["a"] == 1  # never two runs of one key at once
        await queue.stop()

    run(main)


def test_a_busy_key_never_holds_up_the_others() -> None:
    async def main() -> None:
        process = Gated()
        process.gate("busy")  # never released
        queue = queue_of(process, workers=2)
        queue.add("busy")
        await until(lambda: "busy" in queue.processing)
        for key in ("b", "c", "d", "busy"):
            queue.add(key)
        await until(lambda: process.runs.count("b") == process.runs.count("d") == 1)
        assert process.runs.count("busy") == 1  # its pending run waits for its own run only
        await queue.stop()

    run(main)


def test_a_key_marked_on_every_run_does_not_starve_the_others() -> None:
    async def main() -> None:
        runs: list[str] = []
        queue: WorkQueue[str]

        async def process(key: str) -> Handled:
            runs.append(key)
            await asyncio.sleep(0)
            if key == "hot":
                queue.add("hot")  # its own events keep coming while it runs
            return Handled.DONE

        queue = queue_of(process, workers=1)
        queue.add("hot")
        await until(lambda: len(runs) >= 3)
        queue.add("cold")
        await until(lambda: "cold" in runs)
        assert runs.index("cold") - runs.index("hot", len(runs) - 3) <= 2
        await queue.stop()

    run(main)


def test_a_run_asking_for_a_retry_is_retried_with_a_growing_back_off() -> None:
    async def main() -> None:
        outcomes = [Handled.RETRY, Handled.RETRY, Handled.DONE]
        delays: list[float] = []
        queue: WorkQueue[str]

        async def process(key: str) -> Handled:
            delays.append(queue.retry_delay(key))  # the back-off a retry would wait now
            return outcomes.pop(0)

        queue = queue_of(process, workers=1)
        queue.add("a")
        await until(lambda: not outcomes and not queue.processing)
        assert delays == [0.01, 0.02, 0.04]
        assert queue.retry_delay("a") == 0.01  # a success resets the back-off
        await queue.stop()

    run(main)


def test_a_delayed_add_is_overtaken_by_an_immediate_one_and_runs_once() -> None:
    async def main() -> None:
        process = Gated()
        queue = queue_of(process, workers=1)
        queue.add("a", delay=30)
        queue.add("a", delay=60)  # later than the pending one: changes nothing
        assert process.runs == []
        queue.add("a")
        await until(lambda: process.runs == ["a"] and not queue.processing)
        queue.add("b", delay=0.01)
        await until(lambda: process.runs == ["a", "b"])
        await queue.stop()  # the cancelled 30 s timer never fires
        assert process.runs == ["a", "b"]

    run(main)


def test_a_failing_process_is_retried_and_the_worker_survives() -> None:
    async def main() -> None:
        calls: list[str] = []

        async def process(key: str) -> Handled:
            calls.append(key)
            if len(calls) == 1:
                raise RuntimeError("a bug")
            return Handled.DONE

        queue = queue_of(process, workers=1)
        queue.add("a")
        await until(lambda: calls == ["a", "a"])
        queue.add("b")
        await until(lambda: calls == ["a", "a", "b"])
        await queue.stop()

    run(main)


class FakeReconciler:
    def __init__(self, errors: list[Exception]) -> None:
        self.calls: list[tuple[Key, Observed | None, bool]] = []
        self.errors = errors

    def reconcile(
        self, namespace: str, name: str, *, observed: Observed | None, full: bool
    ) -> Outcome:
        self.calls.append(((namespace, name), observed, full))
        if self.errors:
            raise self.errors.pop(0)
        return Outcome(found=True)


LABELS = (("resync", "error"), ("retry", "error"), ("event", "ok"))


def counted(trigger: str, result: str) -> float:
    labels = {"trigger": trigger, "result": result}
    return REGISTRY.get_sample_value("sensorsim_operator_reconciles_total", labels) or 0.0


def test_reconciles_take_the_snapshot_and_retry_api_errors_but_not_invalid_specs() -> None:
    async def main() -> None:
        fake = FakeReconciler(
            [KubeError(500, "boom"), ReconcileError("spec not understood", retry=False)]
        )
        snapshot = Observed.of([{"kind": "StatefulSet"}], [{"kind": "Pod"}])
        reconciles = Reconciles(
            fake,  # type: ignore[arg-type]
            lambda key: snapshot,
            workers=2,
        )
        before = {label: counted(*label) for label in LABELS}
        reconciles.start()
        reconciles.mark_full(("plant", "line-a"))
        await until(lambda: len(fake.calls) == 2)  # the API error is retried, still full
        assert [call[2] for call in fake.calls] == [True, True]
        assert fake.calls[0][1] is snapshot
        await asyncio.sleep(1.2)  # past the next back-off: an invalid spec is not retried
        assert len(fake.calls) == 2
        reconciles.mark(("plant", "line-a"))
        await until(lambda: len(fake.calls) == 3)
        assert fake.calls[2][2] is False
        counts = {label: counted(*label) - before[label] for label in LABELS}
        assert counts == {("resync", "error"): 1, ("retry", "error"): 1, ("event", "ok"): 1}
        await reconciles.stop()

    run(main)


def test_reconciles_need_a_reconciler_not_a_lock() -> None:
    assert not hasattr(Reconciler, "_lock")


class Marks:
    def __init__(self) -> None:
        self.marked: list[tuple[Key, float]] = []
        self.triggers: list[str] = []
        self.relevance = Relevance()

    def mark(self, key: Key, delay: float = 0.0, trigger: str = "event") -> None:
        self.marked.append((key, delay))
        self.triggers.append(trigger)


def test_handlers_share_kopfs_indexes_through_each_objects_copy_of_the_memo() -> None:
    # kopf hands each object's handlers a shallow copy of the operator's memo.
    operator_memo = kopf.Memo(indexes={}, reconciles=Marks())
    object_memo = copy.copy(operator_memo)
    pods = {("plant", "line-a"): [{"kind": "Pod", "metadata": {"name": "line-a-0"}}]}
    kwargs: dict[str, Any] = {name: {} for name in handlers.CHILD_INDEXES}
    kwargs["producer_pods"] = pods
    changed = handlers.pod_changed(
        body=kopf.Body(
            {"metadata": {"namespace": "plant", "labels": {names.INSTANCE_LABEL: "line-a"}}}
        ),
        type="ADDED",
        memo=object_memo,
        **kwargs,
    )
    asyncio.run(cast(Coroutine[Any, Any, None], changed))  # kopf's decorators type it loosely
    assert operator_memo.reconciles.marked == [(("plant", "line-a"), SETTLE_SECONDS)]
    assert operator_memo.reconciles.triggers == ["pod"]
    observed = handlers._snapshot(operator_memo.indexes, ("plant", "line-a"))
    assert observed is not None
    assert [pod["metadata"]["name"] for pod in observed.pods] == ["line-a-0"]
    assert handlers._snapshot({}, ("plant", "line-a")) is None  # before any handler ran


class BlockingReconciler:
    """Reconciles quiet at stream "h1"; each call waits until the test lets it end."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()

    def reconcile(
        self, namespace: str, name: str, *, observed: Observed | None, full: bool
    ) -> Outcome:
        self.calls += 1
        self.release.wait(timeout=10)
        self.release.clear()
        return Outcome(found=True, quiet_stream="h1")


def test_events_held_during_a_reconcile_mark_it_again_only_when_they_matter() -> None:
    def producer_pod(uid: str, stream: str) -> dict[str, Any]:
        return {
            "kind": "Pod",
            "metadata": {
                "uid": uid,
                "namespace": "plant",
                "labels": {names.INSTANCE_LABEL: "line-a"},
                "annotations": {names.STREAM_HASH_ANNOTATION: stream},
            },
        }

    async def main() -> None:
        fake = BlockingReconciler()
        reconciles = Reconciles(fake, lambda key: Observed(), workers=1)  # type: ignore[arg-type]
        reconciles.start()
        reconciles.mark(("plant", "line-a"))
        await until(lambda: fake.calls == 1)
        # A pod of the stream the reconcile finds the simulation quiet at: held, then dropped.
        assert not reconciles.relevance.pod_event(producer_pod("p0", "h1"), deleted=False)
        fake.release.set()
        await asyncio.sleep(SETTLE_SECONDS + 0.7)  # past the settle delay: nothing ran
        assert fake.calls == 1
        reconciles.mark(("plant", "line-a"))
        await until(lambda: fake.calls == 2)
        # A pod of another stream arrives meanwhile: it marks the simulation once it ends.
        assert not reconciles.relevance.pod_event(producer_pod("p1", "h0"), deleted=False)
        fake.release.set()
        await until(lambda: fake.calls == 3)
        fake.release.set()
        await reconciles.stop()

    run(main)

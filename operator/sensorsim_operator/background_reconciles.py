"""Reconciles run by the operator's work queue, not by kopf's handlers.

kopf's handlers only mark a simulation dirty (handlers.py); :class:`Reconciles` runs the
reconciles, at most one per simulation at a time with at most one pending behind it
(work_queue.py), in a pool of threads so the event loop never blocks. A burst of events (the
children and pods of a new simulation appearing one after the other) coalesces into a few
reconciles, and a simulation with a thousand busy pods occupies one worker, never the others.

A reconcile that fails with an API error is retried after the simulation's back-off (1, 2, 4 ...
seconds, at most a minute); one whose spec cannot be understood is not (its status says why, and
the next update marks it dirty again). The resync marks every simulation for a full reconcile
once per period: children applied whole, reference data read again, stuck handovers noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from sensorsim_operator import metrics
from sensorsim_operator.event_relevance import Relevance
from sensorsim_operator.kube import KubeError
from sensorsim_operator.observed import Key, Observed
from sensorsim_operator.simulation_reconciler import Outcome, ReconcileError, Reconciler
from sensorsim_operator.work_queue import Handled, WorkQueue

log = logging.getLogger(__name__)

WORKERS: Final = 16
"""Reconciles mostly wait on the API server: more of them than cores keep it busy."""
SETTLE_SECONDS: Final = 0.5
"""A child or pod event waits this long before its reconcile, so that the events of a burst
(a new simulation's children and pods appearing one by one) share one reconcile."""

Snapshot = Callable[[Key], Observed | None]
"""The watches' snapshot of a simulation's children and pods (None when there is none yet)."""
ListSimulations = Callable[[Sequence[str]], list[tuple[str, str]]]
"""(namespace, name) of every simulation in the namespaces (all when empty)."""


class Reconciles:
    """The work queue of simulation reconciles and the threads that run them.

    Each reconcile is counted under the trigger that asked for it (the metrics' ``trigger``
    label): of the triggers that coalesced into one run, a spec change (create, update, resume)
    before the resync, a retry, and a child's or pod's event. A delayed mark overtaken by an
    immediate one is covered by that run.
    """

    def __init__(self, reconciler: Reconciler, snapshot: Snapshot, workers: int = WORKERS) -> None:
        self._reconciler = reconciler
        self._snapshot = snapshot
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="reconcile")
        self._queue: WorkQueue[Key] = WorkQueue(self._process, workers=workers)
        self._full: set[Key] = set()
        self._triggers: dict[Key, str] = {}  # of the marks made now
        self._later: dict[Key, str] = {}  # of the delayed marks
        self.relevance = Relevance()

    def start(self) -> None:
        self._queue.start()

    async def stop(self) -> None:
        await self._queue.stop()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def mark(self, key: Key, delay: float = 0.0, trigger: str = "event") -> None:
        """The simulation may need a reconcile (now, or after ``delay`` seconds)."""
        _note(self._later if delay > 0 else self._triggers, key, trigger)
        self._queue.add(key, delay)

    def mark_full(self, key: Key) -> None:
        """The simulation needs a full reconcile (every child applied, reference data read)."""
        self._full.add(key)
        _note(self._triggers, key, "resync")
        self._queue.add(key)

    async def _process(self, key: Key) -> Handled:
        full = key in self._full
        self._full.discard(key)
        now, later = self._triggers.pop(key, None), self._later.pop(key, None)
        trigger = now or later or "event"
        # On the event loop, with no await between them: the events held from here on are
        # judged against this snapshot when the reconcile ends.
        self.relevance.reconciling(key)
        outcome: Outcome | None = None
        try:
            observed = self._snapshot(key)
            call = functools.partial(self._reconcile, key, observed, full, trigger)
            loop = asyncio.get_running_loop()
            handled, outcome = await loop.run_in_executor(self._executor, call)
        finally:  # whatever happened, the held events are judged and nothing stays held
            found = outcome is not None and outcome.found
            held = self.relevance.reconciled(
                key,
                outcome.quiet_stream if outcome is not None else None,
                outcome.written if outcome is not None else (),
            )
            if held is not None and (found or outcome is None):
                self.mark(key, SETTLE_SECONDS, held)
        if handled is Handled.RETRY:
            _note(self._triggers, key, "retry")
            if full:
                self._full.add(key)  # the retry must still be full
        return handled

    def _reconcile(
        self, key: Key, observed: Observed | None, full: bool, trigger: str
    ) -> tuple[Handled, Outcome | None]:
        namespace, name = key
        try:
            with metrics.observe(trigger) as result:
                outcome = self._reconciler.reconcile(namespace, name, observed=observed, full=full)
                if not outcome.found:
                    result.value = "gone"
                elif outcome.status_written:
                    metrics.STATUS_WRITES.inc()
        except ReconcileError as error:
            log.warning(f"reconcile of {namespace}/{name} failed: {error}")
            return (Handled.RETRY if error.retry else Handled.DONE), None
        except KubeError as error:
            log.warning(f"reconcile of {namespace}/{name} failed: API error: {error}")
            return Handled.RETRY, None
        if not outcome.found:
            self._queue.forget(key)
        return Handled.DONE, outcome


_PRECEDENCE: Final = {"create": 0, "update": 0, "resume": 0, "resync": 1, "retry": 2}


def _note(triggers: dict[Key, str], key: Key, trigger: str) -> None:
    current = triggers.get(key)
    if current is None or _PRECEDENCE.get(trigger, 3) < _PRECEDENCE.get(current, 3):
        triggers[key] = trigger


async def resync_forever(
    reconciles: Reconciles, simulations: ListSimulations, namespaces: list[str], period: float
) -> None:
    """Periodically mark every simulation for a full reconcile: repairs drift no event reported
    and lets a stuck rollout turn Degraded when its deadline passes even if nothing else
    happens. A failed listing is logged and tried again next period."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(period)
        try:
            found = await loop.run_in_executor(None, simulations, namespaces)
        except Exception:
            log.exception("resync: cannot list simulations")
            continue
        for key in found:
            reconciles.mark_full(key)


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` (if any) and wait for it to end."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

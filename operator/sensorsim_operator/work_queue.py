"""A keyed work queue: events mark a key dirty, workers process each dirty key once.

The shape of client-go's workqueue (``k8s.io/client-go/util/workqueue``), which
controller-runtime's controllers run on:

- a key marked dirty while it waits is not queued twice: the events coalesce into one run;
- a key is processed by at most one worker at a time; marked dirty while it runs, it is queued
  again when that run ends (so at most one run is pending behind a running one), at the back of
  the queue: a key whose events never stop cannot starve the others;
- a run that asks for a retry is queued again after a per-key exponential back-off, reset by the
  next run that succeeds;
- ``add(key, delay)`` marks the key dirty after ``delay`` seconds (the earliest of several such
  calls wins), which lets a burst of events settle into one run.

Every method runs on the event loop (kopf's async handlers call it directly); the work itself is
``process``, a coroutine, which may hand blocking calls to a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Final, Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

RETRY_FIRST_DELAY: Final = 1.0
RETRY_MAX_DELAY: Final = 60.0


class Handled(enum.Enum):
    """What a run of ``process`` asks of the queue."""

    DONE = "done"  # nothing to retry (succeeded, the key is gone, or retrying cannot help)
    RETRY = "retry"  # run again after the key's back-off


class WorkQueue(Generic[K]):
    """Dirty keys, processed by ``workers`` concurrent runs of ``process``, one run per key at a
    time."""

    def __init__(
        self,
        process: Callable[[K], Awaitable[Handled]],
        *,
        workers: int,
        first_retry_delay: float = RETRY_FIRST_DELAY,
        max_retry_delay: float = RETRY_MAX_DELAY,
    ) -> None:
        self._process = process
        self._workers = workers
        self._first_retry_delay = first_retry_delay
        self._max_retry_delay = max_retry_delay
        self._ready: asyncio.Queue[K] = asyncio.Queue()
        self._dirty: set[K] = set()  # queued, or pending behind a running one
        self._processing: set[K] = set()
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._failures: dict[K, int] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the workers (on the running event loop)."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._work()) for _ in range(self._workers)]

    async def stop(self) -> None:
        """Cancel the workers and the delayed adds; a run in progress is cancelled with them."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def add(self, key: K, delay: float = 0.0) -> None:
        """Mark ``key`` dirty now, or after ``delay`` seconds."""
        if delay > 0:
            self._add_later(key, delay)
            return
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if key in self._dirty:
            return  # queued already, or pending behind its running run: coalesced
        self._dirty.add(key)
        if key not in self._processing:
            self._ready.put_nowait(key)

    def _add_later(self, key: K, delay: float) -> None:
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        timer = self._timers.get(key)
        if key in self._dirty or (timer is not None and timer.when() <= when):
            return  # it runs no later than asked already
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def forget(self, key: K) -> None:
        """Drop the key's back-off and delayed add (the object is gone)."""
        self._failures.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def __len__(self) -> int:
        """Keys waiting for a worker."""
        return self._ready.qsize()

    @property
    def processing(self) -> frozenset[K]:
        return frozenset(self._processing)

    def retry_delay(self, key: K) -> float:
        """The back-off before the next retry of ``key``."""
        failures = self._failures.get(key, 0)
        return float(min(self._first_retry_delay * 2**failures, self._max_retry_delay))

    async def _work(self) -> None:
        while True:
            key = await self._ready.get()
            self._dirty.discard(key)
            self._processing.add(key)
            try:
                handled = await self._process(key)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end the worker nor the key's retries
                log.exception(f"processing {key!r} failed")
                handled = Handled.RETRY
            finally:
                self._processing.discard(key)
            if handled is Handled.RETRY:
                delay = self.retry_delay(key)
                self._failures[key] = self._failures.get(key, 0) + 1
                self.add(key, delay)
            else:
                self._failures.pop(key, None)
            if key in self._dirty:
                self._ready.put_nowait(key)  # at the back: the others go first

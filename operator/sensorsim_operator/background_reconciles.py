"""Reconciles the operator starts on its own rather than for a kopf handler: the retry of a
failed event reconcile and the periodic resync.

kopf never retries ``on.event`` handlers, so a reconcile that failed after a child or pod event
is retried here, after 1, 2, 4 ... seconds, at most a minute apart, until it succeeds or the
simulation is gone. The resync reconciles every simulation once per period. Both run the
reconcile in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Sequence
from typing import Final

import kopf

log = logging.getLogger(__name__)

RETRY_FIRST_DELAY: Final = 1.0
RETRY_MAX_DELAY: Final = 60.0

Reconcile = Callable[[str, str, str], None]
"""Reconciles (namespace, name) for a trigger; raises kopf's errors as the handlers do."""
ListSimulations = Callable[[Sequence[str]], list[tuple[str, str]]]
"""(namespace, name) of every simulation in the namespaces (all when empty)."""


class Retries:
    """At most one pending retry per simulation, each with its own back-off."""

    def __init__(self, reconcile: Reconcile) -> None:
        self._reconcile = reconcile
        self._loop = asyncio.get_running_loop()
        self._pending: dict[tuple[str, str], asyncio.Task[None]] = {}

    def schedule(self, namespace: str, name: str) -> None:
        """Called from a handler's worker thread: hand over to the event loop."""
        self._loop.call_soon_threadsafe(self._start, namespace, name)

    def _start(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        if key not in self._pending:
            self._pending[key] = self._loop.create_task(self._retry(namespace, name))

    async def _retry(self, namespace: str, name: str) -> None:
        delay = RETRY_FIRST_DELAY
        try:
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._loop.run_in_executor(
                        None, functools.partial(self._reconcile, namespace, name, "retry")
                    )
                    return
                except kopf.PermanentError as error:
                    log.warning(f"retry of {namespace}/{name} stopped: {error}")
                    return
                except Exception as error:  # retried: a bug must not end the retries
                    log.warning(f"retry of {namespace}/{name} failed ({error}); next in {delay}s")
                delay = min(delay * 2, RETRY_MAX_DELAY)
        finally:
            self._pending.pop((namespace, name), None)

    async def cancel_all(self) -> None:
        tasks = list(self._pending.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def resync_forever(
    reconcile: Reconcile, simulations: ListSimulations, namespaces: list[str], period: float
) -> None:
    """Periodically reconcile everything: repairs drift no event reported and lets a stuck
    rollout turn Degraded when its deadline passes even if nothing else happens."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(period)
        await _resync_once(loop, reconcile, simulations, namespaces)


async def _resync_once(
    loop: asyncio.AbstractEventLoop,
    reconcile: Reconcile,
    simulations: ListSimulations,
    namespaces: list[str],
) -> None:
    """One pass. Any exception is logged, per simulation, and never ends the loop: a bug met
    by one simulation must not stop the repairs of all the others for the process's life."""
    try:
        found = await loop.run_in_executor(None, simulations, namespaces)
    except Exception:
        log.exception("resync: cannot list simulations")
        return
    for namespace, name in found:
        try:
            await loop.run_in_executor(
                None, functools.partial(reconcile, namespace, name, "resync")
            )
        except (kopf.TemporaryError, kopf.PermanentError) as error:
            log.warning(f"resync of {namespace}/{name} failed: {error}")
        except Exception:
            log.exception(f"resync of {namespace}/{name} failed")

"""Readiness (``/readyz``): the cycle loop runs, is not stopping, and the sink delivers."""

from __future__ import annotations

import threading
from collections.abc import Callable

from producer.runtime.stopping import StopFlag


class Readiness:
    """Set by the cycle loop when it starts and cleared when it ends; read by the HTTP thread."""

    def __init__(self, stop: StopFlag, delivering: Callable[[], bool]) -> None:
        self._stop = stop
        self._delivering = delivering
        self._running = threading.Event()

    def running(self) -> None:
        self._running.set()

    def ended(self) -> None:
        self._running.clear()

    def __call__(self) -> bool:
        return self._running.is_set() and not self._stop.is_set() and self._delivering()

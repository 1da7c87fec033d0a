"""The request to stop, set from signal handlers without taking a lock.

``threading.Event.set()`` takes the lock of a ``Condition``; a signal handler runs in the main
thread between two bytecodes, possibly while that thread is inside ``Event.wait()`` holding the
same (non-reentrant) lock: the handler would wait for itself forever. ``StopFlag`` is a plain
attribute plus a self-pipe: ``set()`` assigns a bool and writes one byte (``os.write`` takes no
Python lock), ``wait()`` is a ``select()`` on the pipe, which any number of threads may do. The
pipe is never drained: once set, the flag stays set and every ``wait()`` returns at once.

A deadline (``DURATION_SECONDS``) is part of the flag: past it, ``is_set()`` is true, so every
wait of the process (schedule, back-pressure, metadata) ends at the deadline as it ends at a
signal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import time
from types import FrameType

log = logging.getLogger(__name__)

EXIT_MARGIN_SECONDS = 4.0
"""Shutdown (the cycle in progress, flush, final checkpoint, close, summary) is budgeted to end
this long before SHUTDOWN_GRACE_SECONDS, the time between SIGTERM and SIGKILL (the operator
sets it to the pod's terminationGracePeriodSeconds)."""


class StopFlag:
    """Set once by a signal, by code, or by reaching the deadline; never cleared."""

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._set = False
        self._deadline: float | None = None
        self.signal_name = ""
        """The signal that set the flag, for the log (set before the flag)."""
        self.set_at: float | None = None
        """``time.monotonic()`` when the flag was set (the grace period runs from there)."""

    def set(self) -> None:
        if self._set:
            return
        self.set_at = time.monotonic()
        self._set = True
        # One byte into an empty pipe cannot fail in practice; the flag is set anyway.
        with contextlib.suppress(OSError):
            os.write(self._write_fd, b"x")

    def set_deadline(self, monotonic_deadline: float | None) -> None:
        """After ``monotonic_deadline`` (``time.monotonic()`` clock) the flag reads as set."""
        self._deadline = monotonic_deadline

    @property
    def requested(self) -> bool:
        """Set by a signal or by code (not merely past the deadline)."""
        return self._set

    def is_set(self) -> bool:
        return self._set or (self._deadline is not None and time.monotonic() >= self._deadline)

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until set or ``timeout`` seconds passed; True if set."""
        if self.is_set():
            return True
        if self._deadline is not None:
            until_deadline = max(0.0, self._deadline - time.monotonic())
            timeout = until_deadline if timeout is None else min(timeout, until_deadline)
        # A signal interrupting select() may have set the flag: is_set() below says.
        with contextlib.suppress(InterruptedError):
            select.select([self._read_fd], [], [], timeout)
        return self.is_set()

    def close(self) -> None:
        for fd in (self._read_fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def install_signal_handlers(stop: StopFlag, second_signal_exit_code: int) -> None:
    """SIGTERM/SIGINT set ``stop``; a second one exits at once with ``second_signal_exit_code``.

    The handlers neither log nor take locks (the main thread may hold the logging lock or
    any other when the signal arrives): the cycle loop logs the signal once it sees the flag.
    A second signal writes one line to standard error with ``os.write`` and calls ``os._exit``,
    which runs no atexit handler that could block.
    """

    def handle(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.requested:
            message = f"sensorsim-producer: second {name}: exiting without waiting for delivery\n"
            with contextlib.suppress(OSError, ValueError):
                os.write(sys.stderr.fileno(), message.encode())
            os._exit(second_signal_exit_code)
        stop.signal_name = name
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)

"""Waiting for something observable: the one polling helper of the test bed, the tests and the
benchmarks. Wait for the condition itself (``delivered > 0``, a pod Ready), never for a fixed
time."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class WaitTimeoutError(TimeoutError):
    """The condition did not hold before the timeout."""


class ProcessExitedError(RuntimeError):
    """The process whose readiness was awaited ended first."""


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    message: str,
    interval: float = 0.25,
    process: subprocess.Popen[Any] | None = None,
    log_file: Path | None = None,
) -> T:
    """Call ``condition`` every ``interval`` seconds until it returns something truthy, and
    return that. An exception from ``condition`` counts as "not yet" (a refused connection, an
    object not created yet); the last one is named when the wait fails.

    Fails with ``WaitTimeoutError`` after ``timeout`` seconds, or with ``ProcessExitedError``
    as soon as ``process`` has ended; both messages start with ``message`` and end with the
    tail of ``log_file``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        if process is not None and process.poll() is not None:
            raise ProcessExitedError(
                f"{message}: the process exited with code {process.returncode}{log_tail(log_file)}"
            )
        try:
            last = condition()
        except Exception as error:
            last = error
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(
                f"{message}: still not the case after {timeout:g} s (last: {last!r})"
                f"{log_tail(log_file)}"
            )
        time.sleep(interval)


def log_tail(log_file: Path | None, lines: int = 40) -> str:
    """The last ``lines`` of ``log_file`` under a heading, or "" when there is none."""
    if log_file is None or not log_file.exists():
        return ""
    text = log_file.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- last lines of {log_file} ---\n" + "\n".join(text)

"""Background processes for the test bed: free ports, start detached, stop for sure."""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from testbed.polling import WaitTimeoutError, wait_until

_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LISTEN_PORTS = (10_000, 32_000)
"""Where ``free_port`` looks when the kernel's ephemeral range is above it."""


def free_port() -> int:
    """A port free now for a server started later, below the kernel's ephemeral range where it
    can: a port the kernel hands out (bind to 0) may be taken, before the server binds it, by
    any outgoing connection of the machine, which draws from the same range."""
    low, high = _LISTEN_PORTS
    with contextlib.suppress(OSError, ValueError):
        ephemeral_low = int(_EPHEMERAL_RANGE.read_text().split()[0])
        high = min(high, ephemeral_low - 1)
    for port in random.sample(range(low, high), 200) if high - low > 200 else []:
        if port_is_free(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def start_detached(
    cmd: Sequence[str], log_file: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own session (so it outlives `make` and can be killed as a group),
    with stdout and stderr appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        return subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def stop_pid(pid: int, grace_seconds: float = 15.0) -> None:
    """SIGTERM the process group, wait up to ``grace_seconds``, then SIGKILL it."""
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        with contextlib.suppress(WaitTimeoutError):
            wait_until(
                lambda: not pid_alive(pid), timeout=wait, interval=0.1, message=f"pid {pid} ended"
            )
            return


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when ``url`` answers 2xx/3xx (for readiness waits; raises when nothing listens)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bool(200 <= response.status < 400)


class Service(Protocol):
    def start(self) -> None: ...

    def destroy(self) -> None: ...


S = TypeVar("S", bound=Service)


@contextlib.contextmanager
def running(service: S) -> Iterator[S]:
    """Start ``service`` for the ``with`` block and destroy it after, and at interpreter exit
    should the block never end (an interrupted test session)."""
    atexit.register(service.destroy)
    try:
        service.start()
        yield service
    finally:
        service.destroy()

"""The stop flag, signal handling and the liveness heartbeat, without a broker."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from producer.runtime.heartbeat import Heartbeat
from producer.runtime.stopping import StopFlag


def test_a_set_from_another_thread_wakes_every_waiter() -> None:
    stop = StopFlag()
    woke: list[bool] = []
    waiters = [threading.Thread(target=lambda: woke.append(stop.wait(30))) for _ in range(3)]
    for waiter in waiters:
        waiter.start()
    stop.set()
    for waiter in waiters:
        waiter.join(10)
    assert woke == [True, True, True]
    assert stop.wait(30) is True  # stays set: later waits return at once


def test_the_deadline_reads_as_set_and_ends_waits() -> None:
    stop = StopFlag()
    stop.set_deadline(time.monotonic() + 0.05)
    assert stop.wait(30) is True  # returned at the deadline, not after 30 s
    assert stop.is_set()
    assert not stop.requested  # no signal: the duration ended
    assert stop.set_at is None


@pytest.mark.subprocess
def test_sigterm_sets_the_flag_of_a_thread_blocked_in_wait_and_a_second_one_exits() -> None:
    program = textwrap.dedent("""
        import sys
        from producer.runtime.stopping import StopFlag, install_signal_handlers
        stop = StopFlag()
        install_signal_handlers(stop, 1)
        print("ready", flush=True)
        assert stop.wait(60)
        print("stopped by", stop.signal_name, flush=True)
        sys.stdin.readline()  # wait for the second signal
    """)
    process = subprocess.Popen(
        [sys.executable, "-c", program], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    assert process.stdout.readline() == "stopped by SIGTERM\n"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 1
    assert "second SIGTERM: exiting without waiting for delivery" in err


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_heartbeat_is_stale_only_after_its_allowance() -> None:
    clock = FakeClock()
    heartbeat = Heartbeat(stale_after=60.0, clock=clock)
    assert heartbeat.alive()
    clock.now += 59.9
    assert heartbeat.alive()
    clock.now += 0.2
    assert not heartbeat.alive()
    heartbeat.beat()
    assert heartbeat.alive()


def test_a_long_cycle_widens_the_allowance() -> None:
    clock = FakeClock()
    heartbeat = Heartbeat(stale_after=60.0, clock=clock)
    heartbeat.cycle_took(30.0)  # a huge fleet: 30 s of honest work per cycle
    clock.now += 80.0
    assert heartbeat.alive()  # within 3 x 30 s
    clock.now += 20.0
    assert not heartbeat.alive()

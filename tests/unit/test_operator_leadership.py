"""Leader election: the Lease decisions and the elector's loops against an in-memory Lease and a
fake clock (two operators against the real API server are in tests/k8s)."""

from __future__ import annotations

import threading
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from sensorsim_operator.leader_election import (
    Attempt,
    Elector,
    LeaseConflictError,
    LeaseError,
    Timing,
    run_elected,
    standby_health,
)
from sensorsim_operator.leases import (
    Candidate,
    LeaseRecord,
    StoredLease,
    Verdict,
    lease_manifest,
    micro_time,
    stored_lease,
)
from sensorsim_operator.settings import OperatorSettings
from testbed import procs

pytestmark = pytest.mark.unit

TIMING = Timing(lease_duration=15, renew_deadline=10.0, retry_period=2.0)
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


class Clock:
    """Monotonic seconds shared by every elector of a test; ``wall`` derives from it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return EPOCH + timedelta(seconds=self.now)


class MemoryStore:
    """One Lease with the API server's optimistic concurrency; ``down`` fails every request."""

    def __init__(self) -> None:
        self.lease: StoredLease | None = None
        self.version = 0
        self.down = False
        self.writes = 0

    def _check(self) -> None:
        if self.down:
            raise LeaseError("connection refused")

    def _store(self, record: LeaseRecord) -> StoredLease:
        self.version += 1
        self.writes += 1
        self.lease = StoredLease(record, str(self.version))
        return self.lease

    def read(self, timeout: float) -> StoredLease | None:
        assert timeout > 0
        self._check()
        return self.lease

    def create(self, record: LeaseRecord, timeout: float) -> StoredLease:
        self._check()
        if self.lease is not None:
            raise LeaseConflictError("exists")
        return self._store(record)

    def replace(self, record: LeaseRecord, resource_version: str, timeout: float) -> StoredLease:
        self._check()
        if self.lease is None or self.lease.resource_version != resource_version:
            raise LeaseConflictError("stale")
        return self._store(record)


def elector(store: MemoryStore, clock: Clock, identity: str, stop_after: float = 1e9) -> Elector:
    """An elector whose waits advance the clock, stopped after ``stop_after`` seconds or by
    :meth:`Elector.resign`."""
    started = clock.now
    stopped = threading.Event()

    def wait(seconds: float) -> bool:
        clock.now += seconds
        return stopped.wait(0.001) or clock.now - started > stop_after

    return Elector(store, identity, TIMING, clock=clock, wall=clock.wall, wait=wait, stop=stopped)


def record(holder: str, duration: int = 15) -> LeaseRecord:
    return LeaseRecord(holder=holder, duration_seconds=duration, renew_time="t0")


# --- the decisions ---


def test_nobody_holds_it_take() -> None:
    candidate = Candidate("me", 15)
    assert candidate.verdict(0.0) is Verdict.TAKE
    candidate.observe(record(""), 0.0)
    assert candidate.verdict(0.0) is Verdict.TAKE


def test_held_by_another_wait_until_unchanged_for_its_duration() -> None:
    candidate = Candidate("me", 15)
    candidate.observe(record("other", duration=20), 100.0)
    assert candidate.verdict(119.9) is Verdict.WAIT
    candidate.observe(record("other", duration=20), 119.0)  # the same record: the clock runs on
    assert candidate.verdict(120.0) is Verdict.TAKE


def test_a_renewal_restarts_the_standby_clock() -> None:
    candidate = Candidate("me", 15)
    candidate.observe(record("other"), 100.0)
    renewed = LeaseRecord(holder="other", duration_seconds=15, renew_time="t1")
    candidate.observe(renewed, 110.0)
    assert candidate.verdict(124.0) is Verdict.WAIT
    assert candidate.verdict(125.0) is Verdict.TAKE


def test_our_own_lease_is_renewed() -> None:
    candidate = Candidate("me", 15)
    candidate.observe(record("me"), 0.0)
    assert candidate.verdict(1e6) is Verdict.RENEW


def test_claim_counts_transitions_and_keeps_the_acquire_time_on_renewal() -> None:
    candidate = Candidate("me", 15)
    candidate.observe(LeaseRecord("other", 15, "a", "b", transitions=3), 0.0)
    taken = candidate.claim(EPOCH)
    assert taken == LeaseRecord(
        "me", 15, "2025-01-01T00:00:00.000000Z", "2025-01-01T00:00:00.000000Z", 4
    )
    candidate.observe(taken, 1.0)
    renewed = candidate.claim(EPOCH + timedelta(seconds=2.5))
    assert renewed.acquire_time == taken.acquire_time
    assert renewed.renew_time == "2025-01-01T00:00:02.500000Z"
    assert renewed.transitions == 4


def test_release_only_what_we_hold() -> None:
    candidate = Candidate("me", 15)
    candidate.observe(record("other"), 0.0)
    assert candidate.release(EPOCH) is None
    candidate.observe(LeaseRecord("me", 15, "a", "b", transitions=2), 1.0)
    released = candidate.release(EPOCH)
    assert released is not None
    assert (released.holder, released.duration_seconds, released.transitions) == ("", 1, 2)


def test_lease_manifest_round_trip() -> None:
    rec = LeaseRecord("me", 15, micro_time(EPOCH), micro_time(EPOCH), 1)
    manifest = lease_manifest("ops", "sensorsim-operator", rec)
    assert manifest["apiVersion"] == "coordination.k8s.io/v1"
    assert manifest["spec"]["renewTime"] == "2025-01-01T00:00:00.000000Z"
    manifest["metadata"]["resourceVersion"] = "42"
    assert stored_lease(manifest) == StoredLease(rec, "42")
    assert LeaseRecord.from_spec(None) == LeaseRecord("", 0)


# --- the elector ---


def test_one_leads_the_other_stands_by_then_takes_over() -> None:
    store, clock = MemoryStore(), Clock()
    first, second = elector(store, clock, "first"), elector(store, clock, "second")
    assert first.try_lead(clock.now + 5) is Attempt.LEADING
    assert second.try_lead(clock.now + 5) is Attempt.HELD
    assert second.holder == "first"
    # The first stops renewing (killed): the second waits the lease duration from when it saw
    # the last change, then takes over.
    clock.now += 14.9
    assert second.try_lead(clock.now + 5) is Attempt.HELD
    clock.now += 0.2
    assert second.try_lead(clock.now + 5) is Attempt.LEADING
    assert store.lease is not None
    assert (store.lease.record.holder, store.lease.record.transitions) == ("second", 1)


def test_racing_candidates_one_wins() -> None:
    store, clock = MemoryStore(), Clock()
    first, second = elector(store, clock, "first"), elector(store, clock, "second")
    store.lease = StoredLease(record(""), "7")  # released: both may take it
    # Both read version 7; the first writes; the second's write is refused as stale.
    assert first.try_lead(clock.now + 5) is Attempt.LEADING
    second._candidate.observe(record(""), clock.now)
    stale = second._candidate.claim(clock.wall())
    with pytest.raises(LeaseConflictError):
        store.replace(stale, "7", 5)
    assert second.try_lead(clock.now + 5) is Attempt.HELD


def test_standby_waits_and_logs_the_holder_once(caplog: pytest.LogCaptureFixture) -> None:
    store, clock = MemoryStore(), Clock()
    assert elector(store, clock, "first").try_lead(clock.now + 5) is Attempt.LEADING
    standby = elector(store, clock, "second", stop_after=10)
    caplog.set_level("INFO")
    assert standby.wait_for_leadership() is False  # stopped while the lease was still valid
    waiting = [r for r in caplog.records if "standing by" in r.getMessage()]
    assert [r.getMessage() for r in waiting] == ["standing by: the Lease is held by first"]


def test_standby_takes_an_abandoned_lease() -> None:
    store, clock = MemoryStore(), Clock()
    assert elector(store, clock, "first").try_lead(clock.now + 5) is Attempt.LEADING
    started = clock.now
    standby = elector(store, clock, "second")
    assert standby.wait_for_leadership() is True
    assert standby.leading
    assert TIMING.lease_duration <= clock.now - started <= TIMING.lease_duration + 2 * 2.0


def test_leader_renews_so_the_standby_never_takes_over() -> None:
    store, clock = MemoryStore(), Clock()
    leader = elector(store, clock, "first", stop_after=60)
    assert leader.wait_for_leadership()
    assert leader.renew_until_lost() is None  # stopped after 60 s, never lost
    assert store.writes == 1 + 60 // 2
    standby = elector(store, clock, "second")
    assert standby.try_lead(clock.now + 5) is Attempt.HELD


def test_leader_gives_up_at_the_renew_deadline_before_the_lease_expires() -> None:
    store, clock = MemoryStore(), Clock()
    leader = elector(store, clock, "first")
    assert leader.wait_for_leadership()
    standby = elector(store, clock, "second")
    assert standby.try_lead(clock.now + 5) is Attempt.HELD
    last_write = clock.now
    store.down = True  # the leader can no longer reach the API server
    reason = leader.renew_until_lost()
    assert reason == "the Lease was not renewed for 10 s"
    gave_up = clock.now
    assert gave_up - last_write <= TIMING.renew_deadline + TIMING.retry_period
    assert gave_up - last_write < TIMING.lease_duration
    store.down = False
    assert standby.try_lead(clock.now + 5) is Attempt.HELD  # still within the lease duration


def test_leader_stops_at_once_when_another_holds_the_lease() -> None:
    store, clock = MemoryStore(), Clock()
    leader = elector(store, clock, "first")
    assert leader.wait_for_leadership()
    assert store.lease is not None
    store.lease = StoredLease(record("usurper"), "99")  # e.g. an admin edited the Lease
    assert leader.renew_until_lost() == "the Lease is held by usurper"


def test_resign_releases_so_a_standby_takes_over_at_once() -> None:
    store, clock = MemoryStore(), Clock()
    leader = elector(store, clock, "first")
    assert leader.wait_for_leadership()
    standby = elector(store, clock, "second")
    assert standby.try_lead(clock.now + 5) is Attempt.HELD
    leader.resign()
    assert not leader.leading
    assert standby.try_lead(clock.now + 5) is Attempt.LEADING


def test_resign_leaves_someone_elses_lease_alone() -> None:
    store, clock = MemoryStore(), Clock()
    leader = elector(store, clock, "first")
    assert leader.wait_for_leadership()
    store.lease = StoredLease(record("other"), "50")
    leader.resign()
    assert store.lease == StoredLease(record("other"), "50")


def test_run_elected_runs_only_while_leading_and_releases_after() -> None:
    store, clock = MemoryStore(), Clock()
    leader = elector(store, clock, "first")
    seen: list[str] = []

    def run() -> None:
        assert store.lease is not None
        seen.append(store.lease.record.holder)

    settings = OperatorSettings(operator_health_port=0, operator_namespace="ops")
    run_elected(settings, run, elector=leader, on_lost=seen.append)
    assert seen == ["first"]
    assert store.lease is not None
    assert store.lease.record.holder == ""


def test_run_elected_releases_when_run_fails() -> None:
    store, clock = MemoryStore(), Clock()

    def run() -> None:
        raise RuntimeError("kopf failed")

    settings = OperatorSettings(operator_health_port=0)
    with pytest.raises(RuntimeError):
        run_elected(settings, run, elector=elector(store, clock, "first"))
    assert store.lease is not None
    assert store.lease.record.holder == ""


def test_standby_health_answers_and_frees_its_port() -> None:
    port = procs.free_port()
    with standby_health(port):
        url = f"http://127.0.0.1:{port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
            assert response.read() == b'{"leader": false}'
    with standby_health(port):  # kopf binds the same port next
        pass


# --- settings ---


def test_lease_settings_defaults_and_namespace() -> None:
    settings = OperatorSettings(operator_namespace="ops")
    assert settings.operator_leader_election
    assert settings.lease_namespace == "ops"
    assert settings.operator_lease_name == "sensorsim-operator"
    assert (
        settings.operator_lease_duration_seconds,
        settings.operator_lease_renew_deadline_seconds,
        settings.operator_lease_retry_period_seconds,
    ) == (15, 10.0, 2.0)


@pytest.mark.parametrize(
    ("duration", "deadline", "retry", "message"),
    [
        (10, 10, 2, "must be less than OPERATOR_LEASE_DURATION_SECONDS"),
        (15, 2.4, 2, "more than 1.2 times"),
    ],
)
def test_lease_timing_is_refused_when_unsafe(
    duration: int, deadline: float, retry: float, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        OperatorSettings(
            operator_lease_duration_seconds=duration,
            operator_lease_renew_deadline_seconds=deadline,
            operator_lease_retry_period_seconds=retry,
        )

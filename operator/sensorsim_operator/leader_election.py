"""One active operator: wait for the Lease, run kopf while holding it, exit when it is lost.

An operator process starts as a standby: it serves ``/healthz`` (a standby is healthy) and
tries the Lease every retry period (the decisions are in :mod:`sensorsim_operator.leases`).
Once it holds the Lease it starts kopf, which runs every handler, and renews the Lease from a
thread. If a renewal does not succeed within the renew deadline, or another process holds the
Lease, it exits at once with status 1 (as controller-runtime does): no handler of a process
that lost the Lease runs on, and the Deployment restarts it as a standby. On a clean stop
(SIGTERM, kopf returns) it releases the Lease, so a standby takes over at its next attempt
instead of after the lease duration.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, NoReturn, Protocol

import urllib3
from kubernetes import client, config
from prometheus_client import Gauge

from sensorsim_operator.leases import (
    Candidate,
    LeaseRecord,
    StoredLease,
    Verdict,
    lease_manifest,
    stored_lease,
)
from sensorsim_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

LEADER: Final = Gauge(
    "sensorsim_operator_leader",
    "1 while this operator holds the Lease and handles simulations, 0 while it stands by.",
)
EXIT_LEADERSHIP_LOST: Final = 1


class LeaseConflictError(Exception):
    """Someone else wrote the Lease since it was read (409): read it again."""


class LeaseError(Exception):
    """The Lease could not be read or written (API error, timeout, no connection)."""


class LeaseStore(Protocol):
    """Reads and writes one Lease; ``timeout`` bounds each request, in seconds."""

    def read(self, timeout: float) -> StoredLease | None:
        """The Lease, or None when it does not exist."""

    def create(self, record: LeaseRecord, timeout: float) -> StoredLease:
        """Create the Lease; :class:`LeaseConflictError` when it exists already."""

    def replace(self, record: LeaseRecord, resource_version: str, timeout: float) -> StoredLease:
        """Write ``record`` if the Lease is still at ``resource_version``, else
        :class:`LeaseConflictError`."""


class ApiLeaseStore:
    """:class:`LeaseStore` over the ``kubernetes`` client's CoordinationV1Api."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        self._leases = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name

    @classmethod
    def from_environment(cls, namespace: str, name: str) -> ApiLeaseStore:
        """In-cluster credentials when running in a pod, else the kubeconfig ($KUBECONFIG)."""
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return cls(client.ApiClient(configuration), namespace, name)
        api = config.new_client_from_config(config_file=os.environ.get("KUBECONFIG") or None)  # type: ignore[no-untyped-call]
        return cls(api, namespace, name)

    def _call(self, method: Callable[..., Any], *args: Any, timeout: float) -> StoredLease | None:
        try:
            response = method(*args, _preload_content=False, _request_timeout=max(timeout, 0.1))
            return stored_lease(json.loads(response.data))
        except client.ApiException as error:
            if error.status == 404:
                return None
            if error.status == 409:
                raise LeaseConflictError(str(error.reason)) from error
            raise LeaseError(f"{error.status} {error.reason}") from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise LeaseError(str(error)) from error

    def read(self, timeout: float) -> StoredLease | None:
        return self._call(
            self._leases.read_namespaced_lease, self.name, self.namespace, timeout=timeout
        )

    def create(self, record: LeaseRecord, timeout: float) -> StoredLease:
        body = lease_manifest(self.namespace, self.name, record)
        created = self._call(
            self._leases.create_namespaced_lease, self.namespace, body, timeout=timeout
        )
        if created is None:  # the namespace does not exist
            raise LeaseError(f"cannot create Lease {self.namespace}/{self.name}: not found")
        return created

    def replace(self, record: LeaseRecord, resource_version: str, timeout: float) -> StoredLease:
        body = lease_manifest(self.namespace, self.name, record)
        body["metadata"]["resourceVersion"] = resource_version
        replaced = self._call(
            self._leases.replace_namespaced_lease,
            self.name,
            self.namespace,
            body,
            timeout=timeout,
        )
        if replaced is None:  # deleted since it was read
            raise LeaseConflictError(f"Lease {self.namespace}/{self.name} is gone")
        return replaced


class Attempt(Enum):
    LEADING = "leading"  # the Lease is ours (taken or renewed just now)
    HELD = "held"  # another process holds it and renewed it within its duration
    FAILED = "failed"  # a conflict or an API error: try again


@dataclass(frozen=True, slots=True)
class Timing:
    lease_duration: int
    renew_deadline: float
    retry_period: float


def _utcnow() -> datetime:
    return datetime.now(UTC)


def new_identity() -> str:
    """The pod name (a pod's hostname) and a random suffix: unique per process, so a
    restarted operator is a new candidate."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class Elector:
    """Takes, renews and releases the Lease for one process.

    ``clock`` is monotonic (decisions), ``wall`` gives the times written into the Lease,
    ``wait(seconds)`` pauses and returns True when ``stop`` is set (by :meth:`resign`).
    """

    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        timing: Timing,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _utcnow,
        wait: Callable[[float], bool] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self._store = store
        self._candidate = Candidate(identity, timing.lease_duration)
        self.timing = timing
        self._clock = clock
        self._wall = wall
        self._stop = stop or threading.Event()
        self._wait = wait or self._stop.wait
        self._renewer: threading.Thread | None = None
        self._problem = ""
        self.leading = False

    @property
    def identity(self) -> str:
        return self._candidate.identity

    @property
    def holder(self) -> str:
        return self._candidate.holder

    def try_lead(self, deadline: float) -> Attempt:
        """One attempt to take or renew the Lease; each request ends by ``deadline``."""
        try:
            stored = self._store.read(deadline - self._clock())
            if stored is None:
                claim = self._candidate.claim(self._wall())
                stored = self._store.create(claim, deadline - self._clock())
            else:
                self._candidate.observe(stored.record, self._clock())
                if self._candidate.verdict(self._clock()) is Verdict.WAIT:
                    return Attempt.HELD
                claim = self._candidate.claim(self._wall())
                stored = self._store.replace(
                    claim, stored.resource_version, deadline - self._clock()
                )
        except LeaseConflictError:
            return Attempt.FAILED  # another candidate wrote first: the next read tells who
        except LeaseError as error:
            self._report(f"the Lease could not be read or written: {error}")
            return Attempt.FAILED
        self._candidate.observe(stored.record, self._clock())
        self._problem = ""
        return Attempt.LEADING

    def _report(self, problem: str) -> None:
        """Logs a problem once, not at every retry."""
        if problem != self._problem:
            self._problem = problem
            log.warning(problem)

    def wait_for_leadership(self) -> bool:
        """Stand by until this process holds the Lease (True), or until stopped (False)."""
        waiting_for = None
        while True:
            attempt = self.try_lead(self._clock() + self.timing.renew_deadline)
            if attempt is Attempt.LEADING:
                self.leading = True
                LEADER.set(1)
                log.info(f"leading as {self.identity}", extra={"identity": self.identity})
                return True
            if attempt is Attempt.HELD and self.holder != waiting_for:
                waiting_for = self.holder
                log.info(
                    f"standing by: the Lease is held by {waiting_for}",
                    extra={"identity": self.identity, "holder": waiting_for},
                )
            if self._wait(self.timing.retry_period):
                return False

    def renew_until_lost(self) -> str | None:
        """Renew every retry period; the reason when the Lease is lost, None when stopped."""
        last_renewal = self._clock()
        while not self._wait(self.timing.retry_period):
            started = self._clock()
            deadline = last_renewal + self.timing.renew_deadline
            if started >= deadline:
                return f"the Lease was not renewed for {self.timing.renew_deadline:g} s"
            attempt = self.try_lead(deadline)
            if attempt is Attempt.LEADING:
                last_renewal = started
            elif attempt is Attempt.HELD:
                return f"the Lease is held by {self.holder}"
            elif self._clock() >= deadline:
                return f"the Lease was not renewed for {self.timing.renew_deadline:g} s"
        return None

    def keep_leading(self, on_lost: Callable[[str], object]) -> None:
        """Renew from a daemon thread; ``on_lost(reason)`` when the Lease is lost."""

        def renew() -> None:
            reason = self.renew_until_lost()
            if reason is not None:
                self.leading = False
                LEADER.set(0)
                on_lost(reason)

        self._renewer = threading.Thread(target=renew, name="lease-renewal", daemon=True)
        self._renewer.start()

    def resign(self) -> None:
        """Stop renewing and release the Lease if this process still holds it."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=self.timing.renew_deadline)
        if not self.leading:
            return
        self.leading = False
        LEADER.set(0)
        deadline = self._clock() + self.timing.retry_period
        try:
            stored = self._store.read(deadline - self._clock())
            if stored is None:
                return
            self._candidate.observe(stored.record, self._clock())
            released = self._candidate.release(self._wall())
            if released is not None:
                self._store.replace(released, stored.resource_version, deadline - self._clock())
                log.info(f"{self.identity} released the Lease", extra={"identity": self.identity})
        except (LeaseConflictError, LeaseError) as error:
            log.warning(f"the Lease was not released (it expires on its own): {error}")


def exit_leadership_lost(reason: str) -> NoReturn:
    """Stop every handler at once: the process exits and is restarted as a standby."""
    log.error(f"leadership lost, exiting: {reason}")
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_LEADERSHIP_LOST)


class _StandbyHealth(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        healthy = self.path.split("?")[0] == "/healthz"
        body = json.dumps({"leader": False}).encode() if healthy else b"{}"
        self.send_response(200 if healthy else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes are not worth a log line."""


@contextmanager
def standby_health(port: int) -> Iterator[None]:
    """``/healthz`` answers 200 while standing by (on kopf's port, freed before kopf starts)."""
    if not port:
        yield
        return
    server = ThreadingHTTPServer(("0.0.0.0", port), _StandbyHealth)  # noqa: S104 (probes)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.1,), name="standby-health", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def elector_for(settings: OperatorSettings) -> Elector:
    store = ApiLeaseStore.from_environment(settings.lease_namespace, settings.operator_lease_name)
    timing = Timing(
        lease_duration=settings.operator_lease_duration_seconds,
        renew_deadline=settings.operator_lease_renew_deadline_seconds,
        retry_period=settings.operator_lease_retry_period_seconds,
    )
    return Elector(store, new_identity(), timing)


def run_elected(
    settings: OperatorSettings,
    run: Callable[[], object],
    *,
    elector: Elector | None = None,
    on_lost: Callable[[str], object] = exit_leadership_lost,
) -> None:
    """Stand by until this process holds the Lease, then ``run()`` while renewing it, and
    release it when ``run()`` returns or raises."""
    elector = elector or elector_for(settings)
    LEADER.set(0)
    log.info(
        f"{elector.identity} competes for the Lease "
        f"{settings.lease_namespace}/{settings.operator_lease_name}",
        extra={"identity": elector.identity},
    )
    with standby_health(settings.operator_health_port):
        if not elector.wait_for_leadership():
            return
    elector.keep_leading(on_lost)
    try:
        run()
    finally:
        elector.resign()

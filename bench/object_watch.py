"""When the operator benchmarks' objects reached the bench: a watch per kind of object records
the local arrival time (``time.monotonic``) of each object's first event and of the first event
that shows it ready, so latencies are differences of arrival times, not of poll rounds.

The watch lists first (objects that exist before it are recorded at the list's time and counted
as listed, not as events), then watches from the list's resourceVersion; it resumes from the
last resourceVersion it received when the server ends a watch (``timeoutSeconds``) or the
connection drops, and lists again when that version is gone (410). Every object it records
either came in an event or in a list, and both are counted, so a lost event shows as a
shortfall against the objects expected instead of a smaller sample.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import urllib3
from kubernetes import client, config, watch

JsonObject = dict[str, Any]
WATCH_SECONDS = 60  # the server ends each watch after this; the thread resumes it
GONE = 410


@dataclass
class ArrivalLog:
    """Per object name: when its first event arrived (``added``), when the first event showing
    it ready arrived (``ready``), and its latest state; how each was learnt (``events`` by type,
    ``listed``)."""

    is_ready: Callable[[JsonObject], bool]
    added: dict[str, float] = field(default_factory=dict)
    ready: dict[str, float] = field(default_factory=dict)
    latest: dict[str, JsonObject] = field(default_factory=dict)
    events: Counter[str] = field(default_factory=Counter)
    listed: int = 0  # objects first found by a list, not by an event
    relists: int = 0  # lists after the first: the watch's resourceVersion was gone
    resumes: int = 0  # watches resumed from the last resourceVersion

    def record_event(self, kind: str, obj: JsonObject, at: float) -> None:
        """One watch event (ADDED, MODIFIED, DELETED) that arrived at ``at``."""
        self.events[kind] += 1
        name = obj["metadata"]["name"]
        if kind == "DELETED":
            self.latest.pop(name, None)
            return
        self._observe(name, obj, at)

    def record_list(self, items: Iterable[JsonObject], at: float) -> None:
        """The objects of a list returned at ``at``; those not seen before count as listed."""
        for obj in items:
            name = obj["metadata"]["name"]
            if name not in self.added:
                self.listed += 1
            self._observe(name, obj, at)

    def _observe(self, name: str, obj: JsonObject, at: float) -> None:
        self.added.setdefault(name, at)
        self.latest[name] = obj
        if name not in self.ready and self.is_ready(obj):
            self.ready[name] = at

    def coverage(self, expected: int) -> str:
        """How the objects were learnt, against how many were expected."""
        return (
            f"{len(self.added)}/{expected} objects: {self.events['ADDED']} ADDED events, "
            f"{self.listed} from a list; {len(self.ready)} ready; "
            f"{sum(self.events.values())} events, {self.resumes} watches resumed, "
            f"{self.relists} relists"
        )


@dataclass(frozen=True)
class Sample:
    """Latencies (end - start) of the objects with both times, and the expected objects that
    lack one of them."""

    values: list[float]
    missing: list[str]


def latencies(start: Mapping[str, float], end: Mapping[str, float], names: Iterable[str]) -> Sample:
    """``end[n] - start[n]`` for each of ``names``; a name without both times is missing."""
    values: list[float] = []
    missing: list[str] = []
    for name in names:
        if name in start and name in end:
            values.append(end[name] - start[name])
        else:
            missing.append(name)
    return Sample(values, missing)


def api_client() -> client.ApiClient:
    """A client of the cluster in $KUBECONFIG, for the watches."""
    made: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=os.environ.get("KUBECONFIG") or None
    )
    return made


class ObjectWatch:
    """A thread that watches one resource in one namespace into an :class:`ArrivalLog`, and
    notifies ``changed`` (shared by several watches) after each event."""

    def __init__(
        self,
        api: client.ApiClient,
        resource: tuple[str, str, str],  # group, version, plural
        namespace: str,
        is_ready: Callable[[JsonObject], bool],
        changed: threading.Condition,
    ) -> None:
        self.log = ArrivalLog(is_ready)
        self.changed = changed
        self.failure: BaseException | None = None
        self._objects = client.CustomObjectsApi(api)
        self._resource = resource
        self._namespace = namespace
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        self._stopping = threading.Event()
        self._established = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{resource[2]}", daemon=True)

    def __enter__(self) -> ObjectWatch:
        """Start, and return once the first list is done and the watch follows it."""
        self._thread.start()
        if not self._established.wait(timeout=60):
            raise RuntimeError(f"watch of {self._resource[2]} not established: {self.failure}")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stopping.set()
        # Takes effect at the next event or when the server ends the watch.
        self._watch.stop()  # type: ignore[no-untyped-call]
        self._thread.join(timeout=1)

    def _list(self) -> str:
        group, version, plural = self._resource
        found = cast(
            JsonObject,
            self._objects.list_namespaced_custom_object(group, version, self._namespace, plural),
        )
        with self.changed:
            self.log.record_list(found["items"], time.monotonic())
            self.changed.notify_all()
        version_found: str = found["metadata"]["resourceVersion"]
        return version_found

    def _run(self) -> None:
        try:
            self._follow()
        except BaseException as error:  # surfaces in the bench's thread through wait_for
            self.failure = error
            self._established.set()
            with self.changed:
                self.changed.notify_all()

    def _follow(self) -> None:
        group, version, plural = self._resource
        resource_version = self._list()
        self._established.set()
        while not self._stopping.is_set():
            try:
                for event in self._watch.stream(  # type: ignore[no-untyped-call]
                    self._objects.list_namespaced_custom_object,
                    group,
                    version,
                    self._namespace,
                    plural,
                    resource_version=resource_version,
                    timeout_seconds=WATCH_SECONDS,
                    allow_watch_bookmarks=True,
                ):
                    at = time.monotonic()
                    obj: JsonObject = event["raw_object"]
                    resource_version = obj["metadata"]["resourceVersion"]
                    if event["type"] == "BOOKMARK":
                        continue
                    with self.changed:
                        self.log.record_event(event["type"], obj, at)
                        self.changed.notify_all()
                if not self._stopping.is_set():
                    self.log.resumes += 1  # the server ended the watch (timeoutSeconds)
            except client.ApiException as error:
                if error.status != GONE:
                    raise
                self.log.relists += 1
                resource_version = self._list()
            except (urllib3.exceptions.HTTPError, OSError):
                self.log.resumes += 1  # the connection dropped: resume from the last version

    def check(self) -> None:
        if self.failure is not None:
            raise RuntimeError(f"watch of {self._resource[2]} failed") from self.failure


def wait_for(
    changed: threading.Condition,
    watches: Iterable[ObjectWatch],
    done: Callable[[], bool],
    *,
    timeout: float,
) -> bool:
    """Wait until ``done()`` (evaluated under ``changed``) or ``timeout``; a failed watch
    raises."""
    deadline = time.monotonic() + timeout
    watching = list(watches)
    with changed:
        while True:
            for each in watching:
                each.check()
            if done():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            changed.wait(timeout=min(left, 1.0))

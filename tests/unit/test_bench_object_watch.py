"""The operator bench's arrival log: what it records from watch events and lists, and the
latencies computed from arrival times."""

from __future__ import annotations

import threading
from typing import Any

from kubernetes import client

from bench.object_watch import ArrivalLog, ObjectWatch, latencies, wait_for
from bench.simulation_manifests import SIMULATIONS, is_ready


def simulation(name: str, *, ready: bool = False, generation: int = 1) -> dict[str, Any]:
    status: dict[str, Any] = {"observedGeneration": generation, "readyReplicas": 2}
    status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {
        "metadata": {"name": name, "generation": generation},
        "spec": {"replicas": 2},
        "status": status,
    }


def test_first_event_and_first_ready_event_are_kept() -> None:
    log = ArrivalLog(is_ready)
    log.record_event("ADDED", simulation("a"), 1.0)
    log.record_event("MODIFIED", simulation("a"), 2.0)
    log.record_event("MODIFIED", simulation("a", ready=True), 3.5)
    log.record_event("MODIFIED", simulation("a", ready=True), 4.0)
    assert log.added == {"a": 1.0}
    assert log.ready == {"a": 3.5}
    assert log.events == {"ADDED": 1, "MODIFIED": 3}
    assert log.listed == 0


def test_objects_found_by_a_list_count_as_listed_not_as_events() -> None:
    log = ArrivalLog(is_ready)
    log.record_event("ADDED", simulation("a"), 1.0)
    # A relist (the watch's resourceVersion was gone) holds one known and one missed object.
    log.record_list([simulation("a", ready=True), simulation("b")], 5.0)
    assert log.added == {"a": 1.0, "b": 5.0}
    assert log.ready == {"a": 5.0}
    assert log.listed == 1
    assert log.events["ADDED"] == 1
    assert log.coverage(3).startswith("2/3 objects: 1 ADDED events, 1 from a list; 1 ready")


def test_a_deleted_object_keeps_its_times_but_not_its_state() -> None:
    log = ArrivalLog(is_ready)
    log.record_event("ADDED", simulation("a"), 1.0)
    log.record_event("DELETED", simulation("a"), 2.0)
    assert log.added == {"a": 1.0}
    assert "a" not in log.latest


def test_latencies_are_end_minus_start_and_name_what_lacks_a_time() -> None:
    start = {"a": 1.0, "b": 2.0, "c": 3.0}
    end = {"a": 1.5, "c": 7.0, "d": 9.0}
    sample = latencies(start, end, ["a", "b", "c", "d"])
    assert sample.values == [0.5, 4.0]
    assert sample.missing == ["b", "d"]


class ScriptedApi:
    """Lists and watch streams in the order the watch asks for them: a list returns the next
    of ``lists``; a stream plays the next of ``streams`` (events, or an exception to raise);
    once they are played, a stream waits for ``stop``, as a quiet watch does."""

    def __init__(self, lists: list[list[dict[str, Any]]], streams: list[Any]) -> None:
        self.lists = lists
        self.streams = streams
        self.list_versions: list[str] = []
        self.stream_versions: list[str] = []
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()

    def list_namespaced_custom_object(self, *_args: Any) -> dict[str, Any]:
        version = str(10 * (len(self.list_versions) + 1))
        self.list_versions.append(version)
        return {"metadata": {"resourceVersion": version}, "items": self.lists.pop(0)}

    def stream(self, _func: Any, *_args: Any, resource_version: str, **_kwargs: Any) -> Any:
        self.stream_versions.append(resource_version)
        if not self.streams:
            self.stopped.wait(timeout=10)
            return
        played = self.streams.pop(0)
        if isinstance(played, BaseException):
            raise played
        yield from played


def event(kind: str, name: str, version: str, *, ready: bool = False) -> dict[str, Any]:
    obj = simulation(name, ready=ready)
    obj["metadata"]["resourceVersion"] = version
    return {"type": kind, "raw_object": obj}


def test_the_watch_resumes_from_its_last_version_and_relists_when_it_is_gone() -> None:
    scripted = ScriptedApi(
        lists=[[], [simulation("a", ready=True), simulation("b")]],
        streams=[
            [event("ADDED", "a", "11")],  # the server ends the watch: resume from 11
            client.ApiException(status=410),  # 11 is gone: list again, watch from 20
            [event("ADDED", "c", "21"), event("BOOKMARK", "c", "22")],
        ],
    )
    changed = threading.Condition()
    watch = ObjectWatch(client.ApiClient(), SIMULATIONS, "ns", is_ready, changed)
    watch._objects = scripted  # type: ignore[assignment]
    watch._watch = scripted  # type: ignore[assignment]
    with watch:

        def resumed_after_the_bookmark() -> bool:
            return len(scripted.stream_versions) == 4

        assert wait_for(changed, [watch], resumed_after_the_bookmark, timeout=10)
    assert scripted.list_versions == ["10", "20"]
    assert scripted.stream_versions == ["10", "11", "20", "22"]
    assert watch.log.added.keys() == {"a", "b", "c"}
    assert watch.log.events["ADDED"] == 2
    assert watch.log.listed == 1  # b, missed while the watch was gone
    assert watch.log.relists == 1
    assert "a" in watch.log.ready

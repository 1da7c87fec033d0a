"""The operator bench's arrival log: what it records from watch events and lists, and the
latencies computed from arrival times."""

from __future__ import annotations

from typing import Any

from bench.object_watch import ArrivalLog, latencies
from bench.simulation_manifests import is_ready


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

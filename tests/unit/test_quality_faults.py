"""Data-quality faults of whole records (late, out of order, duplicate) and faults by rate:
which records the engine labels, and what the app sends (through a recording sink)."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest

from domain.scenarios import QualityFault, ScenarioError, parse_scenarios, random_quality_faults
from producer.settings import load_settings
from producer.simulation.engine import CycleResult
from producer.sinks.protocol import OutgoingCycle
from producer.sinks.record_faults import RecordFaultQueue
from tests.unit.test_scenarios import engine, run

RATE_KINDS = [QualityFault.SPIKE, QualityFault.LATE, QualityFault.OUT_OF_ORDER,
              QualityFault.DUPLICATE]  # fmt: skip
Sent = list[tuple[int, int]]
"""(row, seq) of every record sent, in order."""


def faulty_labels(results: list[CycleResult]) -> dict[tuple[int, int], str]:
    """(cycle, row) -> quality label of every labelled record."""
    cells = {}
    for result in results:
        labels = result.labels
        if labels is None:
            continue
        for row in np.flatnonzero(labels.quality >= 0).tolist():
            cells[result.cycle, row] = labels.quality_labels[int(labels.quality[row])]
    return cells


def record_cycle(result: CycleResult) -> OutgoingCycle:
    count = result.failing.size
    bodies = [json.dumps({"row": r, "seq": result.cycle}).encode() for r in range(count)]
    return OutgoingCycle(result.cycle, bodies, [False] * count, [0] * count)


def send_all(results: list[CycleResult], restamp: Callable[[bytes, int], bytes]) -> Sent:
    queue = RecordFaultQueue()
    sent: Sent = []

    def emit(outgoing: OutgoingCycle) -> None:
        rows = outgoing.rows or list(
            range(outgoing.first_row, outgoing.first_row + len(outgoing.bodies))
        )
        for row, body in zip(rows, outgoing.bodies, strict=True):
            data = json.loads(restamp(body, 0))
            assert (data["row"], data["seq"]) == (row, outgoing.seq)
            sent.append((row, outgoing.seq))

    for result in results:
        faults = result.labels.records if result.labels is not None else None
        for outgoing in queue.outgoing(record_cycle(result), faults, restamp):
            emit(outgoing)
    for outgoing in queue.release_all():
        emit(outgoing)
    return sent


def _same(body: bytes, k: int) -> bytes:
    return body


def test_record_faults_are_labelled_and_carried_out() -> None:
    scenarios = [
        {"target": {"machines": [0]}, "startCycle": 2,
         "quality": {"fault": "late", "cycles": 2, "lateCycles": 3}},
        {"target": {"machines": [1]}, "startCycle": 2,
         "quality": {"fault": "out_of_order", "cycles": 4}},
        {"target": {"machines": [2]}, "startCycle": 3,
         "quality": {"fault": "duplicate", "cycles": 1}},
    ]  # fmt: skip
    results = run(engine(scenarios, count=4), 8)
    assert faulty_labels(results) == {
        (2, 0): "late:3", (3, 0): "late:3",
        (2, 1): "out_of_order", (4, 1): "out_of_order",  # every other record of the window
        (3, 2): "duplicate",
    }  # fmt: skip
    late = results[2].labels.records if results[2].labels else None
    assert late is not None
    assert late.late_cycles.tolist() == [3, 0, 0, 0]
    stamped: list[int] = []

    def restamp(body: bytes, k: int) -> bytes:
        if k:
            stamped.append(json.loads(body)["seq"])
        return body

    sent = send_all(results, restamp)
    assert stamped == [2, 3]
    per_machine = {row: [seq for r, seq in sent if r == row] for row in range(4)}
    assert per_machine[1] == [0, 1, 3, 2, 5, 4, 6, 7]
    assert per_machine[2] == [0, 1, 2, 3, 3, 4, 5, 6, 7]
    assert per_machine[0] == per_machine[3] == list(range(8))


def test_a_held_record_is_released_before_a_checkpoint_and_never_lost() -> None:
    scenarios = [{"target": {"all": True}, "startCycle": 1,
                  "quality": {"fault": "out_of_order", "cycles": 1}}]  # fmt: skip
    results = run(engine(scenarios, count=3), 2)
    queue = RecordFaultQueue()
    faults = results[1].labels.records if results[1].labels else None
    assert queue.outgoing(record_cycle(results[1]), faults, _same) == []
    assert len(queue) == 3
    (released,) = queue.release_all()
    assert (released.seq, released.rows) == (1, [0, 1, 2])
    assert len(queue) == 0


def test_faults_by_rate_hit_about_their_share_the_same_in_any_shard_layout() -> None:
    scenarios = [s.document() for s in random_quality_faults(0.2, RATE_KINDS)]
    whole = faulty_labels(run(engine(scenarios, count=40), 30))
    parts = {}
    for first, count in ((0, 13), (13, 27)):
        for (cycle, row), label in faulty_labels(run(engine(scenarios, first=first, count=count),
                                                     30)).items():  # fmt: skip
            parts[cycle, first + row] = label
    assert parts == whole
    share = len(whole) / (40 * 30)
    assert 0.13 < share < 0.25  # 20 %, less the out-of-order records that follow one
    kinds = {label.split(":")[0] for label in whole.values()}
    assert kinds == {"spike", "late", "out_of_order", "duplicate"}
    for (cycle, row), label in whole.items():  # never two held back in a row
        if label == "out_of_order":
            assert whole.get((cycle - 1, row)) != "out_of_order"


def test_only_the_owner_of_a_record_changes_it() -> None:
    scenarios = [
        {"target": {"machines": [0]}, "startCycle": 1,
         "quality": {"fault": "spike", "cycles": 3, "sensors": ["Sensor 2"]}},
        {"target": {"machines": [0]}, "startCycle": 2,
         "quality": {"fault": "duplicate", "cycles": 1}},
    ]  # fmt: skip
    faulty = run(engine(scenarios, count=2), 4)
    clean = run(engine([], count=2), 4)
    assert faulty_labels(faulty) == {(1, 0): "spike:Sensor 2", (2, 0): "duplicate",
                                     (3, 0): "spike:Sensor 2"}  # fmt: skip
    assert np.array_equal(faulty[2].micros, clean[2].micros)  # the duplicate owns cycle 2
    assert not np.array_equal(faulty[1].micros, clean[1].micros)


def test_stuck_and_drift_take_no_rate_and_the_setting_adds_its_scenarios() -> None:
    with pytest.raises(ScenarioError, match="need a window"):
        parse_scenarios([{"target": {"all": True}, "startCycle": 0,
                          "quality": {"fault": "stuck", "cycles": 5, "rate": 0.1}}])  # fmt: skip
    assert load_settings(quality_fault_rate=0.0).scenario_list() == []
    added = load_settings(
        quality_fault_rate=0.04, quality_fault_kinds="late,duplicate"
    ).scenario_list()
    assert [(s.quality.fault, s.quality.rate) for s in added if s.quality] == [
        (QualityFault.LATE, 0.02), (QualityFault.DUPLICATE, 0.02)
    ]  # fmt: skip

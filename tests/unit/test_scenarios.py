"""Scenarios: the model (domain/scenarios.py) and the engine applying it, record by record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from domain.machine_ids import machine_ids
from domain.messages import ExtendedSensorMessage, MessageFormat, SensorMessage
from domain.scenarios import (
    DegradationShape,
    ScenarioError,
    degradation_health,
    parse_scenarios,
    parse_scenarios_text,
)
from domain.simulation_model import FailureModel, SimulationModel
from producer.errors import ConfigError
from producer.serialisation import BodyEncoder, ScenarioFields
from producer.settings import load_settings
from producer.simulation.engine import CycleResult, SimulationEngine
from producer.simulation.reference_data import ReferenceProfile, load_profile
from producer.simulation.scenarios import ScenarioConfigError, record_headers

PROFILE = load_profile(Path("data/data_sensors.csv"), 20)
TYPE = PROFILE.failure_types[0]
OTHER = PROFILE.failure_types[2]
NO_RANDOM = FailureModel(probability=0.0, min_cycles=30, max_cycles=60, ramp_cycles=3)
TS = "2026-11-29T12:34:56.789+00:00"


def engine(
    scenarios: list[dict[str, Any]],
    *,
    first: int = 0,
    count: int = 12,
    failures: FailureModel = NO_RANDOM,
    model: SimulationModel = SimulationModel.LEARNED,
    profile: ReferenceProfile = PROFILE,
) -> SimulationEngine:
    return SimulationEngine(
        profile, failures, first_machine=first, count=count, seed=7, simulation_name="scen",
        model=model, scenarios=parse_scenarios(scenarios),
    )  # fmt: skip


def run(built: SimulationEngine, cycles: int) -> list[CycleResult]:
    return [built.step() for _ in range(cycles)]


def failing_cells(results: list[CycleResult]) -> set[tuple[int, int]]:
    """(cycle, row) of every failing record."""
    return {(r.cycle, int(m)) for r in results for m in np.flatnonzero(r.failing)}


# -- the model ---------------------------------------------------------------------------------
def test_a_scenario_list_reads_from_yaml_with_camel_case_keys() -> None:
    scenarios = parse_scenarios_text(
        """
        - name: bearing-17
          target: {machines: [17]}
          startCycle: 600
          failure: {type: bearing_wear, cycles: 50}
        - target: {fraction: 0.05}
          startTime: 2026-12-01T08:00:00Z
          degradation: {type: overheating, cycles: 2000, shape: knee, failureCycles: 40}
        - target: {all: true}
          startCycle: 0
          noFailures: {cycles: 100}
        - target: {machineIds: [3f2a9c1d]}
          startCycle: 10
          quality: {fault: stuck, cycles: 5, sensors: [Sensor 3]}
        """
    )
    assert [s.kind for s in scenarios] == ["failure", "degradation", "noFailures", "quality"]
    assert scenarios[1].cycles == 2040
    assert scenarios[0].label() == "bearing-17"
    assert parse_scenarios({"scenarios": [s.document() for s in scenarios]}) == scenarios


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"target": {"all": True, "fraction": 0.1}}, "exactly one of machines, machineIds"),
        ({"target": {"all": True}}, "exactly one of failure, noFailures"),
        ({"target": {"fraction": 1.5}}, "less than or equal to 1"),
        ({"target": {"machines": [-1]}}, "greater than or equal to 0"),
        ({"target": {"all": True}, "failure": {"type": "x", "cycles": 0}}, "greater than or equal"),
        (
            {
                "target": {"all": True},
                "failure": {"type": "x", "cycles": 1},
                "startTime": "2026-12-01T08:00:00",
            },
            "UTC offset",
        ),
        (
            {"target": {"all": True}, "failure": {"type": "x", "cycles": 1}, "extra": 1},
            "Extra inputs",
        ),
    ],
)
def test_bad_scenarios_are_refused_saying_where(document: dict[str, Any], message: str) -> None:
    document = {"startCycle": 1, **document} if "startTime" not in document else document
    with pytest.raises(ScenarioError, match=message) as caught:
        parse_scenarios([document])
    assert str(caught.value).startswith("0")


def test_names_are_unique_and_the_settings_refuse_a_bad_list() -> None:
    twice = [{"name": "a", "target": {"all": True}, "startCycle": 0, "noFailures": {"cycles": 1}}]
    with pytest.raises(ScenarioError, match="unique: a"):
        parse_scenarios(twice * 2)
    with pytest.raises(ConfigError, match=r"SCENARIOS: 0\.target"):
        load_settings(scenarios='[{"target": {}, "startCycle": 1, "noFailures": {"cycles": 1}}]')
    with pytest.raises(ConfigError, match="set one"):
        load_settings(scenarios="[]", scenarios_file=Path("pyproject.toml"))


def test_an_unknown_failure_type_or_sensor_is_refused() -> None:
    with pytest.raises(ScenarioConfigError, match="not one of the reference data's types"):
        engine([{"target": {"all": True}, "startCycle": 0,
                 "failure": {"type": "meltdown", "cycles": 3}}])  # fmt: skip
    with pytest.raises(ScenarioConfigError, match="not among"):
        engine([{"target": {"all": True}, "startCycle": 0,
                 "quality": {"fault": "spike", "cycles": 3, "sensors": ["rpm"]}}])  # fmt: skip


@pytest.mark.parametrize("shape", list(DegradationShape))
def test_health_falls_monotonically_from_one_to_zero(shape: DegradationShape) -> None:
    health = degradation_health(shape, 0.7, np.linspace(0.0, 1.0, 1001))
    assert health[0] == pytest.approx(1.0)
    assert health[-1] == pytest.approx(0.0)
    assert np.all(np.diff(health) <= 0)


# -- the engine, record by record --------------------------------------------------------------
def test_a_failure_on_demand_fails_exactly_its_machines_for_its_cycles() -> None:
    results = run(engine([{"target": {"machines": [1, 3, 40]}, "startCycle": 5,
                           "failure": {"type": OTHER, "cycles": 4}}]), 12)  # fmt: skip
    assert failing_cells(results) == {(c, m) for c in range(5, 9) for m in (1, 3)}
    for r in results[5:9]:
        assert r.failure_type[[1, 3]].tolist() == [2, 2]
        assert r.episode_cycle[1] == r.cycle - 4
    assert results[5].started[[1, 3]].all()
    assert not results[6].started.any()
    assert results[0].labels is None  # nothing active: nothing extra per record


def test_a_no_failure_window_ends_and_prevents_episodes_only_there() -> None:
    busy = FailureModel(probability=0.3, min_cycles=3, max_cycles=5, ramp_cycles=1)
    calm = [{"target": {"all": True}, "startCycle": 10, "noFailures": {"cycles": 20}}]
    with_window = failing_cells(run(engine(calm, failures=busy), 40))
    without = failing_cells(run(engine([], failures=busy), 40))
    assert not {cell for cell in with_window if 10 <= cell[0] < 30}
    assert {cell for cell in without if cell[0] < 10} == {c for c in with_window if c[0] < 10}
    assert {cell for cell in with_window if cell[0] >= 30}  # failures come back after it


def test_a_failure_overrides_the_random_process_and_calm_wins_when_listed_after() -> None:
    busy = FailureModel(probability=0.3, min_cycles=3, max_cycles=5, ramp_cycles=1)
    scenarios = [
        {"target": {"all": True}, "startCycle": 4, "failure": {"type": TYPE, "cycles": 6}},
        {"target": {"machines": [0]}, "startCycle": 6, "noFailures": {"cycles": 2}},
    ]
    results = run(engine(scenarios, failures=busy), 12)
    for r in results[4:10]:
        expected = np.ones(12, dtype=bool)
        if r.cycle in (6, 7):
            expected[0] = False
        assert r.failing.tolist() == expected.tolist()
        assert (r.failure_type[expected] == 0).all()


def test_a_fraction_is_drawn_from_the_seed_and_the_same_in_any_shard_layout() -> None:
    scenarios = [
        {"name": "five-percent", "target": {"fraction": 0.25}, "startCycle": 2,
         "failure": {"type": TYPE, "cycles": 3}},
        {"target": {"fraction": 0.5}, "startCycle": 1,
         "quality": {"fault": "spike", "cycles": 4}},
        {"target": {"all": True}, "startCycle": 3,
         "degradation": {"type": OTHER, "cycles": 5, "failureCycles": 2}},
    ]  # fmt: skip
    whole = run(engine(scenarios, count=40), 12)
    parts = [run(engine(scenarios, first=a, count=b - a), 12) for a, b in ((0, 7), (7, 40))]
    for c in range(12):
        assert np.array_equal(whole[c].micros, np.vstack([p[c].micros for p in parts]))
        assert np.array_equal(whole[c].failing, np.concatenate([p[c].failing for p in parts]))
        if whole[c].labels is not None:
            for name in ("health", "rul_cycles", "quality"):
                joined = np.concatenate([getattr(p[c].labels, name) for p in parts])
                assert np.array_equal(getattr(whole[c].labels, name), joined, equal_nan=True)
    chosen = {m for _, m in failing_cells(whole[2:5])}
    assert 4 <= len(chosen) <= 18  # about a quarter of 40
    renamed = [{**scenarios[0], "name": "another"}]
    assert {m for _, m in failing_cells(run(engine(renamed, count=40), 5))} != chosen


def test_a_degradation_counts_down_to_the_failure_with_a_monotone_health() -> None:
    scenarios = [{"target": {"machines": [2, 5]}, "startCycle": 3,
                  "degradation": {"type": TYPE, "cycles": 20, "shape": "exponential",
                                  "failureCycles": 4}}]  # fmt: skip
    results = run(engine(scenarios), 30)
    for row in (2, 5):
        rul = [int(r.labels.rul_cycles[row]) if r.labels else -1 for r in results]
        health = [float(r.labels.health[row]) if r.labels else np.nan for r in results]
        assert rul == [-1] * 3 + list(range(20, 0, -1)) + [0] * 4 + [-1] * 3
        path = np.array(health[3:27])
        assert path[0] == 1.0
        assert np.all(np.diff(path) <= 0)
        assert path[20:].tolist() == [0.0] * 4
        assert [bool(r.failing[row]) for r in results] == [False] * 23 + [True] * 4 + [False] * 3
    untouched = [r.labels.rul_cycles[0] for r in results if r.labels is not None]
    assert set(untouched) == {-1}
    # the readings move toward the type's signature as the health falls
    signature = PROFILE.signature_mean[0]
    moved = np.flatnonzero(np.abs(signature - PROFILE.mean) > 2 * PROFILE.std)
    assert moved.size
    # (both degraded machines, over the four failing cycles: one reading is one random draw)
    start = np.abs(results[3].values[[2, 5]][:, moved] - signature[moved]).mean()
    late = np.mean([np.abs(r.values[[2, 5]][:, moved] - signature[moved]).mean()
                    for r in results[23:27]])  # fmt: skip
    assert late < 0.7 * start


def test_quality_faults_change_exactly_their_sensors_and_are_labelled() -> None:
    scenarios = [
        {"target": {"machines": [0]}, "startCycle": 2,
         "quality": {"fault": "stuck", "cycles": 5, "sensors": ["Sensor 4"]}},
        {"target": {"machines": [1]}, "startCycle": 2,
         "quality": {"fault": "dropout", "cycles": 2, "sensors": ["Sensor 1", "Sensor 2"]}},
        {"target": {"machines": [2]}, "startCycle": 2,
         "quality": {"fault": "spike", "cycles": 1, "sensors": ["Sensor 5"], "magnitude": 8}},
        {"target": {"machines": [3]}, "startCycle": 2,
         "quality": {"fault": "drift", "cycles": 4, "sensors": ["Sensor 6"], "magnitude": 4}},
    ]  # fmt: skip
    faulty = run(engine(scenarios), 8)
    clean = run(engine([]), 8)
    labels = faulty[0].labels  # nothing active at cycle 0
    assert labels is None
    for c in range(8):
        rows, sensors = np.nonzero(faulty[c].micros != clean[c].micros)
        changed = {(int(m), int(s)) for m, s in zip(rows, sensors, strict=True)}
        expected = set()
        if 2 <= c < 7:
            expected.add((0, 3))
        if 2 <= c < 4:
            expected |= {(1, 0), (1, 1)}
        if c == 2:
            expected.add((2, 4))
        if 2 <= c < 6:
            expected.add((3, 5))
        assert changed <= expected
        assert len(changed) >= len(expected) - 1  # a stuck value may equal the reading once
        labelled = faulty[c].labels
        quality = labelled.quality.tolist() if labelled is not None else [-1] * 12
        names = labelled.quality_labels if labelled is not None else ()
        got = {m: names[q] for m, q in enumerate(quality) if q >= 0}
        want = {}
        if 2 <= c < 7:
            want[0] = "stuck:Sensor 4"
        if 2 <= c < 4:
            want[1] = "dropout:Sensor 1,Sensor 2"
        if c == 2:
            want[2] = "spike:Sensor 5"
        if 2 <= c < 6:
            want[3] = "drift:Sensor 6"
        assert got == want
    assert len({int(r.micros[0, 3]) for r in faulty[2:7]}) == 1  # stuck: one value repeated
    std = PROFILE.std
    assert abs(faulty[2].values[2, 4] - clean[2].values[2, 4]) == pytest.approx(8 * std[4], 1e-4)
    drift = [faulty[c].values[3, 5] - clean[c].values[3, 5] for c in range(2, 6)]
    assert drift == pytest.approx([std[5] * k for k in (1, 2, 3, 4)], rel=1e-4)
    nulls = faulty[2].labels.nulls if faulty[2].labels else None
    assert nulls is not None
    assert nulls.sum() == 2


def test_records_carry_the_labels_in_bodies_and_headers() -> None:
    scenarios = [
        {"target": {"machines": [1]}, "startCycle": 1,
         "quality": {"fault": "dropout", "cycles": 1, "sensors": ["Sensor 2"]}},
        {"target": {"machines": [2]}, "startCycle": 0,
         "degradation": {"type": TYPE, "cycles": 3, "failureCycles": 1}},
    ]  # fmt: skip
    built = engine(scenarios, count=4)
    assert built.scenarios is not None
    ids = machine_ids("scen", range(4))
    fields = ScenarioFields(built.scenarios.quality_labels)
    extended = BodyEncoder(PROFILE.sensor_names, ids, PROFILE.failure_types,
                           MessageFormat.EXTENDED, max_abs_value=built.max_abs_reading,
                           scenarios=fields)  # fmt: skip
    original = BodyEncoder(PROFILE.sensor_names, ids, PROFILE.failure_types,
                           max_abs_value=built.max_abs_reading)  # fmt: skip
    bodies = []
    header_health = b""
    for _ in range(4):
        result = built.step()
        bodies.append([ExtendedSensorMessage.from_json(b) for b in extended.encode(result, TS)])
        for body in original.encode(result, TS):
            SensorMessage.from_json(body)
        if result.cycle == 1:
            assert result.labels is not None
            headers = record_headers(result.labels, 0, 4)
            assert headers is not None
            assert headers[1] == [("quality", b"dropout:Sensor 2")]
            assert [key for key, _ in headers[2]] == ["health", "rul_cycles"]
            assert headers[2][1] == ("rul_cycles", b"2")
            header_health = headers[2][0][1]
            assert headers[0] == headers[3] == []
    assert bodies[1][1].readings.readings["Sensor 2"] is None
    assert bodies[1][1].quality == "dropout:Sensor 2"
    assert [b[2].rul_cycles for b in bodies] == [3, 2, 1, 0]
    health = [b[2].health or 0.0 for b in bodies]
    assert health[0] == 1.0
    assert health[3] == 0.0
    assert 1.0 > health[1] > health[2] > 0.0  # the machine's own path: shape ** its warp
    assert float(header_health) == health[1]
    assert bodies[3][2].failure is not None
    assert bodies[0][0].health is None
    assert bodies[0][0].quality is None


def test_a_machine_restored_inside_a_window_continues_as_if_never_stopped() -> None:
    scenarios = [
        {"target": {"fraction": 0.5}, "startCycle": 3, "failure": {"type": TYPE, "cycles": 8}},
        {"target": {"all": True}, "startCycle": 2,
         "degradation": {"type": OTHER, "cycles": 6, "failureCycles": 3}},
    ]  # fmt: skip
    undisturbed = run(engine(scenarios), 16)
    first = engine(scenarios)
    run(first, 6)
    rows = np.arange(12)
    second = engine(scenarios)
    second.restore_state(rows, first.export_state(rows))
    second.cycle = first.cycle
    for expected, got in zip(undisturbed[6:], run(second, 10), strict=True):
        assert np.array_equal(expected.micros, got.micros)
        assert np.array_equal(expected.failing, got.failing)
        assert np.array_equal(expected.progress, got.progress)


def test_a_window_that_began_before_the_machine_applies_from_its_first_cycle() -> None:
    late = engine([{"target": {"all": True}, "startCycle": 0,
                    "failure": {"type": TYPE, "cycles": 10}}])  # fmt: skip
    late.cycle = 6  # a machine started (or restored without an episode) inside the window
    results = run(late, 6)
    assert [bool(r.failing.all()) for r in results] == [True] * 4 + [False] * 2
    assert results[0].episode_cycle[0] == 7


def test_the_original_model_takes_scenarios_too() -> None:
    scenarios = [{"target": {"machines": [0]}, "startCycle": 1,
                  "degradation": {"type": TYPE, "cycles": 4, "failureCycles": 2}}]  # fmt: skip
    results = run(engine(scenarios, model=SimulationModel.ORIGINAL), 8)
    assert failing_cells(results) == {(5, 0), (6, 0)}

"""SIMULATION_MODEL=original stays the seed system's algorithm byte for byte.

The digest below was taken from the engine before the learned model existed (commit fa91d0f):
40 machines from index 3, 300 cycles, seed 20261201, extended format, every body in order.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from domain.machine_ids import machine_ids
from domain.messages import MessageFormat
from domain.simulation_model import FailureModel, SimulationModel
from producer.serialisation import BodyEncoder
from producer.simulation.engine import SimulationEngine
from producer.simulation.reference_data import load_profile

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
GOLDEN_SHA256 = "33240a51e9f91941130c53267499672f4acf7bc4f57c9f28a1a991a4125a86a8"


def test_original_model_output_is_unchanged_byte_for_byte() -> None:
    profile = load_profile(REPO / "data" / "data_sensors.csv", 20)
    engine = SimulationEngine(
        profile,
        FailureModel(),
        first_machine=3,
        count=40,
        seed=20261201,
        simulation_name="golden",
        model=SimulationModel.ORIGINAL,
    )
    encoder = BodyEncoder(
        profile.sensor_names,
        machine_ids("golden", range(3, 43)),
        profile.failure_types,
        MessageFormat.EXTENDED,
        max_abs_value=1e6,
        max_episode_cycles=60,
    )
    digest = hashlib.sha256()
    for _ in range(300):
        for body in encoder.encode(engine.step(), "2026-12-01T00:00:00.000+00:00"):
            digest.update(body + b"\n")
    assert digest.hexdigest() == GOLDEN_SHA256

"""The heap policy keeps a cycle's freed arrays mapped for the next cycle."""

from __future__ import annotations

import resource

import pytest

from domain.simulation_model import FailureModel, SimulationModel
from producer.runtime.heap import keep_cycle_memory
from producer.settings import DEFAULT_DATA_FILE
from producer.simulation.engine import SimulationEngine
from producer.simulation.reference_data import load_profile

pytestmark = pytest.mark.unit

MACHINES = 10_000


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@pytest.mark.parametrize("model", list(SimulationModel))
def test_engine_cycles_reuse_the_pages_of_the_previous_cycle(model: SimulationModel) -> None:
    assert keep_cycle_memory()
    profile = load_profile(DEFAULT_DATA_FILE, 20)
    engine = SimulationEngine(
        profile, FailureModel(), first_machine=0, count=MACHINES, seed=1,
        simulation_name="heap", model=model,
    )  # fmt: skip
    for _ in range(3):
        engine.step()
    before = minor_faults()
    cycles = 10
    for _ in range(cycles):
        engine.step()
    # a cycle's draws alone span MACHINES * 44 words of 8 bytes: ~860 pages
    assert (minor_faults() - before) / cycles < 100

"""Operating regimes and machine offsets of the learned model: the mixture, its size, the
regimes' weights and dwell times learned from recordings with known regimes; one regime is the
model without regimes; streams with regimes are reproducible per machine whatever the shard, and
their checkpoints restore byte-identically, those of a release without regimes too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from domain.partitioning import MachineRange, shard_table
from domain.reference_columns import ReferenceColumns
from domain.simulation_model import FailureModel, SimulationModel
from producer.continuity.codec import decode_machine, encode_machines, stack_states
from producer.continuity.fingerprint import simulation_config
from producer.continuity.history import sensor_state_kept
from producer.continuity.segments import segment_parameters
from producer.settings import ProducerSettings
from producer.shard import make_engine
from producer.simulation.engine import LearnedProcess, SimulationEngine
from producer.simulation.mixture import (
    choose_mixture,
    fit_mixture,
    hidden_markov_transition,
    rank_probabilities,
    with_stationary,
)
from producer.simulation.reference_data import ReferenceProfile, load_profile
from producer.simulation.regime_process import REGIME_STATE, RegimeProcess
from producer.simulation.regimes import (
    DEFAULT_DWELL_CYCLES,
    Regimes,
    regimes_for,
    solve_regime_sum,
)
from tests import lagged_reference, regime_reference
from tests.regime_reference import RegimeSpec

pytestmark = pytest.mark.unit

FloatArray = npt.NDArray[np.float64]
REPO = Path(__file__).resolve().parents[2]
COLUMNS = ReferenceColumns.parse(
    label="is_anomaly", label_set=True, normal_labels="0", time="timestamp", group="recording"
)
SPEC = RegimeSpec()


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> ReferenceProfile:
    path = regime_reference.write(tmp_path_factory.mktemp("regimes") / "machines.csv", SPEC)
    return load_profile(path, columns=COLUMNS)


@pytest.fixture(scope="module")
def bundled() -> ReferenceProfile:
    return load_profile(REPO / "data" / "data_sensors.csv")


def fitted(profile: ReferenceProfile, components: int | None = None) -> Regimes:
    return regimes_for(profile, components=components, persistence=None, interval_ms=None)


def engine(
    profile: ReferenceProfile,
    *,
    first: int = 0,
    count: int = 30,
    regimes: int | None = None,
    failures: FailureModel | None = None,
) -> SimulationEngine:
    return SimulationEngine(
        profile,
        failures or FailureModel(probability=0.02, min_cycles=3, max_cycles=8, ramp_cycles=2),
        first_machine=first,
        count=count,
        seed=5,
        simulation_name="regimes",
        model=SimulationModel.LEARNED,
        regimes=regimes,
    )


def test_the_mixture_finds_known_clusters_by_the_criterion() -> None:
    rng = np.random.default_rng(1)
    labels = rng.choice(3, size=3000, p=[0.5, 0.3, 0.2])
    means = np.array([[0.0, 0.0, 0.0], [2.5, 1.0, -1.0], [-1.0, 2.5, 2.0]])
    latent = means[labels] + rng.normal(size=(3000, 3)) * (0.5 + 0.3 * labels[:, None])
    # read through monotone functions: the copula mixture does not see them
    values = np.column_stack([np.exp(latent[:, 0]), latent[:, 1] ** 3, np.round(latent[:, 2], 1)])
    choice = choose_mixture(rank_probabilities(values), most=6, effective=3000.0)
    assert choice.mixture.components == 3, choice.criteria
    assert np.allclose(choice.mixture.weights, [0.5, 0.3, 0.2], atol=0.05)
    # one Gaussian law: one component
    gaussian = rng.normal(size=(2000, 6)) @ rng.normal(size=(6, 6))
    single = choose_mixture(rank_probabilities(gaussian), most=6, effective=2000.0)
    assert single.mixture.components == 1, single.criteria


def test_em_improves_the_likelihood_over_its_start() -> None:
    rng = np.random.default_rng(2)
    rows = np.concatenate([rng.normal(size=(400, 2)), rng.normal(size=(400, 2)) + 4.0])
    one, two = fit_mixture(rows, 1), fit_mixture(rows, 2)
    assert two.log_likelihood > one.log_likelihood + 250
    assert sorted(np.round(two.means[:, 0]).tolist()) == [0.0, 4.0]


def test_the_hidden_markov_chain_recovers_a_dwell_time_the_labels_blur() -> None:
    """Emissions that overlap make the most probable label flicker; the chain does not."""
    rng = np.random.default_rng(3)
    state = np.zeros(6000, dtype=np.int64)
    for t in range(1, 6000):
        state[t] = state[t - 1] if rng.random() > 1 / 50 else 1 - state[t - 1]
    rows = state * 1.5 + rng.normal(size=6000)
    log_densities = np.column_stack([-0.5 * rows**2, -0.5 * (rows - 1.5) ** 2])
    labels = np.argmax(log_densities, axis=1)
    flicker = 1.0 / np.mean(labels[1:] != labels[:-1])
    assert flicker < 10  # the labels switch about every few rows
    linked = np.ones(6000, dtype=np.bool_)
    linked[0] = linked[3000] = False  # two recordings
    counted = np.ones((2, 2))
    np.add.at(counted, (labels[:-1], labels[1:]), 1.0)
    start = counted / counted.sum(axis=1, keepdims=True)
    transition = hidden_markov_transition(log_densities, linked, start)
    dwell = 1.0 / (1.0 - np.diag(transition))
    assert np.all(np.abs(dwell - 50.0) < 15.0), dwell


def test_known_regimes_their_weights_and_dwell_times_are_learned(
    recordings: ReferenceProfile,
) -> None:
    regimes = fitted(recordings)
    assert regimes.components == 3, regimes.choice.criteria
    truth = regime_reference.stationary_weights(SPEC)
    assert np.allclose(regimes.weights, truth, atol=0.06), regimes.weights
    # the reference's step is the cycle (interval unset): dwell in steps, within 30 %
    dwell = np.array(SPEC.dwell_steps)
    assert np.all(np.abs(regimes.dwell_cycles / dwell - 1.0) < 0.3), regimes.dwell_cycles
    assert "learned from" in regimes.dwell_source
    # recordings differ by a persistent offset: found, and kept small
    assert regimes.offset is not None
    assert 0.005 < float(regimes.offset_share.max()) <= 0.5, regimes.offset_share


def test_dwell_times_scale_with_the_interval(recordings: ReferenceProfile) -> None:
    per_step = fitted(recordings)
    slower = regimes_for(recordings, components=None, persistence=None, interval_ms=4000)
    # four steps per cycle: a quarter of the cycles, about
    ratio = slower.dwell_cycles / per_step.dwell_cycles
    assert np.all((ratio > 0.2) & (ratio < 0.3)), ratio


def test_without_time_order_the_default_dwell_and_no_offsets(bundled: ReferenceProfile) -> None:
    regimes = fitted(bundled)
    assert regimes.components > 1
    assert "default" in regimes.dwell_source
    assert regimes.offset is None
    leave = 1.0 - np.diag(regimes.transition)
    assert np.allclose(leave, (1.0 - regimes.weights) / DEFAULT_DWELL_CYCLES, atol=1e-9)


def test_a_reference_without_regimes_runs_the_model_without_them(tmp_path: Path) -> None:
    """The lagged recordings are one Gaussian copula in time: one regime, and then the stream is
    the learned model's without regimes, bit for bit."""
    profile = load_profile(lagged_reference.write(tmp_path / "lagged.csv"), columns=COLUMNS)
    assert fitted(profile).components == 1
    auto, single = engine(profile), engine(profile, regimes=1)
    assert type(auto.process) is LearnedProcess
    for _ in range(5):
        assert np.array_equal(auto.step().micros, single.step().micros)


def test_one_regime_asked_for_is_the_model_without_regimes(bundled: ReferenceProfile) -> None:
    sim = engine(bundled, regimes=1)
    assert type(sim.process) is LearnedProcess
    assert REGIME_STATE not in sim.state_names


def test_machines_move_between_regimes_with_the_learned_dwell(
    recordings: ReferenceProfile,
) -> None:
    sim = engine(recordings, count=400, failures=FailureModel(probability=0))
    assert isinstance(sim.process, RegimeProcess)
    path = []
    for _ in range(600):
        sim.step()
        path.append(sim.process.regime.copy())
    regimes = np.array(path)
    share = np.array([(regimes == k).mean() for k in range(3)])
    expected = sim.process.regimes
    assert np.allclose(share, expected.weights, atol=0.04), share
    stays = regimes[1:] == regimes[:-1]
    for k in range(3):
        in_k = regimes[:-1] == k
        dwell = 1.0 / (1.0 - stays[in_k].mean())
        assert abs(dwell / expected.dwell_cycles[k] - 1.0) < 0.2, (k, dwell)


@pytest.mark.parametrize("shards", [2, 3, 7])
def test_machines_with_regimes_do_not_depend_on_the_shard_count(
    recordings: ReferenceProfile, shards: int
) -> None:
    whole = engine(recordings, count=23)
    parts = [engine(recordings, first=r.start, count=r.size) for r in shard_table(23, shards)]
    assert isinstance(whole.process, RegimeProcess)
    for _ in range(40):
        one = whole.step()
        split = [p.step() for p in parts]
        assert np.array_equal(one.micros, np.concatenate([s.micros for s in split]))
        assert np.array_equal(one.failing, np.concatenate([s.failing for s in split]))


def test_regime_state_round_trips_a_checkpoint_and_continues_byte_identically(
    recordings: ReferenceProfile,
) -> None:
    first = engine(recordings)
    for _ in range(25):
        first.step()
    rows = np.arange(first.count)
    state = first.export_state(rows)
    assert state[REGIME_STATE].dtype == np.int64
    records = encode_machines(
        "p",
        [f"m{i}" for i in rows],
        [first.cycle] * first.count,
        model="learned",
        fingerprint="f",
        state=state,
    )
    restored = stack_states([decode_machine(value) for _, value in records])
    second = engine(recordings)
    second.restore_state(rows, restored)
    second.cycle = first.cycle
    for _ in range(30):
        assert np.array_equal(first.step().micros, second.step().micros)


def test_a_checkpoint_without_regimes_restores(recordings: ReferenceProfile) -> None:
    """A state written without regimes (its latent state ~ N(0, R)) is taken: each machine
    continues from it in its starting regime, the same way in every engine."""
    without = engine(recordings, regimes=1)
    for _ in range(10):
        without.step()
    rows = np.arange(without.count)
    old = without.export_state(rows)
    assert REGIME_STATE not in old
    one, two = engine(recordings), engine(recordings)
    for sim in (one, two):
        sim.restore_state(rows, old)
        sim.cycle = without.cycle
    for _ in range(10):
        assert np.array_equal(one.step().micros, two.step().micros)


def test_machines_that_start_later_take_their_regime_from_the_cycle(
    recordings: ReferenceProfile,
) -> None:
    sim = engine(recordings)
    rows = np.arange(5)
    assert sim.regimes is not None
    fresh = sim.regimes.fresh_extra(rows, 0)
    assert np.array_equal(fresh[REGIME_STATE], sim.export_state(rows)[REGIME_STATE])
    later = [sim.regimes.fresh_extra(rows, cycle)[REGIME_STATE] for cycle in range(1, 60)]
    assert len({tuple(r.tolist()) for r in later}) > 1  # drawn per cycle


def test_regime_streams_keep_the_marginals_and_show_the_regimes(
    recordings: ReferenceProfile,
) -> None:
    """The fleet's readings follow the reference's marginals, and a machine's readings stay
    in one cluster for a while: the lag-30 correlation is the reference's persistence of
    regimes, well above what the within-regime dynamics alone leave."""
    sim = engine(recordings, count=300, failures=FailureModel(probability=0))
    values = np.stack([sim.step().values for _ in range(300)])
    sample = values[::25].reshape(-1, recordings.num_sensors)
    for j in range(recordings.num_sensors):
        reference = np.sort(recordings.normal_values[:, j])
        stream = np.sort(sample[:, j])
        points = np.concatenate([reference, stream])
        gap = np.searchsorted(reference, points, side="right") / len(reference)
        gap -= np.searchsorted(stream, points, side="right") / len(stream)
        assert np.abs(gap).max() <= 0.06, j
    lagged = np.corrcoef(values[:-30, :, 0].ravel(), values[30:, :, 0].ravel())[0, 1]
    assert lagged > 0.3, lagged


def test_the_configuration_history_records_the_regimes(bundled: ReferenceProfile) -> None:
    """More than one regime is recorded (and read back for a segment's engine); a configuration
    recorded without regimes builds its engines without them, so its checkpoints still fit."""
    learned = ProducerSettings(simulation_interval_ms=0, num_machines=8, http_port=0)
    config = simulation_config(learned, bundled, 1)
    assert config["regimes"] == fitted(bundled).components > 1
    assert segment_parameters(config).regimes == config["regimes"]
    original = learned.model_copy(update={"simulation_model": SimulationModel.ORIGINAL})
    assert "regimes" not in simulation_config(original, bundled, 1)
    recorded_before = {key: value for key, value in config.items() if key != "regimes"}
    assert segment_parameters(recorded_before).regimes == 1
    assert not sensor_state_kept(recorded_before, config)


def test_simulation_regimes_sets_the_count_for_the_engine_and_the_history(
    bundled: ReferenceProfile,
) -> None:
    """SIMULATION_REGIMES=1 is identical machines (no regimes recorded, none in the engine);
    another count is fitted, recorded and simulated with exactly that many."""
    machines = MachineRange(shard=0, start=0, stop=8)
    one = ProducerSettings(simulation_interval_ms=0, num_machines=8, simulation_regimes=1)
    assert "regimes" not in simulation_config(one, bundled, 1)
    assert make_engine(one, bundled, machines, 1).regimes is None
    two = one.model_copy(update={"simulation_regimes": 2})
    assert simulation_config(two, bundled, 1)["regimes"] == 2
    engine_two = make_engine(two, bundled, machines, 1)
    assert engine_two.regimes is not None
    assert engine_two.regimes.regimes.components == 2


def test_the_regimes_transition_is_the_same_solved_by_conjugate_gradients() -> None:
    """Wide references solve ``sum share W_j B W_i^T = G`` by conjugate gradients instead of
    one least-squares solve of ``sensors^2`` unknowns: the same ``B``."""
    rng = np.random.default_rng(4)
    sensors = 9
    roots: list[FloatArray] = [
        np.asarray(np.linalg.cholesky(np.cov(rng.normal(size=(sensors, 40)))), dtype=np.float64)
        for _ in range(3)
    ]
    pairs = [(0, 0), (0, 1), (1, 1), (2, 0), (2, 2)]
    shares = rng.dirichlet(np.ones(len(pairs)))
    terms = [(float(w), roots[j], roots[i]) for (i, j), w in zip(pairs, shares, strict=True)]
    target = rng.normal(size=(sensors, sensors))
    direct = solve_regime_sum(terms, target)
    iterative = solve_regime_sum(terms, target, direct_max=0)
    assert np.abs(direct - iterative).max() < 1e-8 * np.abs(direct).max()


def test_the_learned_chain_keeps_the_mixtures_weights() -> None:
    """A fleet started in the mixture's weights stays in them (the marginals are tabulated with
    them), and transitions the chain never makes stay impossible."""
    transition = np.array([[0.9, 0.1, 0.0], [0.05, 0.9, 0.05], [0.0, 0.2, 0.8]])
    weights = np.array([0.2, 0.3, 0.5])
    kept = with_stationary(transition, weights)
    np.testing.assert_allclose(kept.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(weights @ kept, weights, atol=1e-9)
    assert kept[0, 2] == 0.0
    assert kept[2, 0] == 0.0
    assert not np.allclose(weights @ transition, weights)  # the chain's own law differs

"""The model's pure rules: bounds and the failure model."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.simulation_model import FailureModel, widened_bounds

pytestmark = pytest.mark.unit

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)


def test_bounds_match_the_original_for_ranges_around_zero() -> None:
    assert widened_bounds(-1.0, 0.8) == pytest.approx((1.2 * -1.0, 1.2 * 0.8))


def test_bounds_of_a_positive_range_still_contain_it() -> None:
    # The original 1.2*min would be 72 here: above most of the learned range.
    assert widened_bounds(60.0, 90.0) == pytest.approx((48.0, 108.0))


@given(finite, finite)
def test_bounds_always_contain_the_learned_range(a: float, b: float) -> None:
    low, high = sorted((a, b))
    lower, upper = widened_bounds(low, high)
    assert lower <= low
    assert upper >= high


def test_bounds_reject_an_inverted_range() -> None:
    with pytest.raises(ValueError, match="above"):
        widened_bounds(2.0, 1.0)


@given(st.integers(0, 50), st.integers(1, 500))
def test_progress_ramps_linearly_then_stays_at_one(ramp: int, k: int) -> None:
    model = FailureModel(ramp_cycles=ramp)
    expected = 1.0 if ramp == 0 else min(1.0, k / ramp)
    assert model.progress(k) == expected


@given(st.integers(1, 100), st.integers(0, 100), st.floats(0.0, 1.0, exclude_max=True))
def test_duration_is_within_the_range(low: int, extra: int, u: float) -> None:
    model = FailureModel(min_cycles=low, max_cycles=low + extra)
    assert low <= model.duration_from_uniform(u) <= low + extra


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"probability": 1.5}, "probability"),
        ({"min_cycles": 0}, "min cycles"),
        ({"min_cycles": 10, "max_cycles": 5}, "max cycles"),
        ({"ramp_cycles": -1}, "ramp"),
    ],
)
def test_invalid_models_are_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FailureModel(**kwargs)  # type: ignore[arg-type]

"""The vectorised encoder writes exactly the bodies the models and orjson define."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from domain.messages import ExtendedSensorMessage, MessageFormat, SensorMessage
from producer.serialisation import EXACT_MAX_ABS, BodyEncoder, int_digits_for
from producer.simulation.engine import CycleResult

pytestmark = pytest.mark.unit

TS = "2026-11-29T12:34:56.789+00:00"
TYPES = ("bearing_wear", "1", 'odd "name" é')


def result(micros: np.ndarray, failing: np.ndarray | None = None, cycle: int = 0) -> CycleResult:
    n = micros.shape[0]
    failing = np.zeros(n, dtype=bool) if failing is None else failing
    episode = np.where(failing, np.arange(1, n + 1), 0).astype(np.int64)
    return CycleResult(
        cycle=cycle,
        micros=micros.astype(np.int64),
        failing=failing,
        failure_type=(np.arange(n) % len(TYPES)).astype(np.int64),
        progress=np.where(failing, np.minimum(1.0, episode / 7), 0.0),
        episode_cycle=episode,
        started=np.zeros(n, dtype=bool),
    )


def reference_body(
    names: list[str], machine: str, row: np.ndarray, failing: bool
) -> dict[str, object]:
    return {
        "machine_id": machine,
        "timestamp": TS,
        "readings": {
            "readings": {n: float(v) / 1e6 for n, v in zip(names, row.tolist(), strict=True)},
            "has_failure": failing,
        },
    }


values_st = hnp.arrays(
    np.int64,
    st.tuples(st.integers(1, 9), st.integers(1, 6)),
    elements=st.integers(-999_999_999_999, 999_999_999_999),
)


@settings(max_examples=60, deadline=None)
@given(values_st, st.data(), st.sampled_from([1, 2, 3, 5, 4096]))
def test_original_bodies_equal_the_reference_encoding(
    micros: np.ndarray, data: st.DataObject, chunk: int
) -> None:
    n, s = micros.shape
    names = [f"Sensor {j}" for j in range(s)]
    ids = [f"{i:08x}" for i in range(n)]
    failing = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    bound = float(np.abs(micros).max()) / 1e6
    encoder = BodyEncoder(names, ids, TYPES, max_abs_value=bound, chunk_rows=chunk)
    bodies = encoder.encode(result(micros, failing), TS)
    assert len(bodies) == n
    for i, body in enumerate(bodies):
        expected = reference_body(names, ids[i], micros[i], bool(failing[i]))
        assert json.loads(body) == expected
        assert list(json.loads(body)) == ["machine_id", "timestamp", "readings"]
        # byte-identical to orjson except that orjson writes tiny numbers with an exponent
        if np.all((np.abs(micros[i]) >= 100) | (micros[i] == 0)):
            assert body == orjson.dumps(expected)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 16),
    st.lists(
        st.tuples(st.integers(0, 15), st.integers(0, 6), st.booleans(), st.integers(0, 10**6)),
        min_size=1,
        max_size=40,
    ),
)
def test_numbers_of_every_width_read_back_exactly(
    digits: int, draws: list[tuple[int, int, bool, int]]
) -> None:
    """Readings with up to 16 digits in micro-units (every integer-digit group the encoder
    reserves, up to 2**53 - 1), any count of leading and trailing zeros, either sign."""
    values = []
    for length, zeros, negative, seed in draws:
        magnitude = min((seed * 7919 + 1) % 10 ** min(length, digits) * 10**zeros, 2**53 - 1)
        values.append(-magnitude if negative else magnitude)
    micros = np.array(values, dtype=np.int64).reshape(-1, 1)
    bound = min(max(float(np.abs(micros).max()), 10.0**digits - 1) / 1e6, EXACT_MAX_ABS)
    ids = [f"{i:08x}" for i in range(len(values))]
    encoder = BodyEncoder(["S"], ids, (), max_abs_value=bound)
    for body, value in zip(encoder.encode(result(micros), TS), values, strict=True):
        integer, fraction = divmod(abs(value), 1_000_000)
        decimals = f"{fraction:06d}".rstrip("0") or "0"
        expected = f"{'-' if value < 0 else ''}{integer}.{decimals}"
        assert body.endswith(f'"S":{expected}}},"has_failure":false}}}}'.encode())
        assert float(expected) == value / 1e6


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (0, "0.0"),
        (500_000, "0.5"),
        (-500_000, "-0.5"),
        (2_000_000, "2.0"),
        (1, "0.000001"),
        (-1, "-0.000001"),
        (-120, "-0.00012"),
        (452_113, "0.452113"),
        (1_479_482_653, "1479.482653"),
        (100_000_000, "100.0"),
        (-1_000_000_000_000, "-1000000.0"),
    ],
)
def test_number_forms(micros: int, text: str) -> None:
    encoder = BodyEncoder(["S"], ["00000000"], (), max_abs_value=1e6)
    body = encoder.encode(result(np.array([[micros]])), TS)[0]
    assert f'"S":{text}}}'.encode() in body


def test_extended_bodies_validate_and_carry_the_episode() -> None:
    n = 7
    micros = np.arange(n * 3, dtype=np.int64).reshape(n, 3) * 123_457 - 1_000_000
    failing = np.array([True, False, True, True, False, False, True])
    names = ["Sensor 1", "Sensor 2", "Sensor 3"]
    ids = [f"{i:08x}" for i in range(n)]
    encoder = BodyEncoder(
        names, ids, TYPES, MessageFormat.EXTENDED, max_abs_value=10, max_episode_cycles=1000
    )
    cycle = result(micros, failing, cycle=123456)
    for i, body in enumerate(encoder.encode(cycle, TS)):
        message = ExtendedSensorMessage.from_json(body)
        assert message.seq == 123456
        assert message.machine_id == ids[i]
        assert message.timestamp == datetime.fromisoformat(TS)
        assert message.readings.has_failure == bool(failing[i])
        if failing[i]:
            assert message.failure is not None
            assert message.failure.type == TYPES[i % len(TYPES)]
            assert message.failure.cycle == i + 1
            assert message.failure.progress == round(min(1.0, (i + 1) / 7), 6)
        else:
            assert message.failure is None
        assert list(orjson.loads(body))[:3] == ["machine_id", "timestamp", "readings"]


def test_encoder_is_reusable_across_cycles_and_partial_cycles() -> None:
    names = ["a", "b"]
    ids = [f"{i:08x}" for i in range(10)]
    encoder = BodyEncoder(names, ids, TYPES, MessageFormat.EXTENDED, max_abs_value=10, chunk_rows=4)
    first = result(np.full((10, 2), 1_500_000), np.ones(10, dtype=bool))
    second = result(np.full((10, 2), -2_000_000), np.zeros(10, dtype=bool), cycle=1)
    assert len(encoder.encode(first, TS)) == 10
    bodies = encoder.encode(second, TS, count=6)
    assert len(bodies) == 6
    for body in bodies:
        message = ExtendedSensorMessage.from_json(body)
        assert message.failure is None
        assert message.readings.readings == {"a": -2.0, "b": -2.0}
        SensorMessage.model_validate({k: v for k, v in orjson.loads(body).items()
                                      if k not in ("seq", "failure")})  # fmt: skip


def test_integer_digit_groups() -> None:
    assert int_digits_for(0.5) == 3
    assert int_digits_for(999.9) == 3
    assert int_digits_for(1000) == 6
    assert int_digits_for(1e11) == 12


def test_a_bound_that_rounds_up_to_a_power_of_ten_gets_its_digits() -> None:
    # A reading clipped to 999.9999996 is rounded to 1000.000000 (4 integer digits).
    assert int_digits_for(999.9999996) == 6
    assert int_digits_for(-999.9999996) == 6
    assert int_digits_for(999.9999994) == 3
    bound = 999.9999996
    micros = np.rint(np.array([[bound, -bound]]) * 1e6)
    encoder = BodyEncoder(["a", "b"], ["00000000"], (), max_abs_value=bound)
    body = encoder.encode(result(micros), TS)[0]
    assert orjson.loads(body)["readings"]["readings"] == {"a": 1000.0, "b": -1000.0}


def test_bad_timestamp_is_refused() -> None:
    encoder = BodyEncoder(["a"], ["00000000"], (), max_abs_value=1)
    with pytest.raises(ValueError, match="timestamp"):
        encoder.encode(result(np.zeros((1, 1))), "2026-11-29")


def test_a_nan_or_overflow_is_refused_not_written() -> None:
    encoder = BodyEncoder(["a", "b"], ["00000000"], (), max_abs_value=100)
    nan_micros = np.array([[0, np.iinfo(np.int64).min]])  # what NaN becomes in micro-units
    with pytest.raises(ValueError, match=r"outside the bounds \+-100000000 \(NaN or overflow"):
        encoder.encode(result(nan_micros), TS)
    encoder.encode(result(np.array([[100_000_000, -100_000_000]])), TS)  # the bounds themselves


def test_bounds_beyond_exact_six_decimals_are_refused() -> None:
    assert pytest.approx(9.007e9, rel=1e-3) == EXACT_MAX_ABS
    BodyEncoder(["a"], ["00000000"], (), max_abs_value=EXACT_MAX_ABS)
    for bound in (1e10, 1e12, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="6 exact decimals"):
            BodyEncoder(["a"], ["00000000"], (), max_abs_value=bound)

"""Generate ``data/data_sensors.csv``, sensorsim's own reference data set.

Deterministic: a fixed seed and numpy's PCG64 generator, so running it again reproduces the
committed file byte for byte (``python data/generate.py --check`` verifies that). See
``data/README.md`` for what the columns mean.

Usage::

    python data/generate.py            # rewrite data/data_sensors.csv
    python data/generate.py --check    # exit 1 if the committed file differs
"""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

SEED = 20261129
NORMAL_ROWS = 3000
OUTPUT = Path(__file__).resolve().parent / "data_sensors.csv"

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Sensor:
    number: int
    name: str
    unit: str


SENSORS = [
    Sensor(1, "drive-end bearing temperature", "degC"),
    Sensor(2, "non-drive-end bearing temperature", "degC"),
    Sensor(3, "motor winding temperature", "degC"),
    Sensor(4, "coolant temperature", "degC"),
    Sensor(5, "ambient temperature", "degC"),
    Sensor(6, "lubrication oil pressure", "bar"),
    Sensor(7, "hydraulic pressure", "bar"),
    Sensor(8, "pump inlet pressure", "bar"),
    Sensor(9, "pump outlet pressure", "bar"),
    Sensor(10, "vibration, horizontal", "mm/s RMS"),
    Sensor(11, "vibration, vertical", "mm/s RMS"),
    Sensor(12, "vibration, axial", "mm/s RMS"),
    Sensor(13, "acoustic level", "dB(A)"),
    Sensor(14, "motor current", "A"),
    Sensor(15, "supply voltage", "V"),
    Sensor(16, "shaft speed", "rpm"),
    Sensor(17, "coolant flow", "l/min"),
    Sensor(18, "relative humidity", "%"),
    Sensor(19, "power factor", "1"),
    Sensor(20, "load", "%"),
]

# Failure types: rows per type, and which sensors move how (added offset, or factor for the
# log-normal vibration channels). Each type hits a different group of sensors.
FAILURE_ROWS = {"bearing_wear": 60, "overheating": 50, "pressure_leak": 50, "electrical_fault": 40}


def _normal_state(rng: np.random.Generator, n: int) -> FloatArray:
    """n rows of healthy operation; a hidden load drives the correlated channels."""
    load = rng.uniform(40.0, 95.0, n)  # Sensor 20

    def z(scale: float) -> FloatArray:
        return rng.normal(0.0, scale, n)

    ambient = 22.0 + z(3.0)
    bearing_de = 48.0 + 0.22 * load + 0.3 * (ambient - 22.0) + z(1.8)
    bearing_nde = 0.85 * bearing_de + 6.0 + z(1.2)
    current = 18.0 + 0.36 * load + z(1.5)
    winding = 45.0 + 0.45 * load + 0.5 * (ambient - 22.0) + z(2.5)
    coolant = 30.0 + 0.08 * load + 0.4 * (ambient - 22.0) + z(1.0)
    oil = 4.5 + z(0.25)
    hydraulic = 150.0 + 0.45 * load + z(6.0)
    inlet = 1.2 + z(0.05)
    outlet = 3.0 + 0.035 * load + 0.8 * (inlet - 1.2) + z(0.25)
    vib_base = rng.lognormal(np.log(1.8), 0.25, n)
    vib_h = vib_base * rng.lognormal(0.0, 0.12, n)
    vib_v = 0.8 * vib_base * rng.lognormal(0.0, 0.12, n)
    vib_a = rng.lognormal(np.log(1.1), 0.3, n)
    acoustic = 68.0 + 0.06 * load + 1.5 * np.log(vib_h) + z(1.5)
    voltage = 400.0 + z(4.0)
    speed = 1495.0 - 0.2 * load + z(3.0)
    flow = 80.0 + 0.5 * load + z(4.0)
    humidity = 100.0 * rng.beta(6.0, 9.0, n)
    power_factor = 0.80 + 0.15 * rng.beta(5.0, 2.0, n)
    columns = [
        bearing_de, bearing_nde, winding, coolant, ambient, oil, hydraulic, inlet, outlet,
        vib_h, vib_v, vib_a, acoustic, current, voltage, speed, flow, humidity, power_factor, load,
    ]  # fmt: skip
    return np.column_stack(columns)


def _failure_state(rng: np.random.Generator, kind: str, n: int) -> FloatArray:
    """n rows of one failure type: healthy rows pushed towards the type's signature."""
    rows = _normal_state(rng, n)
    col = {s.number: s.number - 1 for s in SENSORS}
    if kind == "bearing_wear":
        for number in (10, 11, 12):
            rows[:, col[number]] *= rng.uniform(2.5, 4.0, n)
        rows[:, col[1]] += rng.normal(9.0, 2.0, n)
        rows[:, col[2]] += rng.normal(6.0, 2.0, n)
        rows[:, col[13]] += rng.normal(7.0, 1.5, n)
    elif kind == "overheating":
        rows[:, col[3]] += rng.normal(28.0, 4.0, n)
        rows[:, col[4]] += rng.normal(12.0, 2.0, n)
        rows[:, col[14]] += rng.normal(7.0, 1.5, n)
        rows[:, col[17]] -= rng.normal(25.0, 5.0, n)
    elif kind == "pressure_leak":
        rows[:, col[6]] -= rng.normal(1.6, 0.3, n)
        rows[:, col[7]] -= rng.normal(45.0, 8.0, n)
        rows[:, col[9]] -= rng.normal(1.8, 0.3, n)
        rows[:, col[8]] -= rng.normal(0.25, 0.05, n)
    elif kind == "electrical_fault":
        rows[:, col[15]] -= rng.normal(35.0, 6.0, n)
        rows[:, col[14]] += rng.normal(12.0, 3.0, n)
        rows[:, col[19]] -= rng.normal(0.12, 0.02, n)
        rows[:, col[16]] -= rng.normal(25.0, 5.0, n)
    else:
        raise ValueError(kind)
    return rows


def generate() -> str:
    """The CSV text."""
    rng = np.random.default_rng(SEED)
    blocks = [_normal_state(rng, NORMAL_ROWS)]
    labels = [""] * NORMAL_ROWS
    for kind, count in FAILURE_ROWS.items():
        blocks.append(_failure_state(rng, kind, count))
        labels += [kind] * count
    values = np.vstack(blocks)
    order = rng.permutation(len(labels))
    out = io.StringIO()
    out.write(",".join([f"Sensor {s.number}" for s in SENSORS] + ["Label"]) + "\n")
    for i in order:
        out.write(",".join(f"{v:.4f}" for v in values[i]) + f",{labels[i]}\n")
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="verify instead of writing")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write the CSV")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        if not args.output.exists() or args.output.read_text() != text:
            print(f"{args.output} differs from what data/generate.py produces", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

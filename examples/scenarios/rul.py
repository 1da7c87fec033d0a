"""Train a remaining-useful-life regressor on a degradation stream (JSON lines, extended format)
and compare it with predicting the mean, on machines held out of training:
python examples/scenarios/rul.py wear.jsonl (needs scikit-learn)."""

import json
import sys
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import mean_absolute_error

lines = Path(sys.argv[1]).read_text().splitlines()
rows = [r for r in map(json.loads, lines) if r["rul_cycles"]]  # degrading, before the failure
machines = sorted({r["machine_id"] for r in rows})
held_out = set(machines[: len(machines) // 4])
train = [r for r in rows if r["machine_id"] not in held_out]
test = [r for r in rows if r["machine_id"] in held_out]


def features(part: list[dict]) -> np.ndarray:
    return np.array([list(r["readings"]["readings"].values()) for r in part])


def rul(part: list[dict]) -> np.ndarray:
    return np.array([r["rul_cycles"] for r in part])


model = HistGradientBoostingRegressor(random_state=0).fit(features(train), rul(train))
baseline = np.full(len(test), rul(train).mean())
print(f"machines: {len(machines) - len(held_out)} train, {len(held_out)} test")
print(f"MAE predicting the mean: {mean_absolute_error(rul(test), baseline):.1f} cycles")
predicted = model.predict(features(test))
print(f"MAE gradient boosting:   {mean_absolute_error(rul(test), predicted):.1f} cycles")

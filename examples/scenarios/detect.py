"""Score a z-score detector against the scheduled failures of a labelled stream (JSON lines,
extended format): python examples/scenarios/detect.py labelled.jsonl"""

import json
import sys
from pathlib import Path

import numpy as np

rows = [json.loads(line) for line in Path(sys.argv[1]).read_text().splitlines()]
values = np.array([list(r["readings"]["readings"].values()) for r in rows])
truth = np.array([r["failure"] is not None for r in rows])
healthy = values[~truth]
z = np.abs((values - healthy.mean(axis=0)) / healthy.std(axis=0)).max(axis=1)
alarm = z > 4.0
print(
    f"failing records: {truth.sum()}, recall {alarm[truth].mean():.2f}, "
    f"false alarms {alarm[~truth].mean():.3f} of healthy records"
)

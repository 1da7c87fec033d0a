"""Engine + serialisation of this tree against a baseline commit, measured in the same run.

The baseline commit is exported (``git archive``) once into
``$SENSORSIM_CACHE/bench-baselines/<commit>/``, outside the repository. ``engine_probe.py``
(this tree's copy) then measures both trees in child processes of this virtualenv's Python,
alternating baseline and current run by run, each pinned to the same CPU; the table gives the
median of each side and their ratio, so a regression shows on the day it lands whatever the
machine's load. A model the baseline lacks is compared with the baseline's original model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).with_name("engine_probe.py")
STORED_BASELINE = Path(__file__).with_name("baseline_commit.txt")
NO_SUCH_MODEL = 3  # engine_probe's exit code
RUNS = (("original", "default"), ("learned", "default"), ("learned", "original"))
"""(model, failure rate) of each row: each model as ``python -m producer`` runs it (the learned
model fails at the reference's labelled share), then the learned model at the original's rate,
where the failure blend runs on most machines."""


def stored_baseline() -> str:
    """The commit named on the last non-comment line of ``baseline_commit.txt``."""
    lines = [line.strip() for line in STORED_BASELINE.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")][-1]


def cache_dir() -> Path:
    return Path(os.environ.get("SENSORSIM_CACHE", Path.home() / ".cache" / "sensorsim"))


def export_commit(commit: str) -> tuple[str, Path]:
    """The full hash of ``commit`` and a directory holding its tree (exported once)."""
    full = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{commit}^{{commit}}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    target = cache_dir() / "bench-baselines" / full
    if (target / ".exported").exists():
        return full, target
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as archive:
        subprocess.run(["git", "-C", str(REPO), "archive", full], stdout=archive, check=True)
        archive.seek(0)
        with tarfile.open(fileobj=archive) as tar:
            tar.extractall(target, filter="data")
    (target / ".exported").touch()
    return full, target


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


@dataclass
class Series:
    """One tree's runs of one model and fleet size."""

    model: str
    runs: list[dict[str, float]]

    def median(self, key: str = "messages_per_cpu_second") -> float:
        return median([run[key] for run in self.runs])


def probe(
    tree: Path, machines: int, model: str, budget: float, cpu: int, *, failures: str = "default"
) -> dict[str, float]:
    """One ``engine_probe.py`` run in ``tree``; empty when the tree has no such model."""
    command = [sys.executable, str(PROBE), "--machines", str(machines), "--model", model,
               "--budget", str(budget), "--cpu", str(cpu), "--failures", failures]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode == NO_SUCH_MODEL:
        return {}
    if done.returncode != 0:
        raise SystemExit(f"engine_probe.py failed in {tree}: {done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def compare(commit: str, machines_list: list[int], budget: float, cpu: int, repeat: int) -> None:
    """Print the table of current / baseline ratios (medians of ``repeat`` alternating runs)."""
    full, baseline_tree = export_commit(commit)
    print(
        f"(e) engine + serialisation, this tree against {full[:12]}, 20 sensors, original format, "
        f"one core; msg/s per CPU second, medians of {repeat} alternating runs of {budget:g} s"
    )
    print(f"{'machines':>9} | {'model':<8} | {'baseline':>9} {'(model)':<10} | {'current':>9} | "
          f"{'current/baseline':>16} | {'engine us':>9} {'base':>5} | {'encode us':>9} "
          f"{'base':>5} | runs current / baseline")  # fmt: skip
    print("-" * 132)
    for machines in machines_list:
        for model, failures in RUNS:
            current, baseline = Series(model, []), Series(model, [])
            for _ in range(repeat):
                measured = probe(baseline_tree, machines, baseline.model, budget, cpu)
                if not measured:  # a model the baseline lacks: its original model
                    baseline.model = "original"
                    measured = probe(baseline_tree, machines, baseline.model, budget, cpu)
                baseline.runs.append(measured)
                current.runs.append(probe(REPO, machines, model, budget, cpu, failures=failures))
            runs = " / ".join(
                ", ".join(f"{run['messages_per_cpu_second']:,.0f}" for run in series.runs)
                for series in (current, baseline)
            )
            print(
                f"{machines:>9,} | {model + ('*' if failures == 'original' else ''):<8} | "
                f"{baseline.median():>9,.0f} "
                f"{f'({baseline.model})':<10} | {current.median():>9,.0f} | "
                f"{current.median() / baseline.median():>15.2f}x | "
                f"{current.median('engine_us'):>9.2f} {baseline.median('engine_us'):>5.2f} | "
                f"{current.median('encode_us'):>9.2f} {baseline.median('encode_us'):>5.2f} | "
                f"{runs}",
                flush=True,
            )
    print(
        "learned: at the reference's labelled failure share, as the producer runs it; "
        "learned*: at the original model's failure rate (the failure blend on most machines)"
    )
    print()

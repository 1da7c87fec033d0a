"""``sensorsim profile`` and ``sensorsim fidelity``: what is learned from a reference table, and
how closely a simulated stream follows it."""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Sequence
from pathlib import Path

from domain import settings_contract as contract
from producer.analysis import fidelity
from producer.analysis.fidelity_plot import INSTALL_HINT, plot
from producer.analysis.model_report import describe_learned
from producer.errors import ConfigError, ExitCode, ReferenceDataError
from producer.settings import ProducerSettings, load_settings
from producer.simulation.learned_model import fit_learned_model
from producer.simulation.reference_data import (
    ReferenceProfile,
    check_learned_model_data,
    describe,
    load_profile,
)


def profile_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{prog} profile",
        description=(
            "Print what the producer learns from a reference CSV: per-sensor normal statistics "
            "and bounds, and each failure type's signature."
        ),
    )
    _add_data_options(parser)
    return parser


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    """--data, --num-sensors and the column options, shared by the commands that read a
    reference table; the column options are ``sensorsim run``'s (the settings contract's)."""
    parser.add_argument(
        "--data",
        "--file",
        dest="file",
        type=Path,
        help="reference CSV or Parquet file (default: SENSOR_DATA_FILE, else the bundled data)",
    )
    parser.add_argument(
        "--num-sensors",
        "--sensors",
        dest="num_sensors",
        type=int,
        metavar="N",
        help="use the first N sensor columns (default: all of them)",
    )
    for variable in _COLUMN_SETTINGS:
        setting = contract.setting(variable)
        assert setting.flag is not None
        parser.add_argument(
            setting.flag,
            dest=setting.name,
            metavar="TEXT",
            help=f"{setting.description} ({variable})",
        )


_COLUMN_SETTINGS = (
    "SENSOR_COLUMNS",
    "LABEL_COLUMN",
    "NORMAL_LABELS",
    "TIME_COLUMN",
    "GROUP_COLUMN",
)


def _data_settings(args: argparse.Namespace) -> ProducerSettings:
    """The settings from the environment, the data options overriding their variables."""
    return load_settings(
        sensor_data_file=args.file,
        sensor_columns=args.sensor_columns,
        label_column=args.label_column,
        normal_labels=args.normal_labels,
        time_column=args.time_column,
        group_column=args.group_column,
    )


def _read_profile(settings: ProducerSettings, num_sensors: int | None) -> ReferenceProfile:
    return load_profile(settings.sensor_data_file, num_sensors, columns=settings.reference_columns)


def fidelity_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{prog} fidelity",
        description=(
            "Simulate a seeded stream in memory and print how closely it follows the reference "
            "CSV: per-sensor KS distance, rank-correlation gap, failure signature gap, a "
            "classifier trained on the stream and tested on the reference, the persistence "
            "of failing readings, each sensor's lag-1 against the reference's (a time series) and "
            "a classifier two-sample test (needs sensorsim[fidelity]), each against its "
            "acceptance bound. The simulation settings "
            "(SIMULATION_MODEL, SIMULATION_PERSISTENCE, FAILURE_*) and the reference's columns "
            "(SENSOR_COLUMNS, LABEL_COLUMN, ...) come from the environment or the options."
        ),
    )
    _add_data_options(parser)
    parser.add_argument("--machines", type=int, default=200, help="machines (default 200)")
    parser.add_argument(
        "--cycles", type=int, default=800, help="cycles, burn-in included (default 800)"
    )
    parser.add_argument(
        "--burn-in", type=int, default=150, help="cycles left out at the start (default 150)"
    )
    parser.add_argument(
        "--thin",
        type=int,
        help="keep one healthy reading per N cycles (default: from the persistence, at least 25)",
    )
    parser.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="OUT.png",
        help="also draw histograms and correlation matrices (needs sensorsim[plots])",
    )
    return parser


def profile(argv: Sequence[str], prog: str) -> int:
    """``profile``: print what is learned from the reference table."""
    args = profile_parser(prog).parse_args(argv)
    if args.num_sensors is not None and args.num_sensors < 1:
        raise _usage_error("--num-sensors must be >= 1")
    settings = _data_settings(args)
    profile = _read_profile(settings, args.num_sensors)
    print(describe(profile))
    print()
    try:
        check_learned_model_data(profile)
    except ReferenceDataError as exc:
        print(f"learned model: not available: {exc.problem}")
        return ExitCode.OK
    learned = fit_learned_model(profile.normal_values, profile.failure_values)
    print(describe_learned(profile, learned, settings))
    return ExitCode.OK


def fidelity_report(argv: Sequence[str], prog: str) -> int:
    """``fidelity``: simulate a seeded sample and compare it with the reference table."""
    args = fidelity_parser(prog).parse_args(argv)
    if args.num_sensors is not None and args.num_sensors < 1:
        raise _usage_error("--num-sensors must be >= 1")
    if args.machines < 1 or (args.thin is not None and args.thin < 1) or args.burn_in < 0:
        raise _usage_error("--machines and --thin must be >= 1, --burn-in >= 0")
    if args.cycles <= args.burn_in:
        raise _usage_error(f"--cycles ({args.cycles}) must be above --burn-in ({args.burn_in})")
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        raise _usage_error(f"--plot needs matplotlib, which is not installed: {INSTALL_HINT}")
    settings = _data_settings(args)
    profile = _read_profile(settings, args.num_sensors)
    if settings.simulation_model == "learned":
        check_learned_model_data(profile)
    print(
        f"reference data: {profile.source}; model {settings.simulation_model.value}, "
        f"{args.machines} machines x {args.cycles} cycles (burn-in {args.burn_in}, "
        f"seed {args.seed}, at the reference's own interval)"
    )
    sample = fidelity.simulate_sample(
        profile,
        model=settings.simulation_model,
        failures=settings.failure_model(profile.labelled_share),
        persistence=settings.simulation_persistence,
        regimes=settings.simulation_regimes,
        machines=args.machines,
        cycles=args.cycles,
        burn_in=args.burn_in,
        thin=args.thin,
        seed=args.seed,
    )
    report = fidelity.evaluate(profile, sample)
    print(f"healthy readings thinned to 1 per {sample.thin} cycles")
    print(fidelity.describe(report))
    if args.plot is not None:
        plot(args.plot, profile, sample, report)
        print(f"plot written to {args.plot}")
    return ExitCode.OK


def _usage_error(message: str) -> ConfigError:
    return ConfigError(message)

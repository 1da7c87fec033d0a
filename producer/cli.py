"""Command line: ``python -m producer [run] [options]`` and ``python -m producer profile``."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from producer.analysis import fidelity
from producer.analysis.fidelity_plot import INSTALL_HINT, plot
from producer.analysis.model_report import describe_learned
from producer.assembly import build_app
from producer.errors import ExitCode, ProducerError, ReferenceDataError
from producer.runtime.logging_setup import setup_logging
from producer.settings import ProducerSettings, env_table, load_settings
from producer.simulation.learned_model import fit_learned_model
from producer.simulation.reference_data import (
    ReferenceProfile,
    check_learned_model_data,
    describe,
    load_profile,
)

PROG = "python -m producer"


def _env_epilog() -> str:
    rows = env_table()
    width = max(len(name) for name, _, _ in rows)
    lines = [
        "commands:",
        "  run       (default) simulate and publish; options above",
        f"  profile   print what is learned from a reference CSV ({PROG} profile --help)",
        f"  fidelity  compare a simulated stream with its reference CSV ({PROG} fidelity --help)",
        "",
        "environment (options above override the matching variables):",
    ]
    for name, default, meaning in rows:
        lines.append(f"  {name:<{width}}  {meaning} [default: {default}]")
    lines += [
        "",
        "exit codes: 0 all records delivered; 1 some records not delivered; 2 invalid "
        "configuration or reference data; 3 broker unreachable, credentials refused or topic "
        "unusable; 4 unexpected internal error (records still flushed).",
    ]
    return "\n".join(lines)


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} [run]",
        description=(
            "Simulate a fleet of machines whose sensors follow statistics learned from a "
            "reference CSV, and publish one JSON reading per machine and cycle to Kafka "
            "(or to standard output). Configured by environment variables (below)."
        ),
        epilog=_env_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sink",
        choices=["kafka", "stdout"],
        default="kafka",
        help="where records go: Kafka (default) or JSON lines on standard output (no broker)",
    )
    parser.add_argument(
        "--max-messages",
        type=int,
        metavar="N",
        help="stop after N records from this process (MAX_MESSAGES)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="stop after this many seconds (DURATION_SECONDS)",
    )
    return parser


def profile_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} profile",
        description=(
            "Print what the producer learns from a reference CSV: per-sensor normal statistics "
            "and bounds, and each failure type's signature."
        ),
    )
    _add_data_options(parser)
    return parser


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    """--file and --num-sensors, shared by the commands that read a reference CSV."""
    parser.add_argument(
        "--file",
        type=Path,
        help="reference CSV or Parquet file (default: SENSOR_DATA_FILE, else the bundled data)",
    )
    parser.add_argument(
        "--num-sensors",
        type=int,
        metavar="N",
        help="use the first N sensor columns (default: all of them)",
    )
    for option, variable, meaning in _COLUMN_OPTIONS:
        parser.add_argument(option, metavar="TEXT", help=f"{meaning} ({variable})")


_COLUMN_OPTIONS = (
    ("--sensor-columns", "SENSOR_COLUMNS", "comma-separated sensor columns"),
    ("--label-column", "LABEL_COLUMN", "column of the failure labels"),
    ("--normal-labels", "NORMAL_LABELS", "comma-separated label values that mean normal"),
    ("--time-column", "TIME_COLUMN", "column of times ordering the rows"),
    ("--group-column", "GROUP_COLUMN", "column of machine or recording ids"),
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


def fidelity_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} fidelity",
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


def _profile(argv: Sequence[str]) -> int:
    args = profile_parser().parse_args(argv)
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


def _fidelity(argv: Sequence[str]) -> int:
    args = fidelity_parser().parse_args(argv)
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


class _UsageError(ProducerError):
    pass


def _usage_error(message: str) -> _UsageError:
    return _UsageError(message)


def _run(argv: Sequence[str]) -> int:
    args = run_parser().parse_args(argv)
    settings = load_settings(max_messages=args.max_messages, duration_seconds=args.duration)
    setup_logging(settings.log_level, settings.log_format)
    app = build_app(settings, args.sink)
    app.install_signal_handlers()
    return app.run().exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code. User errors print one line, never a traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] == "profile":
            return _profile(args[1:])
        if args and args[0] == "fidelity":
            return _fidelity(args[1:])
        if args and args[0] == "run":
            args = args[1:]
        return _run(args)
    except ProducerError as exc:
        logging.getLogger("producer").debug("error details", exc_info=True)
        print(f"sensorsim-producer: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away (``| head``): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK

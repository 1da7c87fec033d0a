"""Command line: ``python -m producer [run] [options]`` and ``python -m producer profile``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from producer.errors import ExitCode, ProducerError

PROG = "python -m producer"


def _env_epilog() -> str:
    from producer.settings import env_table  # noqa: PLC0415

    rows = env_table()
    width = max(len(name) for name, _, _ in rows)
    lines = [
        "commands:",
        "  run       (default) simulate and publish; options above",
        f"  profile   print what is learned from a reference CSV ({PROG} profile --help)",
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
    parser.add_argument(
        "--file",
        type=Path,
        help="reference CSV (default: SENSOR_DATA_FILE, else the bundled data set)",
    )
    parser.add_argument(
        "--num-sensors",
        type=int,
        metavar="N",
        help="use the first N sensor columns (default: all of them)",
    )
    return parser


def _profile(argv: Sequence[str]) -> int:
    from producer.reference_data import describe, load_profile  # noqa: PLC0415
    from producer.settings import DEFAULT_DATA_FILE  # noqa: PLC0415

    args = profile_parser().parse_args(argv)
    path = args.file or Path(os.environ.get("SENSOR_DATA_FILE") or DEFAULT_DATA_FILE)
    if args.num_sensors is not None and args.num_sensors < 1:
        raise _usage_error("--num-sensors must be >= 1")
    print(describe(load_profile(path, args.num_sensors)))
    return ExitCode.OK


class _UsageError(ProducerError):
    pass


def _usage_error(message: str) -> _UsageError:
    return _UsageError(message)


def _run(argv: Sequence[str]) -> int:
    from producer.app import ProducerApp  # noqa: PLC0415
    from producer.logging_setup import setup_logging  # noqa: PLC0415
    from producer.settings import load_settings  # noqa: PLC0415

    args = run_parser().parse_args(argv)
    settings = load_settings(max_messages=args.max_messages, duration_seconds=args.duration)
    setup_logging(settings.log_level, settings.log_format)
    app = ProducerApp(settings, args.sink)
    app.install_signal_handlers()
    return app.run().exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code. User errors print one line, never a traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] == "profile":
            return _profile(args[1:])
        if args and args[0] == "run":
            args = args[1:]
        return _run(args)
    except ProducerError as exc:
        logging.getLogger("producer").debug("error details", exc_info=True)
        print(f"sensorsim-producer: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130

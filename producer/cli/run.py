"""``sensorsim run``: simulate and publish. Its options are generated from the settings contract
(``domain/settings_contract.py``): every setting but the secrets has one, named by
``Setting.flag``, and sets the same field the environment variable does; an option given wins
over the variable."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from domain import settings_contract as contract
from domain import settings_vocabulary as vocabulary
from producer.assembly import build_app
from producer.errors import ConfigError
from producer.runtime.heap import keep_cycle_memory
from producer.runtime.logging_setup import setup_logging
from producer.runtime.progress import DEFAULT_PROGRESS_SECONDS, ProgressReporter
from producer.settings import ProducerSettings, load_settings

EXIT_CODES = (
    "exit codes: 0 all records delivered; 1 some records not delivered; 2 invalid "
    "configuration or reference data; 3 broker unreachable, credentials refused or topic "
    "unusable; 4 unexpected internal error (records still flushed)."
)


def settings_options() -> list[vocabulary.Setting]:
    """The settings that have a command-line option (all but the secrets), contract order."""
    return [setting for setting in contract.SETTINGS if setting.flag is not None]


def _epilog(prog: str) -> str:
    secrets = [setting for setting in contract.SETTINGS if setting.flag is None]
    lines = [
        "commands:",
        "  run       (default) simulate and publish; options above",
        f"  profile   print what is learned from a reference table ({prog} profile --help)",
        f"  fidelity  compare a simulated stream with its reference ({prog} fidelity --help)",
        "",
        "Each setting option sets the environment variable shown as its argument; the",
        "variables work as well, and an option given wins over its variable.",
        "Secrets are read from the environment only:",
    ]
    lines += [f"  {setting.env}  {setting.description}" for setting in secrets]
    return "\n".join([*lines, "", EXIT_CODES])


def _add_setting(group: Any, setting: vocabulary.Setting) -> None:
    assert setting.flag is not None
    help_text = f"{setting.description} [default: {setting.shown()}]".replace("%", "%%")
    if isinstance(setting.default, bool):
        group.add_argument(
            setting.flag,
            dest=setting.name,
            action=argparse.BooleanOptionalAction,
            default=None,
            help=f"{help_text} ({setting.env})",
        )
        return
    group.add_argument(setting.flag, dest=setting.name, metavar=setting.env, help=help_text)


def run_parser(prog: str, version: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{prog} [run]",
        usage="%(prog)s [options]",
        description=(
            "Simulate a fleet of machines whose sensors follow statistics learned from a "
            "reference table, and publish one JSON reading per machine and cycle to Kafka "
            "(or to standard output)."
        ),
        epilog=_epilog(prog),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sensorsim {version}")
    parser.add_argument(
        "--sink",
        choices=["kafka", "stdout"],
        default="kafka",
        help="where records go: Kafka (default) or JSON lines on standard output (no broker)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="print a progress line to standard error every --progress-interval seconds "
        "(default: when standard error is a terminal)",
    )
    parser.add_argument(
        "--progress-interval",
        type=float,
        default=DEFAULT_PROGRESS_SECONDS,
        metavar="SECONDS",
        help=f"seconds between progress lines (default {DEFAULT_PROGRESS_SECONDS:g})",
    )
    common = parser.add_argument_group("common settings")
    other = parser.add_argument_group("other settings")
    for setting in settings_options():
        _add_setting(common if setting.option else other, setting)
    return parser


def option_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as options, by field name (options not given are left out)."""
    values = {setting.name: getattr(args, setting.name) for setting in settings_options()}
    return {name: value for name, value in values.items() if value is not None}


def run(argv: Sequence[str], prog: str, version: str) -> int:
    """``run``: the producer with the options over the environment; returns the exit code."""
    args = run_parser(prog, version).parse_args(argv)
    if args.progress_interval <= 0:
        raise ConfigError("--progress-interval must be > 0")
    settings: ProducerSettings = load_settings(**option_overrides(args))
    setup_logging(settings.log_level, settings.log_format)
    keep_cycle_memory()
    app = build_app(settings, args.sink)
    app.install_signal_handlers()
    show_progress = sys.stderr.isatty() if args.progress is None else args.progress
    if not show_progress:
        return app.run().exit_code
    with ProgressReporter(app.metrics.registry, sys.stderr, args.progress_interval):
        return app.run().exit_code

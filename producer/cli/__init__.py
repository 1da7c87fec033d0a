"""The command line: ``sensorsim [run] [options]``, ``sensorsim profile``, ``sensorsim fidelity``
and ``sensorsim --version``; ``python -m producer`` and ``sensorsim-producer`` are the same
program under their older names.

``run`` (``producer.cli.run``) takes an option for every setting of the contract; ``profile``
and ``fidelity`` (``producer.cli.analysis``) read the reference table.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from importlib import metadata

from producer.cli.analysis import fidelity_report, profile
from producer.cli.run import run
from producer.errors import ProducerError

__all__ = ["main", "version"]

PROG = "sensorsim"


def version() -> str:
    """The installed distribution's version ('unknown' when run from an uninstalled tree)."""
    try:
        return metadata.version("sensorsim")
    except metadata.PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Entry point; returns the exit code. User errors print one line, never a traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] == "profile":
            return profile(args[1:], prog)
        if args and args[0] == "fidelity":
            return fidelity_report(args[1:], prog)
        if args and args[0] == "run":
            args = args[1:]
        return run(args, prog, version())
    except ProducerError as exc:
        logging.getLogger("producer").debug("error details", exc_info=True)
        print(f"sensorsim-producer: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away (``| head``): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0

"""Errors the producer reports to the user as one clear line, and their exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of ``python -m producer``."""

    OK = 0
    UNDELIVERED = 1
    """Stopped, but some records were not acknowledged by the broker."""
    CONFIG = 2
    """Invalid configuration or reference data; nothing was started."""
    BROKER = 3
    """The broker could not be reached, refused the credentials, or the topic is unusable."""
    INTERNAL = 4
    """The cycle loop stopped on an unexpected error (a bug); records were still flushed."""


class ProducerError(Exception):
    """An error with a message meant for the user (no traceback is printed)."""

    exit_code: ExitCode = ExitCode.CONFIG


class ConfigError(ProducerError):
    """The configuration is invalid; the message names the variable and the rule."""


class ReferenceDataError(ProducerError):
    """The reference CSV is missing, unreadable or malformed; the message names the file."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"reference data {path}: {problem}")
        self.path = path
        self.problem = problem


class BrokerError(ProducerError):
    """Kafka could not be used at start; the message says what to check."""

    exit_code = ExitCode.BROKER


class TransactionFencedError(BrokerError):
    """Exactly-once: the transactional producer was fenced (another producer started with its
    transactional id) or is not authorised to use it; the process stops (exit code 3)."""


class IntervalAbortedError(Exception):
    """Exactly-once: the transaction of the interval in progress was aborted (an abortable
    error, a commit that did not complete, a client that had to be replaced). The sink has
    already begun a new transaction; the producer replays from the last committed checkpoint."""

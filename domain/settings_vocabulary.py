"""The words the producer's settings contract is written in (``settings_contract`` holds the
table itself): the enums and literal choices of its values, the limits and patterns its bounds
use, a :class:`Rule` (a check as CEL and as a Python predicate), a :class:`Setting` (one
variable: default, bounds, pattern, choices, rules, meaning; what each consumer derives from
it), the helpers that spell a setting's choices and a topic setting, and a :class:`TableRow`
of the README's variable table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Literal, get_args

from pydantic import Field

# --- enums --------------------------------------------------------------------------------------


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class DeliveryGuarantee(StrEnum):
    AT_LEAST_ONCE = "at-least-once"
    EXACTLY_ONCE = "exactly-once"


Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]
Acks = Literal["all", "1", "0"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["text", "json"]

# --- limits -------------------------------------------------------------------------------------

MAX_SIMULATION_MACHINES: Final = 10_000_000
"""Machines in one simulation (over all shards). Machine ids exist for 2**32 machines; this bound
catches a typo (an extra zero or three) before it asks a cluster for terabytes."""
MAX_SHARDS: Final = 1024
MAX_SENSORS: Final = 1000
MAX_INTERVAL_MS: Final = 86_400_000  # one day
MAX_EPISODE_CYCLES: Final = 1_000_000
MAX_PARTITIONS: Final = 100_000
MAX_SEED: Final = 2**64 - 1
MAX_COLUMN_NAME: Final = 256
MAX_COLUMN_LIST: Final = 65_536
MAX_SCENARIOS_TEXT: Final = 1_048_576
RATE_FAULT_NAMES: Final = ("dropout", "spike", "late", "out_of_order", "duplicate")
"""The data-quality faults QUALITY_FAULT_RATE may draw (``domain.scenarios.RATE_FAULTS``)."""
BUNDLED_SENSOR_COLUMNS: Final = 20
"""'Sensor <n>' columns of the bundled data/data_sensors.csv (a test reads the file)."""

# Kafka topic names: legal characters, and not the names Kafka refuses or keeps for itself.
TOPIC_PATTERN: Final = r"^[A-Za-z0-9._-]+$"
MAX_TOPIC_LENGTH: Final = 249
STATE_TOPIC_SUFFIX: Final = "-state"
"""The state topic's name is the data topic's with this suffix unless KAFKA_STATE_TOPIC is set,
so a data topic derives a legal state topic only up to ``MAX_TOPIC_LENGTH`` minus its length."""
SIMULATION_UID_PATTERN: Final = r"^[a-z0-9-]{1,64}$"
DEFAULT_SHUTDOWN_GRACE_SECONDS: Final = 30
MAX_SHUTDOWN_GRACE_SECONDS: Final = 3600
# host:port with a port of 1-65535; hosts are names, IPv4 addresses or bracketed IPv6 addresses.
HOST_PATTERN: Final = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([-A-Za-z0-9._]*[A-Za-z0-9])?)"
PORT_PATTERN: Final = (
    r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
)
SERVER_PATTERN: Final = f"^{HOST_PATTERN}:{PORT_PATTERN}$"
SERVERS_PATTERN: Final = f"^{HOST_PATTERN}:{PORT_PATTERN}(,{HOST_PATTERN}:{PORT_PATTERN})*$"


@dataclass(frozen=True, slots=True)
class Rule:
    """A check beyond bounds and pattern, as CEL (for the API server, ``self`` is the value) and
    as a Python predicate (for the producer), with the message both give."""

    cel: str
    check: Callable[[Any], bool]
    message: str


@dataclass(frozen=True, slots=True)
class Setting:
    """One producer setting (an environment variable)."""

    env: str
    default: Any
    description: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    pattern_message: str = ""
    choices: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    shown_default: str | None = None
    secret: bool = False
    option: str | None = None
    """The command-line option of ``sensorsim run`` when it is not the variable's name in
    lower case with dashes (``--bootstrap-servers`` for KAFKA_BOOTSTRAP_SERVERS)."""
    shapes_stream: bool = False
    """True when the setting changes what a machine emits or which process emits it (ownership,
    identity, model, schedule, failures, data, topics). The producer records these values as a
    segment of the simulation's configuration history; the operator hashes them to decide that
    a change must stop every old pod before a new one starts (docs/operator.md)."""

    @property
    def name(self) -> str:
        """The Python field name (the variable in lower case)."""
        return self.env.lower()

    @property
    def flag(self) -> str | None:
        """The command-line option that sets this variable (None: the environment only, for
        secrets, which a process listing would show)."""
        if self.secret:
            return None
        return self.option or "--" + self.env.lower().replace("_", "-")

    def bounds(self) -> dict[str, Any]:
        """The bounds that are set, as pydantic ``Field`` arguments (``ge``, ``le``, ...)."""
        bounds = {
            "ge": self.ge,
            "gt": self.gt,
            "le": self.le,
            "lt": self.lt,
            "min_length": self.min_length,
            "max_length": self.max_length,
        }
        return {key: value for key, value in bounds.items() if value is not None}

    def field(self) -> Any:
        """The pydantic ``Field`` of the producer's setting (patterns and rules are checked by
        :meth:`problem`, so their messages are the contract's own)."""
        return Field(self.default, description=self.description, **self.bounds())

    def validate(self, value: Any) -> Any:
        """``value`` if :meth:`problem` finds nothing, else ValueError (a pydantic validator)."""
        problem = self.problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` by this setting's pattern and rules (None = fine)."""
        if (
            self.pattern is not None
            and isinstance(value, str)
            and re.fullmatch(self.pattern, value) is None
        ):
            return self.pattern_message
        for rule in self.rules:
            if not rule.check(value):
                return rule.message
        return None

    def render(self, value: Any) -> str:
        """``value`` as this variable's text in a pod's environment."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, StrEnum):
            return value.value
        if isinstance(value, float):
            return repr(value)
        return str(value)

    def shown(self) -> str:
        """The default as the docs show it."""
        if self.shown_default is not None:
            return self.shown_default
        if self.default is None:
            return "unset"
        return self.render(self.default)


def choices_of(values: type[StrEnum] | Any) -> tuple[str, ...]:
    """The values of a ``StrEnum`` or a ``Literal`` type, as a setting's ``choices``."""
    if isinstance(values, type) and issubclass(values, StrEnum):
        return tuple(member.value for member in values)
    return tuple(str(value) for value in get_args(values))


TOPIC_RULES: Final = (
    Rule(
        cel="self != '.' && self != '..'",
        check=lambda value: value not in {".", ".."},
        message="'.' and '..' are not valid Kafka topic names",
    ),
    Rule(
        cel="!self.startsWith('__')",
        check=lambda value: not str(value).startswith("__"),
        message=(
            "topics starting with '__' are Kafka's internal topics (e.g. __consumer_offsets): "
            "choose another name"
        ),
    ),
)


def topic_setting(env: str, default: str | None, description: str, option: str) -> Setting:
    """A Kafka topic name: what Kafka accepts, less what the producer must not write to."""
    return Setting(
        env,
        default,
        description,
        min_length=1,
        max_length=MAX_TOPIC_LENGTH,
        pattern=TOPIC_PATTERN,
        pattern_message=f"must be 1-{MAX_TOPIC_LENGTH} characters of A-Z a-z 0-9 . _ -",
        rules=TOPIC_RULES,
        shapes_stream=True,
        option=option,
    )


@dataclass(frozen=True, slots=True)
class TableRow:
    variable: str
    default: str
    meaning: str = field(default="")

"""Connecting to the broker and saying clearly why it failed.

At start the sink makes its first client (which bootstraps: it asks the broker its API
version), creates the topic when asked to, waits for the topic's partitions and checks that the
topic can hold the stream. Every failure on the way ends as one ``BrokerError`` (exit code 3)
that names the cause and the setting to look at: an unreachable broker, rejected credentials
(kafka-python only logs those while it bootstraps, so they are picked up from its log), a
refused topic, a missing compression codec.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import Any

from kafka import KafkaProducer
from kafka import codec as kafka_codec
from kafka import errors as kafka_errors
from kafka.record import util as record_util

from producer.errors import BrokerError
from producer.kafka import client_internals
from producer.kafka.client_config import client_config
from producer.kafka.topic_rules import topic_problem
from producer.kafka.topics import TopicAdministration
from producer.runtime.stopping import StopFlag
from producer.settings import ProducerSettings

log = logging.getLogger(__name__)

ProducerFactory = Callable[..., Any]
"""Makes a client from ``KafkaProducer`` keyword arguments (``KafkaProducer`` itself)."""
AdminFactory = Callable[[], TopicAdministration]
"""Opens a connection to the cluster's administration; the caller closes it."""

_CODEC_PACKAGES = {"snappy": "python-snappy", "lz4": "lz4", "zstd": "zstandard"}
_CODEC_AVAILABLE = {
    "snappy": kafka_codec.has_snappy,
    "lz4": kafka_codec.has_lz4,
    "zstd": kafka_codec.has_zstd,
}


def crc32c_implementation() -> str:
    """Which CRC-32C kafka-python found: ``"crc32c"`` (the C package) or ``"python"``."""
    return "crc32c" if getattr(record_util, "crc32c_c", None) is not None else "python"


def check_codec(codec: str) -> None:
    """Refuse a compression codec whose Python package is not installed."""
    if codec in _CODEC_AVAILABLE and not _CODEC_AVAILABLE[codec]():
        raise BrokerError(
            f"KAFKA_COMPRESSION_TYPE={codec} needs the Python package "
            f"{_CODEC_PACKAGES[codec]!r}, which is not installed; install it or choose gzip "
            "or none"
        )


class ProducerClients:
    """Makes the sink's clients. The first one bootstraps; the next ones (replacements) reuse
    the API version it negotiated, so they need not bootstrap, which blocks."""

    def __init__(
        self,
        settings: ProducerSettings,
        factory: ProducerFactory | None = None,
        transactional_id: str | None = None,
    ):
        """``factory``: ``KafkaProducer`` unless given; ``transactional_id``: exactly-once."""
        self._settings = settings
        self._factory: ProducerFactory = factory or KafkaProducer
        self._api_version: tuple[int, ...] | None = None
        self._transactional_id = transactional_id

    def new(self) -> Any:
        config = client_config(self._settings)
        if self._transactional_id is not None:
            config["transactional_id"] = self._transactional_id
            config["transaction_timeout_ms"] = self._settings.transaction_timeout_ms
        if self._api_version is not None:
            config["api_version"] = self._api_version
        producer = self._factory(**config)
        if self._api_version is None:
            self._api_version = client_internals.api_version(producer)
        return producer


def connect(
    settings: ProducerSettings,
    clients: ProducerClients,
    open_admin: AdminFactory,
    *,
    stop: StopFlag,
    largest_batch: int,
) -> tuple[Any, set[int]]:
    """The first client and the topic's partitions, once the topic is known to be usable
    (created first if KAFKA_CREATE_TOPIC). Raises ``BrokerError`` with the diagnosis."""
    topic = settings.kafka_topic
    producer = None
    try:
        with _diagnosing(settings):
            producer = clients.new()
            if settings.kafka_create_topic:
                _create_topic(open_admin, settings)
            partitions = _initial_partitions(producer, settings, stop)
            with closing(open_admin()) as admin:
                facts = admin.facts(topic)
            problem = topic_problem(
                facts,
                largest_batch=largest_batch,
                allow_compacted=settings.kafka_allow_compacted_topic,
            )
            if problem:
                raise BrokerError(problem)
    except BrokerError:
        if producer is not None:
            client_internals.force_close(producer, timeout=1.0)
        raise
    return producer, partitions


def _create_topic(open_admin: AdminFactory, settings: ProducerSettings) -> None:
    topic, partitions = settings.kafka_topic, settings.kafka_topic_partitions
    with closing(open_admin()) as admin:
        created = admin.create(topic, partitions=partitions)
    if created:
        log.info("created topic %r with %d partitions", topic, partitions)
    else:
        log.info("topic %r already exists", topic)


def _initial_partitions(producer: Any, settings: ProducerSettings, stop: StopFlag) -> set[int]:
    """The topic's partitions, waiting up to KAFKA_CONNECT_TIMEOUT_MS for its metadata."""
    topic = settings.kafka_topic
    deadline = time.monotonic() + settings.kafka_connect_timeout_ms / 1000
    while True:
        try:
            partitions = producer.partitions_for(topic)
        except kafka_errors.KafkaTimeoutError:
            if time.monotonic() >= deadline or stop.is_set():
                raise
            continue
        if not partitions:
            raise BrokerError(
                f"topic {topic!r} has no partitions on {settings.kafka_bootstrap_servers}; "
                "create it or set KAFKA_CREATE_TOPIC=true"
            )
        return set(partitions)


class _AuthErrorSpy(logging.Handler):
    """Remembers authentication failures kafka-python only logs while it bootstraps."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.message = ""

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        lowered = text.lower()
        if "authenticat" in lowered or "sasl" in lowered:
            self.message = text


@contextmanager
def _diagnosing(settings: ProducerSettings) -> Iterator[None]:
    """Turn kafka-python's errors into one ``BrokerError`` naming the cause and the fix."""
    servers, topic = settings.kafka_bootstrap_servers, settings.kafka_topic
    spy = _AuthErrorSpy()
    kafka_logger = logging.getLogger("kafka")
    saved_level, saved_propagate = kafka_logger.level, kafka_logger.propagate
    kafka_logger.addHandler(spy)
    if kafka_logger.getEffectiveLevel() > logging.WARNING:
        # Listen for auth failures, but keep kafka-python's retry chatter off the console.
        kafka_logger.setLevel(logging.WARNING)
        kafka_logger.propagate = False
    try:
        yield
    except (kafka_errors.KafkaTimeoutError, kafka_errors.KafkaConnectionError) as exc:
        if spy.message:
            raise BrokerError(_auth_message(settings, spy.message)) from None
        raise BrokerError(
            f"cannot reach Kafka at {servers} within "
            f"{settings.kafka_connect_timeout_ms / 1000:g}s ({exc}); check "
            "KAFKA_BOOTSTRAP_SERVERS, that the broker is running and that its advertised "
            f"listener is reachable from here (KAFKA_SECURITY_PROTOCOL="
            f"{settings.kafka_security_protocol.value})"
        ) from None
    except kafka_errors.SaslAuthenticationFailedError as exc:
        raise BrokerError(_auth_message(settings, str(exc))) from None
    except kafka_errors.AuthorizationError as exc:
        raise BrokerError(
            f"Kafka at {servers} refused access to topic {topic!r} for user "
            f"{settings.sasl_credentials[0]!r} ({type(exc).__name__}); grant the user "
            "Describe and Write on the topic (and IdempotentWrite on the cluster with "
            "KAFKA_ACKS=all)"
        ) from None
    except kafka_errors.KafkaError as exc:
        raise BrokerError(f"Kafka at {servers}: {type(exc).__name__}: {exc}") from None
    finally:
        kafka_logger.removeHandler(spy)
        kafka_logger.setLevel(saved_level)
        kafka_logger.propagate = saved_propagate


def _auth_message(settings: ProducerSettings, detail: str) -> str:
    mechanism = settings.kafka_sasl_mechanism.value if settings.kafka_sasl_mechanism else "none"
    return (
        f"Kafka at {settings.kafka_bootstrap_servers} rejected the credentials (mechanism "
        f"{mechanism}, user {settings.sasl_credentials[0]!r}): {detail}; check "
        "KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM"
    )

"""kafka-python keyword arguments for these settings: the producer's, and the subset an admin
client or a consumer shares with it (address, identity, security, request timeout).

Every Kafka client of the process is configured here: the record stream's producer, the topic
administration, the delivery audit and the continuity state topic's producer and consumer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from producer.settings import ProducerSettings, SecurityProtocol

MAX_BLOCK_MS = 1000
"""kafka-python's ``max_block_ms``: how long one ``send()``/``partitions_for()`` may block for
metadata. Short, so that waits for metadata are loops that look at the stop flag."""

ADMIN_KEYS = (
    "bootstrap_servers",
    "client_id",
    "security_protocol",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
    "ssl_cafile",
    "ssl_certfile",
    "ssl_keyfile",
    "request_timeout_ms",
)
"""The producer settings an admin client (or a consumer) shares with the producer."""


def request_timeout_ms(settings: ProducerSettings) -> int:
    """kafka-python requires ``delivery_timeout_ms >= linger_ms + request_timeout_ms``: the
    request timeout is Kafka's default 30 s where that fits, else what is left (settings
    guarantee at least ``MIN_REQUEST_TIMEOUT_MS``)."""
    return min(30_000, settings.kafka_delivery_timeout_ms - settings.kafka_linger_ms)


def client_config(settings: ProducerSettings) -> dict[str, Any]:
    """kafka-python ``KafkaProducer`` keyword arguments for these settings."""
    acks_all = settings.kafka_acks == "all"
    config: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_list,
        "client_id": f"sensorsim-{settings.simulation_name}-{settings.shard_index}",
        "acks": "all" if acks_all else int(settings.kafka_acks),
        "enable_idempotence": acks_all,
        "linger_ms": settings.kafka_linger_ms,
        "batch_size": settings.kafka_batch_size,
        "compression_type": None
        if settings.kafka_compression_type == "none"
        else settings.kafka_compression_type,
        "delivery_timeout_ms": settings.kafka_delivery_timeout_ms,
        "request_timeout_ms": request_timeout_ms(settings),
        "max_block_ms": MAX_BLOCK_MS,
        "bootstrap_timeout_ms": settings.kafka_connect_timeout_ms,
        "reconnect_backoff_max_ms": 1000,
        "security_protocol": settings.kafka_security_protocol.value,
    }
    if settings.kafka_sasl_mechanism is not None:
        username, password = settings.sasl_credentials
        config["sasl_mechanism"] = settings.kafka_sasl_mechanism.value
        config["sasl_plain_username"] = username
        if password is not None:
            config["sasl_plain_password"] = password.get_secret_value()
    if settings.kafka_security_protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL):
        config["ssl_cafile"] = _path(settings.kafka_ssl_cafile)
        if settings.kafka_ssl_certfile is not None:  # TLS client authentication
            config["ssl_certfile"] = _path(settings.kafka_ssl_certfile)
            config["ssl_keyfile"] = _path(settings.kafka_ssl_keyfile)
    return config


def _path(path: Path | None) -> str | None:
    return None if path is None else str(path)


def admin_config(settings: ProducerSettings) -> dict[str, Any]:
    """``KafkaAdminClient`` keyword arguments: the producer's connection, nothing else."""
    config = client_config(settings)
    return {key: config[key] for key in ADMIN_KEYS if key in config}


def consumer_config(settings: ProducerSettings) -> dict[str, Any]:
    """The connection part of a ``KafkaConsumer``'s keyword arguments (the caller adds how it
    reads): the admin client's, with the producer's reconnect backoff."""
    config = client_config(settings)
    return {
        **admin_config(settings),
        "reconnect_backoff_max_ms": config["reconnect_backoff_max_ms"],
    }

"""Publish records to Kafka with kafka-python: keyed, with headers, idempotent, batched.

* key = machine id, so a machine's readings stay in order on one partition;
* headers: ``seq`` (per-machine sequence number = cycle), ``simulation`` (SIMULATION_NAME),
  and ``failure_type`` while the machine is failing;
* ``acks=all`` with ``enable_idempotence``: broker-side de-duplication of retries, so an
  outage shorter than KAFKA_DELIVERY_TIMEOUT_MS neither loses nor duplicates records;
* no flush per record: batching by KAFKA_LINGER_MS / KAFKA_BATCH_SIZE, delivery results
  counted by callbacks; the cycle loop waits when more than KAFKA_MAX_PENDING_RECORDS are
  unacknowledged (kafka-python has no bounded buffer of its own), it never drops.

Throughput (docs/benchmarks.md): kafka-python checksums every record batch with CRC-32C;
without the C package ``crc32c`` (a dependency of sensorsim for this reason) it does so in pure
Python, byte by byte (~0.2 ms per 540-byte record) in its I/O thread, holding the GIL, which
alone capped the sink at ~5,000 records/s. ``start()`` logs which implementation is in use and
warns when it is the slow one. Records also carry an explicit partition, cached per machine
with kafka-python's murmur2 (the Java client's choice), which spares a pure-Python murmur2 per
record.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from producer.errors import BrokerError
from producer.settings import ProducerSettings, SecurityProtocol
from producer.sinks import DeliveryStats, OutgoingCycle

log = logging.getLogger(__name__)

_LOGGED_ERRORS = 10
"""Log the first delivery errors in full, then one summary line per ``_ERROR_LOG_EVERY``."""
_ERROR_LOG_EVERY = 10_000
_BACKPRESSURE_CHECK = 256


def crc32c_implementation() -> str:
    """Which CRC-32C kafka-python found: ``"crc32c"`` (the C package) or ``"python"``."""
    from kafka.record import util as record_util  # noqa: PLC0415

    return "crc32c" if getattr(record_util, "crc32c_c", None) is not None else "python"


def machine_partitions(keys: list[bytes], partitions: Iterable[int]) -> list[int]:
    """The partition kafka-python's and Java's default partitioner pick for each key:
    ``partitions_sorted[(murmur2(key) & 0x7fffffff) % count]``."""
    from kafka.partitioner.default import murmur2  # noqa: PLC0415

    ordered = sorted(partitions)
    return [ordered[(murmur2(key) & 0x7FFFFFFF) % len(ordered)] for key in keys]


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
        "request_timeout_ms": min(30_000, settings.kafka_delivery_timeout_ms),
        "max_block_ms": settings.kafka_connect_timeout_ms,
        "bootstrap_timeout_ms": settings.kafka_connect_timeout_ms,
        "reconnect_backoff_max_ms": 1000,
        "security_protocol": settings.kafka_security_protocol.value,
    }
    if settings.kafka_sasl_mechanism is not None:
        config["sasl_mechanism"] = settings.kafka_sasl_mechanism.value
        config["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            config["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_security_protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL):
        config["ssl_cafile"] = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    return config


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


class KafkaSink:
    """Sends each cycle's records; counts deliveries and errors from callbacks."""

    def __init__(
        self,
        settings: ProducerSettings,
        machine_ids: list[str],
        failure_types: tuple[str, ...],
        *,
        client_factory: Any = None,
        stop: threading.Event | None = None,
    ) -> None:
        """``stop``: once set (SIGTERM), the sink no longer waits for room in its buffer, so the
        cycle in progress is handed over at once and shutdown can flush without delay."""
        self._settings = settings
        self._stop = stop or threading.Event()
        self._topic = settings.kafka_topic
        self._keys = [m.encode("ascii") for m in machine_ids]
        self._simulation = settings.simulation_name.encode("utf-8")
        self._failure_types = [t.encode("utf-8") for t in failure_types]
        self._client_factory = client_factory
        self._producer: Any = None
        self._lock = threading.Lock()
        self.stats = DeliveryStats()
        self.ready = threading.Event()
        self._give_up_after = settings.kafka_delivery_timeout_ms / 1000
        self._partition_set: frozenset[int] = frozenset()
        self._partitions: list[int | None] = [None] * len(self._keys)
        self.crc32c = "python"

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        settings = self._settings
        servers = settings.kafka_bootstrap_servers
        if settings.kafka_compression_type in ("snappy", "lz4", "zstd"):
            self._check_codec(settings.kafka_compression_type)
        from kafka import KafkaProducer  # noqa: PLC0415  (edge module: the only Kafka import)
        from kafka import errors as kafka_errors  # noqa: PLC0415

        self.crc32c = crc32c_implementation()
        if self.crc32c == "python":
            log.warning(
                "kafka-python checksums batches in pure Python (package crc32c missing): "
                "expect ~5,000 records/s at most; `pip install crc32c` to lift it"
            )
        factory = self._client_factory or KafkaProducer
        spy = _AuthErrorSpy()
        kafka_logger = logging.getLogger("kafka")
        saved_level, saved_propagate = kafka_logger.level, kafka_logger.propagate
        kafka_logger.addHandler(spy)
        if kafka_logger.getEffectiveLevel() > logging.WARNING:
            # Listen for auth failures, but keep kafka-python's retry chatter off the console.
            kafka_logger.setLevel(logging.WARNING)
            kafka_logger.propagate = False
        try:
            self._producer = factory(**client_config(settings))
            if settings.kafka_create_topic:
                self._create_topic()
            partitions = self._producer.partitions_for(self._topic)
        except (kafka_errors.KafkaTimeoutError, kafka_errors.KafkaConnectionError) as exc:
            self._close_quietly()
            if spy.message:
                raise BrokerError(self._auth_message(spy.message)) from None
            raise BrokerError(
                f"cannot reach Kafka at {servers} within "
                f"{settings.kafka_connect_timeout_ms / 1000:g}s ({exc}); check "
                "KAFKA_BOOTSTRAP_SERVERS, that the broker is running and that its advertised "
                f"listener is reachable from here (KAFKA_SECURITY_PROTOCOL="
                f"{settings.kafka_security_protocol.value})"
            ) from None
        except (
            kafka_errors.SaslAuthenticationFailedError,
            kafka_errors.AuthorizationError,
        ) as exc:
            self._close_quietly()
            raise BrokerError(self._auth_message(str(exc))) from None
        except kafka_errors.KafkaError as exc:
            self._close_quietly()
            raise BrokerError(f"Kafka at {servers}: {type(exc).__name__}: {exc}") from None
        finally:
            kafka_logger.removeHandler(spy)
            kafka_logger.setLevel(saved_level)
            kafka_logger.propagate = saved_propagate
        if not partitions:
            self._close_quietly()
            raise BrokerError(
                f"topic {self._topic!r} has no partitions on {servers}; create it or set "
                "KAFKA_CREATE_TOPIC=true"
            )
        self._use_partitions(partitions)
        log.info(
            "connected to Kafka at %s; topic %r has %d partitions (CRC-32C: %s)",
            servers,
            self._topic,
            len(partitions),
            self.crc32c,
        )
        self.ready.set()

    def _auth_message(self, detail: str) -> str:
        s = self._settings
        mechanism = s.kafka_sasl_mechanism.value if s.kafka_sasl_mechanism else "none"
        return (
            f"Kafka at {s.kafka_bootstrap_servers} rejected the credentials (mechanism "
            f"{mechanism}, user {s.kafka_sasl_username!r}): {detail}; check "
            "KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM"
        )

    @staticmethod
    def _check_codec(codec: str) -> None:
        from kafka import codec as kafka_codec  # noqa: PLC0415

        available = {
            "snappy": kafka_codec.has_snappy,
            "lz4": kafka_codec.has_lz4,
            "zstd": kafka_codec.has_zstd,
        }[codec]()
        if not available:
            package = {"snappy": "python-snappy", "lz4": "lz4", "zstd": "zstandard"}[codec]
            raise BrokerError(
                f"KAFKA_COMPRESSION_TYPE={codec} needs the Python package {package!r}, which is "
                "not installed; install it or choose gzip or none"
            )

    def _create_topic(self) -> None:
        from kafka import KafkaAdminClient  # noqa: PLC0415
        from kafka.errors import TopicAlreadyExistsError  # noqa: PLC0415

        config = client_config(self._settings)
        admin_config = {
            key: config[key]
            for key in (
                "bootstrap_servers",
                "client_id",
                "security_protocol",
                "sasl_mechanism",
                "sasl_plain_username",
                "sasl_plain_password",
                "ssl_cafile",
                "request_timeout_ms",
            )
            if key in config
        }
        admin = KafkaAdminClient(**admin_config)
        try:
            admin.create_topics(
                {self._topic: {"num_partitions": self._settings.kafka_topic_partitions}},
                wait_for_metadata=True,
            )
            log.info(
                "created topic %r with %d partitions",
                self._topic,
                self._settings.kafka_topic_partitions,
            )
        except TopicAlreadyExistsError:
            log.info("topic %r already exists", self._topic)
        finally:
            admin.close()

    def _close_quietly(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=1)
            except Exception:
                log.debug("error closing the Kafka producer", exc_info=True)
            self._producer = None

    # -- sending ---------------------------------------------------------------------------
    def _on_delivered(self, _metadata: object) -> None:
        with self._lock:
            self.stats.delivered += 1

    def _on_error(self, exc: BaseException) -> None:
        with self._lock:
            self.stats.failed += 1
            failed = self.stats.failed
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
        if failed <= _LOGGED_ERRORS:
            log.error("delivery failed (%d so far): %s", failed, self.stats.last_error)
        elif failed % _ERROR_LOG_EVERY == 0:
            log.error("%d deliveries failed so far; last: %s", failed, self.stats.last_error)

    def _wait_for_room(self) -> None:
        """Block while too many records are unacknowledged (backpressure, never drop), unless
        the process is stopping: then the flush at shutdown does the waiting, within its
        bounded time."""
        limit = self._settings.kafka_max_pending_records
        if self.stats.pending <= limit:
            return
        started = time.monotonic()
        warned = False
        while self.stats.pending > limit // 2 and not self._stop.is_set():
            time.sleep(0.005)
            if not warned and time.monotonic() - started > 1.0:
                log.warning(
                    "%d records wait for acknowledgement; the cycle loop is paused until the "
                    "broker catches up",
                    self.stats.pending,
                )
                warned = True

    def _use_partitions(self, partitions: set[int] | frozenset[int]) -> None:
        """Cache each machine's partition for this partition set (recomputed if it changes)."""
        if partitions and partitions != self._partition_set:
            self._partition_set = frozenset(partitions)
            self._partitions = list(machine_partitions(self._keys, partitions))

    def _refresh_partitions(self, producer: Any) -> None:
        # kafka-python answers from its cached metadata (refreshed every metadata_max_age_ms);
        # if the topic gained partitions, keys move as they would with the default partitioner.
        try:
            partitions = producer.partitions_for(self._topic)
        except Exception:  # no metadata now (broker away): keep the last known assignment
            return
        if partitions:
            self._use_partitions(partitions)

    def send_cycle(self, cycle: OutgoingCycle) -> None:
        from kafka.errors import KafkaTimeoutError  # noqa: PLC0415

        producer = self._producer
        if producer is None:
            raise RuntimeError("KafkaSink.start() was not called")
        self._refresh_partitions(producer)
        partition_of = self._partitions
        seq = str(cycle.seq).encode("ascii")
        healthy = [("seq", seq), ("simulation", self._simulation)]
        if cycle.skipped:  # continuity: this machine's previous record is seq - 1 - skipped
            healthy.append(("skipped_cycles", str(cycle.skipped).encode("ascii")))
        failing_headers = [[*healthy, ("failure_type", name)] for name in self._failure_types]
        on_ok, on_error = self._on_delivered, self._on_error
        topic, keys, send = self._topic, self._keys, producer.send
        first = cycle.first_row
        for i, body in enumerate(cycle.bodies):
            if i % _BACKPRESSURE_CHECK == 0:
                self._wait_for_room()
            headers = failing_headers[cycle.failure_type[i]] if cycle.failing[i] else healthy
            future = None
            waited_since = time.monotonic()
            while future is None:
                try:
                    future = send(
                        topic,
                        value=body,
                        key=keys[first + i],
                        headers=headers,
                        partition=partition_of[first + i],
                    )
                except KafkaTimeoutError as exc:  # no metadata: the broker is away
                    if time.monotonic() - waited_since > self._give_up_after:
                        break
                    log.warning("waiting for Kafka metadata of %r: %s", topic, exc)
            self.stats.sent += 1  # only this thread writes ``sent``
            if future is None:
                on_error(KafkaTimeoutError(f"no metadata for {topic!r}; record dropped"))
                continue
            future.add_callback(on_ok)
            future.add_errback(on_error)

    def flush(self, timeout: float) -> bool:
        """Wait for every record; True only if all were acknowledged."""
        from kafka.errors import KafkaTimeoutError  # noqa: PLC0415

        if self._producer is None:
            return True
        try:
            self._producer.flush(timeout=timeout)
        except KafkaTimeoutError:
            return False
        deadline = time.monotonic() + 1.0
        while self.stats.pending and time.monotonic() < deadline:  # callbacks still running
            time.sleep(0.001)
        return self.stats.pending == 0 and self.stats.failed == 0

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None

"""Publish records to Kafka with kafka-python: keyed, with headers, idempotent, batched.

* key = machine id, so a machine's readings stay in order on one partition;
* headers: ``seq`` (per-machine sequence number = cycle), ``simulation`` (SIMULATION_NAME),
  and ``failure_type`` while the machine is failing;
* ``acks=all`` with ``enable_idempotence``: broker-side de-duplication of retries, so an
  outage shorter than KAFKA_DELIVERY_TIMEOUT_MS neither loses nor duplicates records;
* no flush per record: batching by KAFKA_LINGER_MS / KAFKA_BATCH_SIZE, delivery results
  counted by callbacks; the cycle loop waits when more than KAFKA_MAX_PENDING_RECORDS are
  unacknowledged (kafka-python has no bounded buffer of its own), it never drops.

Faults (issue 10). kafka-python's idempotent producer can end up unable to deliver for good
(batches expired with requests in flight against a hung broker, a fatal sequence error); the
sink then *replaces the client*: the old one is force-closed (its unacknowledged records fail
and are counted), a new one (a new producer id) takes over. It does so when records have been
waiting without a single acknowledgement for longer than the delivery timeout plus a margin
(kafka-python itself would have expired them by then), or at once after a fatal idempotence
error. Each client's records are counted apart (a ``_Generation``), so ``sent = delivered +
failed + pending`` holds exactly across replacements. No wait of the sink is unbounded: every
one ends at the stop flag (SIGTERM or DURATION_SECONDS) and beats the loop's heartbeat.

Throughput (docs/benchmarks.md): kafka-python checksums every record batch with CRC-32C;
without the C package ``crc32c`` (a dependency of sensorsim for this reason) it does so in pure
Python, byte by byte (~0.2 ms per 540-byte record) in its I/O thread, holding the GIL, which
alone capped the sink at ~5,000 records/s. ``start()`` logs which implementation is in use and
warns when it is the slow one. Records also carry an explicit partition, cached per machine
with kafka-python's murmur2 (the Java client's choice), which spares a pure-Python murmur2 per
record.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from producer.errors import BrokerError
from producer.kafka import client_internals as kafka_client
from producer.kafka.batches import BatchWriter, header_block
from producer.kafka.delivery_audit import records_written
from producer.kafka.topic_rules import TopicFacts, topic_problem
from producer.runtime.stopping import StopFlag
from producer.settings import ProducerSettings, SecurityProtocol
from producer.sinks.protocol import DeliveryStats, OutgoingCycle

log = logging.getLogger(__name__)

_LOGGED_ERRORS = 10
"""Log the first delivery errors in full, then one summary line per ``_ERROR_LOG_EVERY``."""
_ERROR_LOG_EVERY = 10_000
_MAX_BLOCK_MS = 1000
"""kafka-python's ``max_block_ms``: how long one ``send()``/``partitions_for()`` may block for
metadata. Short, so that waits for metadata are loops that look at the stop flag."""
STALL_MARGIN_SECONDS = 10.0
"""Beyond the delivery timeout, how long records may wait without any acknowledgement before
the client is replaced (kafka-python expires them at the delivery timeout; the margin lets it)."""
READY_STALL_SECONDS = 10.0
"""Not ready when records have waited this long without any acknowledgement."""
_CLOSE_OLD_CLIENT_SECONDS = 2.0
_RECONCILE_AFTER_SECONDS = 3.0
"""How long the new client delivers before the broker is asked what the old one wrote."""

# Errors after which this client's idempotent state cannot recover by itself.
_REPLACE_CLIENT_ERRORS = frozenset(
    {
        "OutOfOrderSequenceNumberError",
        "UnknownProducerIdError",
        "InvalidProducerEpochError",
        "InvalidProducerIdMappingError",
        "ProducerFencedError",
    }
)
# Errors that say the target itself cannot take the records: stop with exit code 3.
_UNUSABLE_TARGET_ERRORS = frozenset(
    {
        "TopicAuthorizationFailedError",
        "ClusterAuthorizationFailedError",
        "MessageSizeTooLargeError",
        "RecordListTooLargeError",
        "InvalidTopicError",
    }
)


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
        "max_block_ms": _MAX_BLOCK_MS,
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


ADMIN_KEYS = (
    "bootstrap_servers",
    "client_id",
    "security_protocol",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
    "ssl_cafile",
    "request_timeout_ms",
)
"""The producer settings an admin client (or a consumer) shares with the producer."""


def admin_config(settings: ProducerSettings) -> dict[str, Any]:
    config = client_config(settings)
    return {key: config[key] for key in ADMIN_KEYS if key in config}


def largest_batch_bytes(
    max_body: int, simulation: bytes, failure_types: Iterable[bytes], max_seq_digits: int = 20
) -> int:
    """Bytes of a record batch that holds the largest record of the simulation alone."""
    from kafka.record.default_records import DefaultRecordBatchBuilder  # noqa: PLC0415

    longest_type = max(failure_types, key=len, default=b"")
    headers = [("seq", b"9" * max_seq_digits), ("simulation", simulation)]
    if longest_type:
        headers.append(("failure_type", longest_type))
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(b"k" * 8, b"x" * max_body, headers))


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


class _Generation:
    """The records handed to one client instance, counted apart so that replacing the client
    keeps the totals exact: once retired, what it had not resolved counts as failed and its
    late callbacks are ignored."""

    __slots__ = (
        "delivered",
        "failed",
        "first_ack",
        "number",
        "producers",
        "retired",
        "sent",
        "sink",
        "started",
    )

    def __init__(self, sink: KafkaSink, number: int) -> None:
        self.sink = sink
        self.number = number
        self.started = time.monotonic()
        self.sent = 0
        self.delivered = 0
        self.failed = 0
        self.retired = False
        self.first_ack = 0.0
        self.producers: set[tuple[int, int]] = set()
        """(producer id, epoch) pairs the client used, for ``reconciliation``."""

    def on_batch(self, records: int, error: BaseException | None) -> None:
        """A batch's outcome, from kafka-python's I/O thread."""
        sink = self.sink
        with sink._lock:
            if self.retired:
                return
            if error is None:
                self.delivered += records
                sink.stats.delivered += records
                sink.last_ack = time.monotonic()
                if not self.first_ack:
                    self.first_ack = sink.last_ack
                return
            self.failed += records
        sink._count_failure(error, records)

    @property
    def unresolved(self) -> int:
        return self.sent - self.delivered - self.failed


class KafkaSink:
    """Sends each cycle's records; counts deliveries and errors from callbacks."""

    def __init__(
        self,
        settings: ProducerSettings,
        machine_ids: list[str],
        failure_types: tuple[str, ...],
        *,
        client_factory: Any = None,
        stop: StopFlag | None = None,
        heartbeat: Callable[[], None] | None = None,
        max_body_bytes: int | None = None,
    ) -> None:
        """``stop``: once set (SIGTERM, end of DURATION_SECONDS), the sink no longer waits for
        room in its buffer or for metadata, so the cycle in progress is handed over at once and
        shutdown can flush without delay. ``heartbeat`` is called while the sink waits.
        ``max_body_bytes`` bounds a body, for the check against the topic's max.message.bytes.
        """
        self._settings = settings
        self._stop = stop or StopFlag()
        self._heartbeat = heartbeat or (lambda: None)
        self._topic = settings.kafka_topic
        self._keys = [m.encode("ascii") for m in machine_ids]
        self._simulation = settings.simulation_name.encode("utf-8")
        self._failure_types = [t.encode("utf-8") for t in failure_types]
        self._max_body = max_body_bytes
        self._client_factory = client_factory
        self._producer: Any = None
        self._lock = threading.Lock()
        self.stats = DeliveryStats()
        self.ready = threading.Event()
        self.replacements = 0
        self.last_ack = time.monotonic()
        self._idle_since = time.monotonic()
        self._generation = _Generation(self, 0)
        self._unreconciled: list[_Generation] = []
        self._failed_batches = 0
        self._writer: BatchWriter | None = None
        self._by_partition: list[tuple[int, list[int]]] = []
        self._reconciler: threading.Thread | None = None
        self._replace_reason = ""
        self._unusable: str | None = None
        self._give_up_after = settings.kafka_delivery_timeout_ms / 1000
        self._stall_limit = self._give_up_after + STALL_MARGIN_SECONDS
        self._metadata_missing_since: float | None = None
        self._partition_set: frozenset[int] = frozenset()
        self._partitions: list[int] = []
        self._api_version: tuple[int, ...] | None = None
        self.crc32c = "python"

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        settings = self._settings
        servers = settings.kafka_bootstrap_servers
        if settings.kafka_compression_type in ("snappy", "lz4", "zstd"):
            self._check_codec(settings.kafka_compression_type)
        from kafka import errors as kafka_errors  # noqa: PLC0415

        self.crc32c = crc32c_implementation()
        if self.crc32c == "python":
            log.warning(
                "kafka-python checksums batches in pure Python (package crc32c missing): "
                "expect ~5,000 records/s at most; `pip install crc32c` to lift it"
            )
        spy = _AuthErrorSpy()
        kafka_logger = logging.getLogger("kafka")
        saved_level, saved_propagate = kafka_logger.level, kafka_logger.propagate
        kafka_logger.addHandler(spy)
        if kafka_logger.getEffectiveLevel() > logging.WARNING:
            # Listen for auth failures, but keep kafka-python's retry chatter off the console.
            kafka_logger.setLevel(logging.WARNING)
            kafka_logger.propagate = False
        try:
            self._producer = self._new_client()
            self._api_version = kafka_client.api_version(self._producer)
            self._writer = BatchWriter(self._producer, self._topic, self._keys)
            if settings.kafka_create_topic:
                self._create_topic()
            partitions = self._initial_partitions()
            self._check_topic()
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
        except kafka_errors.SaslAuthenticationFailedError as exc:
            self._close_quietly()
            raise BrokerError(self._auth_message(str(exc))) from None
        except kafka_errors.AuthorizationError as exc:
            self._close_quietly()
            raise BrokerError(
                f"Kafka at {servers} refused access to topic {self._topic!r} for user "
                f"{settings.kafka_sasl_username!r} ({type(exc).__name__}); grant the user "
                "Describe and Write on the topic (and IdempotentWrite on the cluster with "
                "KAFKA_ACKS=all)"
            ) from None
        except kafka_errors.KafkaError as exc:
            self._close_quietly()
            raise BrokerError(f"Kafka at {servers}: {type(exc).__name__}: {exc}") from None
        except BrokerError:
            self._close_quietly()
            raise
        finally:
            kafka_logger.removeHandler(spy)
            kafka_logger.setLevel(saved_level)
            kafka_logger.propagate = saved_propagate
        self._use_partitions(partitions)
        log.info(
            "connected to Kafka at %s; topic %r has %d partitions (CRC-32C: %s)",
            servers,
            self._topic,
            len(partitions),
            self.crc32c,
        )
        self.last_ack = self._idle_since = time.monotonic()
        self.ready.set()

    def _new_client(self) -> Any:
        from kafka import KafkaProducer  # noqa: PLC0415  (edge module: the only Kafka import)

        config = client_config(self._settings)
        if self._api_version is not None:
            # Known from the first client: a replacement need not bootstrap (which blocks).
            config["api_version"] = self._api_version
        factory = self._client_factory or KafkaProducer
        return factory(**config)

    def _initial_partitions(self) -> set[int]:
        """The topic's partitions, waiting up to KAFKA_CONNECT_TIMEOUT_MS for its metadata."""
        from kafka.errors import KafkaTimeoutError  # noqa: PLC0415

        deadline = time.monotonic() + self._settings.kafka_connect_timeout_ms / 1000
        while True:
            try:
                partitions = self._producer.partitions_for(self._topic)
            except KafkaTimeoutError:
                if time.monotonic() >= deadline or self._stop.is_set():
                    raise
                continue
            if not partitions:
                raise BrokerError(
                    f"topic {self._topic!r} has no partitions on "
                    f"{self._settings.kafka_bootstrap_servers}; create it or set "
                    "KAFKA_CREATE_TOPIC=true"
                )
            return set(partitions)

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

    def _admin(self) -> Any:
        from kafka import KafkaAdminClient  # noqa: PLC0415

        return KafkaAdminClient(**admin_config(self._settings))

    def _create_topic(self) -> None:
        from kafka.errors import TopicAlreadyExistsError  # noqa: PLC0415

        admin = self._admin()
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

    def _check_topic(self) -> None:
        """Refuse internal, compacted (unless allowed) and too-small topics (exit code 3)."""
        if self._client_factory is not None:
            return  # a test's fake client: there is no broker to ask
        problem = topic_problem(
            self._topic_facts(),
            largest_batch=largest_batch_bytes(
                self._max_body or 0, self._simulation, self._failure_types
            ),
            allow_compacted=self._settings.kafka_allow_compacted_topic,
        )
        if problem:
            raise BrokerError(problem)

    def _topic_facts(self) -> TopicFacts:
        from kafka.admin import ConfigResource, ConfigResourceType  # noqa: PLC0415
        from kafka.errors import KafkaError  # noqa: PLC0415

        admin = self._admin()
        try:
            described = admin.describe_topics([self._topic])
            internal = any(bool(t.get("is_internal")) for t in described)
            try:
                configs = admin.describe_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, self._topic)], config_filter="all"
                )
            except KafkaError as exc:  # e.g. no DescribeConfigs ACL: the checks need not block
                log.warning(
                    "cannot read the configuration of topic %r (%s): not checking its "
                    "cleanup.policy and max.message.bytes",
                    self._topic,
                    type(exc).__name__,
                )
                return TopicFacts(self._topic, internal)
        finally:
            admin.close()
        values = {
            key: entry.get("value") if isinstance(entry, dict) else entry
            for key, entry in configs.get("topic", {}).get(self._topic, {}).items()
        }
        max_bytes = values.get("max.message.bytes")
        return TopicFacts(
            self._topic,
            internal,
            cleanup_policy=values.get("cleanup.policy"),
            max_message_bytes=int(max_bytes) if max_bytes is not None else None,
        )

    def _close_quietly(self) -> None:
        if self._producer is not None:
            kafka_client.force_close(self._producer, timeout=1.0)
            self._producer = None

    # -- counting --------------------------------------------------------------------------
    def _count_failure(self, exc: BaseException, records: int) -> None:
        name = type(exc).__name__
        with self._lock:
            before = self.stats.failed
            self.stats.failed += records
            failed = self.stats.failed
            self.stats.last_error = f"{name}: {exc}"
            self._failed_batches += 1
            batches = self._failed_batches
        if name in _REPLACE_CLIENT_ERRORS:
            self._replace_reason = f"fatal idempotence error {name}"
        elif name in _UNUSABLE_TARGET_ERRORS and self._unusable is None:
            self._unusable = (
                f"Kafka refused records for topic {self._topic!r}: {name}: {exc}; check the "
                "topic's max.message.bytes and the user's ACLs (Write on the topic)"
            )
        if batches <= _LOGGED_ERRORS:
            log.error(
                "delivery of %d records failed (%d so far): %s",
                records,
                failed,
                self.stats.last_error,
            )
        elif before // _ERROR_LOG_EVERY != failed // _ERROR_LOG_EVERY:
            log.error("%d deliveries failed so far; last: %s", failed, self.stats.last_error)

    def _count_unsent(self, count: int, reason: str) -> None:
        """Records that never reached the client (no metadata): sent and failed at once."""
        if count <= 0:
            return
        with self._lock:
            self.stats.sent += count
            self.stats.failed += count
            self.stats.last_error = reason
            failed = self.stats.failed
        log.error("%d records not sent (%d failed so far): %s", count, failed, reason)

    def _retire(self, generation: _Generation) -> int:
        """Stop counting ``generation``'s callbacks; what it left unresolved counts as failed."""
        with self._lock:
            if generation.retired:
                return 0
            generation.retired = True
            lost = generation.unresolved
            generation.failed += lost
            self.stats.failed += lost
        if generation.producers and generation.failed:
            self._unreconciled.append(generation)
        return lost

    # -- reconciliation (see producer/kafka/delivery_audit.py) -----------------------------------
    def _note_producer_id(self) -> None:
        pair = kafka_client.producer_id_and_epoch(self._producer)
        if pair is not None:
            self._generation.producers.add(pair)

    def _maybe_reconcile(self) -> None:
        """Once the current client has been delivering for a while (the broker is back and has
        worked through what it received before), ask it what the retired clients wrote."""
        if not self._unreconciled or self._reconciler is not None:
            return
        first_ack = self._generation.first_ack
        if not first_ack or time.monotonic() - first_ack < _RECONCILE_AFTER_SECONDS:
            return
        generations, self._unreconciled = self._unreconciled, []
        self._reconciler = threading.Thread(
            target=self._reconcile, args=(generations,), name="reconcile", daemon=True
        )
        self._reconciler.start()

    def _reconcile(self, generations: list[_Generation]) -> None:
        try:
            admin = self._admin()
        except Exception as exc:
            log.warning("cannot ask the broker what the replaced client wrote: %s", exc)
            return
        try:
            for generation in generations:
                written = records_written(
                    admin, self._topic, self._partition_set, generation.producers
                )
                if written is None:
                    continue
                with self._lock:
                    found = max(0, min(written - generation.delivered, generation.failed))
                    generation.failed -= found
                    generation.delivered += found
                    self.stats.failed -= found
                    self.stats.delivered += found
                log.warning(
                    "the broker holds %d records of replaced client %d that had counted as "
                    "failed (written after it gave up on them): now counted delivered",
                    found,
                    generation.number,
                )
        finally:
            admin.close()

    # -- supervision -----------------------------------------------------------------------
    def delivering(self) -> bool:
        """Readiness: started, and nothing has waited long without an acknowledgement."""
        if not self.ready.is_set() or self._unusable is not None:
            return False
        if self.stats.pending == 0:
            return True
        return time.monotonic() - max(self.last_ack, self._idle_since) < READY_STALL_SECONDS

    @property
    def accepting(self) -> bool:
        """Always: an unusable topic raises ``BrokerError`` instead."""
        return True

    def _supervise(self) -> None:
        """Replace the client when it cannot make progress; stop on an unusable target."""
        if self._unusable is not None:
            raise BrokerError(self._unusable)
        self._maybe_reconcile()
        now = time.monotonic()
        if self.stats.pending == 0:
            self._idle_since = now
            if not self._replace_reason:
                return
        if self._stop.is_set():
            return  # shutting down: the flush decides, within its budget
        reason = self._replace_reason
        waited = now - max(self.last_ack, self._idle_since, self._generation.started)
        if not reason and waited > self._stall_limit:
            reason = (
                f"{self.stats.pending} records waited {waited:.0f} s without an acknowledgement"
            )
        if not reason and kafka_client.has_fatal_error(self._producer):
            reason = "the client's idempotent state is fatally broken"
        if reason:
            self._replace_client(reason)

    def _replace_client(self, reason: str) -> None:
        old, generation = self._producer, self._generation
        self._note_producer_id()
        log.warning(
            "replacing the Kafka client (%s): records it has not delivered count as failed",
            reason,
        )
        kafka_client.force_close(old, timeout=_CLOSE_OLD_CLIENT_SECONDS)
        lost = self._retire(generation)
        self._replace_reason = ""
        self._producer = self._new_client()
        self._writer = BatchWriter(self._producer, self._topic, self._keys)
        self._generation = _Generation(self, generation.number + 1)
        self.replacements += 1
        log.warning(
            "Kafka client replaced (%d so far): %d records of the old client failed (%d delivered, "
            "%d failed in all)",
            self.replacements,
            generation.failed + lost,
            self.stats.delivered,
            self.stats.failed,
        )

    # -- sending ---------------------------------------------------------------------------
    def _wait_for_room(self) -> None:
        """Block while too many records are unacknowledged (backpressure, never drop), unless
        the process is stopping: then the flush at shutdown does the waiting, within its
        bounded time. The client is supervised meanwhile, so the wait cannot last forever."""
        limit = self._settings.kafka_max_pending_records
        if self.stats.pending <= limit:
            return
        started = time.monotonic()
        last_check = started
        warned = False
        while self.stats.pending > limit // 2 and not self._stop.is_set():
            self._stop.wait(0.005)
            now = time.monotonic()
            if now - last_check >= 1.0:
                last_check = now
                self._heartbeat()
                self._supervise()
            if not warned and now - started > 1.0:
                log.warning(
                    "%d records wait for acknowledgement; the cycle loop is paused until the "
                    "broker catches up",
                    self.stats.pending,
                )
                warned = True

    def _use_partitions(self, partitions: set[int] | frozenset[int]) -> None:
        """Cache each machine's partition for this partition set (recomputed if it changes):
        the machines of each partition, in machine order."""
        if partitions and partitions != self._partition_set:
            self._partition_set = frozenset(partitions)
            self._partitions = list(machine_partitions(self._keys, partitions))
            by_partition: dict[int, list[int]] = {}
            for machine, partition in enumerate(self._partitions):
                by_partition.setdefault(partition, []).append(machine)
            self._by_partition = sorted(by_partition.items())

    def _await_metadata(self) -> bool:
        """Wait (at most ~1 s per attempt, looking at the stop flag) until the client knows the
        topic's partitions; False once they have been missing for the delivery timeout, or
        when stopping without them. kafka-python answers from its cache when it has the topic
        (no wait); a replaced client or a deleted topic has to ask the broker."""
        from kafka.errors import KafkaError, KafkaTimeoutError  # noqa: PLC0415

        while True:
            try:
                partitions = self._producer.partitions_for(self._topic)
            except KafkaTimeoutError:
                partitions = None
            except KafkaError as exc:  # authorization and the like: the target is unusable
                raise BrokerError(
                    f"Kafka refused metadata of topic {self._topic!r}: {type(exc).__name__}: "
                    f"{exc}; check the topic and the user's ACLs"
                ) from None
            now = time.monotonic()
            if partitions:
                self._use_partitions(partitions)
                if self._metadata_missing_since is not None:
                    log.info("metadata of topic %r is back", self._topic)
                self._metadata_missing_since = None
                return True
            if self._metadata_missing_since is None:
                self._metadata_missing_since = now
                log.warning("waiting for Kafka metadata of topic %r", self._topic)
            self._heartbeat()
            if self._stop.is_set() or now - self._metadata_missing_since > self._give_up_after:
                return False

    def send_cycle(self, cycle: OutgoingCycle) -> None:
        """Hand the cycle's records to the client as whole batches, partition by partition
        (each machine's records in cycle order on its partition)."""
        if self._producer is None:
            raise RuntimeError("KafkaSink.start() was not called")
        self._supervise()
        bodies = cycle.bodies
        total = len(bodies)
        if not total:
            return
        if not self._await_metadata():
            self._count_unsent(
                total,
                f"no metadata for topic {self._topic!r} for {self._give_up_after:g} s "
                "(broker unreachable)",
            )
            return
        seq = str(cycle.seq).encode("ascii")
        healthy = [("seq", seq), ("simulation", self._simulation)]
        if cycle.skipped:  # continuity: this machine's previous record is seq - 1 - skipped
            healthy.append(("skipped_cycles", str(cycle.skipped).encode("ascii")))
        healthy_block = header_block(healthy)
        failing_blocks = [
            header_block([*healthy, ("failure_type", t)]) for t in self._failure_types
        ]
        headers = [
            failing_blocks[kind] if failing else healthy_block
            for failing, kind in zip(cycle.failing, cycle.failure_type, strict=True)
        ]
        first = cycle.first_row  # continuity: the bodies may start at a later row of the shard
        if first:  # the batch writer indexes bodies and headers by the machine's row
            bodies = [b""] * first + list(bodies)
            headers = [b""] * first + headers
        timestamp_ms = int(time.time() * 1000)
        stop = first + total
        partial = first > 0 or stop < len(self._keys)
        for partition, machines in self._by_partition:
            chosen = [i for i in machines if first <= i < stop] if partial else machines
            if not chosen:
                continue
            self._wait_for_room()
            writer, generation = self._writer, self._generation
            assert writer is not None
            # Counted before the batches are queued, so that an acknowledgement arriving at
            # once never finds more delivered than sent (only this thread writes ``sent``).
            count = len(chosen)
            generation.sent += count
            self.stats.sent += count
            try:
                writer.write(
                    partition, chosen, bodies, headers, generation.on_batch,
                    timestamp_ms=timestamp_ms,
                )  # fmt: skip
            except Exception as exc:  # the client was closed under us: these never left
                generation.on_batch(count, exc)
                raise
        assert self._writer is not None
        self._writer.wakeup()
        self._note_producer_id()

    def wait_delivered(self, timeout: float) -> bool:
        """Send what is buffered and wait, within ``timeout`` seconds and without closing the
        client, until every record sent so far is acknowledged (what continuity needs before a
        checkpoint). The client is supervised meanwhile, as in the backpressure wait, so a
        stuck client is replaced during the wait too. True only if none is pending and none
        ever failed."""
        from kafka.errors import KafkaError  # noqa: PLC0415

        deadline = time.monotonic() + timeout
        while self.stats.pending and not self._stop.is_set():
            left = deadline - time.monotonic()
            producer = self._producer
            if left <= 0 or producer is None:
                break
            # a timeout, or a client being replaced: judged by the counters
            with contextlib.suppress(KafkaError):
                producer.flush(timeout=min(1.0, left))
            self._heartbeat()
            self._supervise()
        return self.stats.pending == 0 and self.stats.failed == 0

    def flush(self, timeout: float) -> bool:
        """Send what is buffered and close the client, within ``timeout`` seconds; what is not
        acknowledged by then counts as failed. True only if every record was acknowledged."""
        deadline = time.monotonic() + timeout
        if self._producer is None:
            return self.stats.pending == 0 and self.stats.failed == 0
        self._note_producer_id()
        producer, self._producer = self._producer, None
        kafka_client.close_gracefully(producer, timeout)
        self._retire(self._generation)  # the sender thread has stopped: nothing more will come
        self._finish_reconciliation(deadline)
        return self.stats.pending == 0 and self.stats.failed == 0

    def _finish_reconciliation(self, deadline: float) -> None:
        """At shutdown: settle what retired clients wrote, if the broker answers in time."""
        if self._reconciler is not None:
            self._reconciler.join(max(0.0, deadline - time.monotonic()))
        pending = [g for g in self._unreconciled if g is not self._generation]
        if not pending or not self._generation.first_ack:
            return  # nothing to settle, or the broker never came back
        self._unreconciled = []
        worker = threading.Thread(target=self._reconcile, args=(pending,), daemon=True)
        worker.start()
        worker.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Release the client at once (``flush`` already closed it on a normal shutdown)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            kafka_client.force_close(producer, timeout=1.0)
            self._retire(self._generation)

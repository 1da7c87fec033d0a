"""The state topic: a compacted Kafka topic holding each machine's latest checkpoint.

Everything goes to partition 0 of the topic (it is created with one partition): the
simulation records must be totally ordered for "the lowest offset wins" to mean the same
thing to every producer, and a single partition is read back fastest. The topic is created
with ``cleanup.policy=compact`` when missing; an existing topic with any other policy is
refused, since ``delete`` would drop the simulation record and idle machines' checkpoints after
``retention.ms``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError

from producer.continuity.codec import (
    SegmentRecord,
    SimulationRecord,
    encode_segment,
    encode_simulation,
    segment_key,
    simulation_key,
)
from producer.continuity.snapshot import SnapshotReader, StateSnapshot
from producer.errors import BrokerError
from producer.kafka.client_config import client_config, consumer_config
from producer.kafka.topics import TopicAdmin
from producer.settings import ProducerSettings

log = logging.getLogger(__name__)

STATE_PARTITION = 0
STATE_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    # Small segments and an eager cleaner keep the topic near one record per machine, so a
    # restart reads little; the active segment is never compacted.
    "segment.bytes": str(16 * 1024 * 1024),
    "segment.ms": str(10 * 60 * 1000),
    "min.cleanable.dirty.ratio": "0.1",
}
_STATE_LINGER_MS = 50


class StateTopic:
    """Reads and writes one simulation's records in the state topic."""

    def __init__(self, settings: ProducerSettings, topic: str) -> None:
        self._settings = settings
        self.topic = topic
        self.prefix = settings.state_prefix
        config = client_config(settings)
        self._producer_config = {
            **config,
            "client_id": f"{config['client_id']}-state",
            # A checkpoint is one burst of a record per machine: few, large requests.
            "linger_ms": _STATE_LINGER_MS,
            "batch_size": 512 * 1024,
            # kafka-python requires delivery >= linger + request timeout, with this linger too
            "request_timeout_ms": min(
                config["request_timeout_ms"],
                settings.kafka_delivery_timeout_ms - _STATE_LINGER_MS,
            ),
            "compression_type": None,
        }
        self._producer: Any = None
        self._lock = threading.Lock()
        self.written = 0
        self.failed = 0
        self.last_error = ""

    # -- topic -------------------------------------------------------------------------------
    def ensure(self) -> None:
        """Create the topic (compacted) if missing; refuse one that is not compacted."""
        admin = self._call(lambda: TopicAdmin.connect(self._settings))
        try:
            with admin:
                if admin.create(self.topic, partitions=1, configs=STATE_TOPIC_CONFIG):
                    log.info("created state topic %r (cleanup.policy=compact)", self.topic)
                    return
                policy = self._cleanup_policy(admin)
        except KafkaError as exc:
            raise BrokerError(
                f"state topic {self.topic!r}: cannot create or describe it ({type(exc).__name__}: "
                f"{exc}); check the broker's ACLs or set KAFKA_STATE_TOPIC"
            ) from None
        if policy != "compact":
            raise BrokerError(
                f"state topic {self.topic!r} has cleanup.policy={policy or 'unreadable'}, not "
                "compact: its "
                "checkpoints would be deleted after retention.ms. Set it with kafka-configs.sh "
                f"--alter --entity-type topics --entity-name {self.topic} --add-config "
                "cleanup.policy=compact, or choose another KAFKA_STATE_TOPIC"
            )
        log.info("state topic %r exists (cleanup.policy=compact)", self.topic)

    def _cleanup_policy(self, admin: TopicAdmin) -> str | None:
        """The existing topic's cleanup.policy; a topic another shard has just created may not
        be described yet (no value), so ask again until KAFKA_CONNECT_TIMEOUT_MS."""
        deadline = time.monotonic() + self._settings.kafka_connect_timeout_ms / 1000
        policy = None
        while policy is None and time.monotonic() < deadline:
            policy = admin.config_values(self.topic, ["cleanup.policy"]).get("cleanup.policy")
            if policy is None:
                time.sleep(0.2)
        return policy

    def _call(self, make: Callable[[], Any]) -> Any:
        try:
            return make()
        except KafkaError as exc:
            raise BrokerError(
                f"state topic {self.topic!r}: cannot reach Kafka at "
                f"{self._settings.kafka_bootstrap_servers} ({type(exc).__name__}: {exc})"
            ) from None

    # -- reading -----------------------------------------------------------------------------
    def read(self, machine_ids: set[str]) -> StateSnapshot:
        """Every simulation and segment record of this simulation and the latest checkpoint of
        each of ``machine_ids`` (under its prefix and, with SIMULATION_UID, under its name
        alone), reading the topic from its beginning to its current end."""
        committed = self._settings.exactly_once
        consumer = self._call(
            lambda: KafkaConsumer(
                **consumer_config(self._settings),
                enable_auto_commit=False,
                group_id=None,
                max_partition_fetch_bytes=8 * 1024 * 1024,
                isolation_level="read_committed" if committed else "read_uncommitted",
            )
        )
        reader = SnapshotReader.of(self._settings, self.topic, machine_ids)
        try:
            partition = TopicPartition(self.topic, STATE_PARTITION)
            consumer.assign([partition])
            consumer.seek_to_beginning(partition)
            # Exactly-once: never an aborted checkpoint, and every transaction open now is
            # waited for (committed, aborted, or timed out after transaction.timeout.ms), so a
            # checkpoint committed after one that is still open is not missed.
            end = self._high_watermark(partition) if committed else None
            if end is None:
                end = consumer.end_offsets([partition])[partition]
            deadline = time.monotonic() + self._settings.kafka_connect_timeout_ms / 1000 + 120
            if committed:
                deadline += self._settings.transaction_timeout_ms / 1000
            while consumer.position(partition) < end:
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"state topic {self.topic!r}: could not read it to offset {end} in time"
                    )
                for records in consumer.poll(timeout_ms=1000).values():
                    for record in records:
                        reader.take(record.key, record.value, record.offset)
        finally:
            consumer.close()
        return reader.snapshot()

    def _high_watermark(self, partition: TopicPartition) -> int:
        """The partition's end, uncommitted records included."""
        consumer = self._call(
            lambda: KafkaConsumer(**consumer_config(self._settings), enable_auto_commit=False)
        )
        try:
            return int(consumer.end_offsets([partition])[partition])
        finally:
            consumer.close()

    # -- writing -----------------------------------------------------------------------------
    def _ensure_producer(self) -> Any:
        if self._producer is None:
            self._producer = self._call(lambda: KafkaProducer(**self._producer_config))
        return self._producer

    def propose(self, record: SimulationRecord, proposal: str) -> None:
        """Write a proposal of the simulation's epoch and seed and wait for it."""
        self._send_now(simulation_key(self.prefix, proposal), encode_simulation(record),
                       "the simulation record")  # fmt: skip

    def propose_segment(self, record: SegmentRecord, proposal: str) -> None:
        """Write a proposal of the next segment of the configuration history and wait for it."""
        self._send_now(segment_key(self.prefix, record.index, proposal), encode_segment(record),
                       f"segment {record.index} of the configuration history")  # fmt: skip

    def _send_now(self, key: bytes, value: bytes, what: str) -> None:
        producer = self._ensure_producer()
        future = producer.send(self.topic, key=key, value=value, partition=STATE_PARTITION)
        try:
            future.get(timeout=self._settings.kafka_connect_timeout_ms / 1000)
        except Exception as exc:
            raise BrokerError(f"state topic {self.topic!r}: cannot write {what} ({exc})") from None

    def write(self, records: list[tuple[bytes, bytes]]) -> None:
        """Hand checkpoint records to the producer (acknowledged in the background)."""
        producer = self._ensure_producer()
        for key, value in records:
            future = producer.send(self.topic, key=key, value=value, partition=STATE_PARTITION)
            future.add_callback(self._on_written)
            future.add_errback(self._on_error)

    def _on_written(self, _metadata: object) -> None:
        with self._lock:
            self.written += 1

    def _on_error(self, exc: BaseException) -> None:
        with self._lock:
            self.failed += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
        if self.failed == 1:
            log.error("checkpoint write failed: %s", self.last_error)

    def flush(self, timeout: float) -> bool:
        try:
            if self._producer is not None:
                self._producer.flush(timeout=timeout)
        except KafkaTimeoutError:
            return False
        return True

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None

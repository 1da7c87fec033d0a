"""The Kafka sink: publishes each cycle's records with kafka-python, keyed, with headers,
idempotent, batched.

* ``acks=all`` with ``enable_idempotence``: broker-side de-duplication of retries, so an
  outage shorter than KAFKA_DELIVERY_TIMEOUT_MS neither loses nor duplicates records;
* no flush per record: batching by KAFKA_LINGER_MS / KAFKA_BATCH_SIZE, delivery results
  counted by callbacks, ``sent = delivered + failed + pending`` exactly, also across client
  replacements.

The sink puts its parts together: ``connection`` (first client, diagnosis, topic checks),
``supervision`` (the current client, its replacement, the delivery ledger and audit) and
``sending`` (metadata, partitions, headers, backpressure, batches).

Throughput: kafka-python checksums every record batch with CRC-32C; without the C package
``crc32c`` (a dependency of sensorsim for this reason) it does so in pure Python, byte by byte,
in its I/O thread, holding the GIL, which caps the sink's rate. ``start()`` logs which
implementation is in use and warns when it is the slow one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from kafka.errors import KafkaError

from producer.errors import BrokerError, IntervalAbortedError
from producer.kafka import client_internals
from producer.kafka.batches import largest_batch_bytes
from producer.kafka.connection import (
    AdminFactory,
    ProducerClients,
    ProducerFactory,
    check_codec,
    connect,
    crc32c_implementation,
)
from producer.kafka.delivery_ledger import Clock
from producer.kafka.sending import CycleSender, PartitionCache
from producer.kafka.supervision import ClientSupervisor
from producer.kafka.topics import TopicAdmin
from producer.kafka.transactions import Transactions, transactional_id
from producer.runtime.stopping import StopFlag
from producer.settings import ProducerSettings
from producer.sinks.protocol import DeliveryStats, OutgoingCycle

log = logging.getLogger(__name__)


class KafkaSink:
    """Sends each cycle's records; counts deliveries and errors from callbacks."""

    def __init__(
        self,
        settings: ProducerSettings,
        machine_ids: list[str],
        failure_types: tuple[str, ...],
        *,
        stop: StopFlag | None = None,
        heartbeat: Callable[[], None] | None = None,
        max_body_bytes: int | None = None,
        client_factory: ProducerFactory | None = None,
        open_admin: AdminFactory | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        """``stop``: once set (SIGTERM, end of DURATION_SECONDS), the sink no longer waits for
        room in its buffer or for metadata, so the cycle in progress is handed over at once and
        shutdown can flush without delay. ``heartbeat`` is called while the sink waits.
        ``max_body_bytes`` bounds a body, for the check against the topic's max.message.bytes.
        ``client_factory`` makes clients (``KafkaProducer``), ``open_admin`` opens the topic
        administration (``TopicAdmin.connect``), ``clock`` times the stall and readiness
        limits (``time.monotonic``)."""
        self._settings = settings
        self._stop = stop or StopFlag()
        self._heartbeat = heartbeat or (lambda: None)
        self._topic = settings.kafka_topic
        keys = [m.encode("ascii") for m in machine_ids]
        self._largest_batch = largest_batch_bytes(
            max_body_bytes or 0,
            settings.simulation_name.encode("utf-8"),
            [t.encode("utf-8") for t in failure_types],
        )
        self.transactions = (
            Transactions(
                transactional_id(settings.state_topic, settings.state_prefix, machine_ids),
                init_timeout=settings.kafka_connect_timeout_ms / 1000,
                stop=self._stop,
                heartbeat=self._heartbeat,
                transaction_timeout=settings.transaction_timeout_ms / 1000,
            )
            if settings.exactly_once
            else None
        )
        """Exactly-once: the transactions of the data producer (None: at-least-once)."""
        self._clients = ProducerClients(
            settings,
            client_factory,
            None if self.transactions is None else self.transactions.transactional,
        )
        self._open_admin = open_admin or (lambda: TopicAdmin.connect(settings))
        self._clock = clock
        self._partitions = PartitionCache(keys)
        self._supervisor = ClientSupervisor(
            self._clients,
            self._open_admin,
            topic=self._topic,
            keys=keys,
            delivery_timeout=settings.kafka_delivery_timeout_ms / 1000,
            partitions=lambda: self._partitions.partitions,
            stop=self._stop,
            clock=clock,
            transactions=self.transactions,
        )
        self._sender = CycleSender(
            self._supervisor,
            self._partitions,
            topic=self._topic,
            machines=len(keys),
            simulation=settings.simulation_name.encode("utf-8"),
            failure_types=[t.encode("utf-8") for t in failure_types],
            max_pending=settings.kafka_max_pending_records,
            delivery_timeout=settings.kafka_delivery_timeout_ms / 1000,
            stop=self._stop,
            heartbeat=self._heartbeat,
        )
        self.stats: DeliveryStats = self._supervisor.ledger.stats
        self.ready = threading.Event()
        self.crc32c = "python"

    @property
    def replacements(self) -> int:
        """How many times the client was replaced."""
        return self._supervisor.replacements

    def start(self) -> None:
        """Connect, check the topic, and get ready to send (``BrokerError`` if unusable)."""
        settings = self._settings
        check_codec(settings.kafka_compression_type)
        self.crc32c = crc32c_implementation()
        if self.crc32c == "python":
            log.warning(
                "kafka-python checksums batches in pure Python (package crc32c missing): "
                "expect ~5,000 records/s at most; `pip install crc32c` to lift it"
            )
        producer, partitions = connect(
            settings,
            self._clients,
            self._open_admin,
            stop=self._stop,
            largest_batch=self._largest_batch,
        )
        if self.transactions is not None:
            try:
                self.transactions.open(producer)
            except BrokerError:
                client_internals.force_close(producer, timeout=1.0)
                raise
        self._supervisor.take(producer)
        self._partitions.use(partitions)
        log.info(
            "connected to Kafka at %s; topic %r has %d partitions (CRC-32C: %s)",
            settings.kafka_bootstrap_servers,
            self._topic,
            len(partitions),
            self.crc32c,
        )
        self.ready.set()

    def delivering(self) -> bool:
        """Readiness: started, and nothing has waited long without an acknowledgement."""
        return self.ready.is_set() and self._supervisor.delivering()

    @property
    def accepting(self) -> bool:
        """Always: an unusable topic raises ``BrokerError`` instead."""
        return True

    def send_cycle(self, cycle: OutgoingCycle) -> None:
        """Hand the cycle's records to the client as whole batches, partition by partition
        (each machine's records in cycle order on its partition)."""
        if self._supervisor.producer is None:
            raise RuntimeError("KafkaSink.start() was not called")
        if self.transactions is None:
            self._sender.send(cycle)
            return
        try:
            self._sender.send(cycle)
        except KafkaError as exc:  # the transaction failed: abort it, replay the interval
            failure = self.transactions.failure(self._supervisor.producer, exc)
            if isinstance(failure, IntervalAbortedError):
                self._recover(str(failure))
            raise failure from None

    def commit(
        self, topic: str, partition: int, records: list[tuple[bytes, bytes]], timeout: float
    ) -> None:
        """Exactly-once: commit the interval's records with ``records`` (its checkpoint, to
        ``topic``'s ``partition``) within ``timeout`` seconds. Raises ``IntervalAbortedError``
        (a new transaction has begun: replay from the last committed checkpoint) or
        ``TransactionFencedError``."""
        transactions = self.transactions
        assert transactions is not None, "commit() is for DELIVERY_GUARANTEE=exactly-once"
        self._supervisor.supervise()
        try:
            transactions.commit(self._supervisor.producer, topic, partition, records, timeout)
        except IntervalAbortedError as exc:
            self._recover(str(exc))
            raise

    def _recover(self, reason: str) -> None:
        """Abort the failed transaction and begin another; replace the client if need be."""
        assert self.transactions is not None
        log.warning("exactly-once: aborting the transaction in progress (%s)", reason)
        if not self.transactions.abort(self._supervisor.producer):
            self._supervisor.replace(f"its transaction could not be aborted: {reason}")

    def wait_delivered(self, timeout: float) -> bool:
        """Send what is buffered and wait, within ``timeout`` seconds and without closing the
        client, until every record sent so far is acknowledged (what continuity needs before a
        checkpoint). The client is supervised meanwhile, as in the backpressure wait, so a
        stuck client is replaced during the wait too. True only if none is pending and none
        ever failed."""
        deadline = time.monotonic() + timeout
        while self.stats.pending and not self._stop.is_set():
            left = deadline - time.monotonic()
            producer = self._supervisor.producer
            if left <= 0 or producer is None:
                break
            # a timeout, or a client being replaced: judged by the counters
            with contextlib.suppress(KafkaError):
                producer.flush(timeout=min(1.0, left))
            self._heartbeat()
            self._supervisor.supervise()
        return self._all_delivered()

    def flush(self, timeout: float) -> bool:
        """Send what is buffered and close the client, within ``timeout`` seconds; what is not
        acknowledged by then counts as failed. True only if every record was acknowledged.
        Exactly-once: the client stays open for the final commit (``close`` closes it)."""
        if self.transactions is not None:
            return self.wait_delivered(timeout)
        self._supervisor.close_gracefully(timeout)
        return self._all_delivered()

    def close(self) -> None:
        """Release the client at once (``flush`` already closed it on a normal shutdown).
        Exactly-once: what was not committed is aborted first (a restart replays it)."""
        producer = self._supervisor.producer
        if self.transactions is not None and producer is not None:
            with contextlib.suppress(Exception):
                self.transactions.abort(producer)
        self._supervisor.close()

    def _all_delivered(self) -> bool:
        return self.stats.pending == 0 and self.stats.failed == 0

"""Supervising the sink's client and replacing it when it cannot deliver any more.

kafka-python's idempotent producer can end up unable to deliver for good (batches expired with
requests in flight against a hung broker, a fatal sequence error). The supervisor then
*replaces the client*: the old one is force-closed (its unacknowledged records fail and are
counted), a new one (a new producer id) takes over. It does so when records have been waiting
without a single acknowledgement for longer than the delivery timeout plus a margin
(kafka-python itself would have expired them by then), or at once after a fatal idempotence
error. Records a replaced client gave up on may still have been written: the delivery audit
asks the broker later. A target that refuses the records (authorization, size) stops the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from producer.errors import BrokerError, IntervalAbortedError
from producer.kafka import client_internals
from producer.kafka.batches import BatchWriter
from producer.kafka.connection import AdminFactory, ProducerClients
from producer.kafka.delivery_audit import DeliveryAudit
from producer.kafka.delivery_ledger import ClientGeneration, Clock, DeliveryLedger
from producer.kafka.transactions import Transactions, is_fatal
from producer.runtime.stopping import StopFlag

log = logging.getLogger(__name__)

STALL_MARGIN_SECONDS = 10.0
"""Beyond the delivery timeout, how long records may wait without any acknowledgement before
the client is replaced (kafka-python expires them at the delivery timeout; the margin lets it)."""
READY_STALL_SECONDS = 10.0
"""Not ready when records have waited this long without any acknowledgement."""
_CLOSE_OLD_CLIENT_SECONDS = 2.0

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


class ClientSupervisor:
    """Owns the current client (and its batch writer), the generations' ledger and the
    delivery audit; decides when the client is replaced and when the target is unusable."""

    def __init__(
        self,
        clients: ProducerClients,
        open_admin: AdminFactory,
        *,
        topic: str,
        keys: Sequence[bytes],
        delivery_timeout: float,
        partitions: Callable[[], frozenset[int]],
        stop: StopFlag,
        clock: Clock,
        transactions: Transactions | None = None,
    ) -> None:
        """``delivery_timeout``: seconds (KAFKA_DELIVERY_TIMEOUT_MS); ``partitions``: the
        topic's partitions as last seen, for the audit; ``transactions``: exactly-once (a new
        client opens its transactions, and replacing one ends the interval)."""
        self._transactions = transactions
        self._fatal: BaseException | None = None
        self._clients = clients
        self._topic = topic
        self._keys = keys
        self._partitions = partitions
        self._stop = stop
        self._clock = clock
        self._stall_limit = delivery_timeout + STALL_MARGIN_SECONDS
        self.ledger = DeliveryLedger(clock, on_error=self._note_error)
        self._audit = DeliveryAudit(topic, open_admin, self.ledger, clock)
        self.producer: Any = None
        self.writer: BatchWriter | None = None
        self.generation = self.ledger.new_generation(0)
        self.replacements = 0
        self._idle_since = clock()
        self._replace_reason = ""
        self._unusable: str | None = None

    def take(self, producer: Any) -> None:
        """Supervise ``producer``, the first client (connected and checked)."""
        self.producer = producer
        self.writer = BatchWriter(producer, self._topic, self._keys)
        self.ledger.reset_last_ack()
        self._idle_since = self.ledger.last_ack

    def delivering(self) -> bool:
        """Nothing has waited long without an acknowledgement, and the target is usable."""
        if self._unusable is not None:
            return False
        if self.ledger.stats.pending == 0:
            return True
        waited = self._clock() - max(self.ledger.last_ack, self._idle_since)
        return waited < READY_STALL_SECONDS

    def supervise(self) -> None:
        """Replace the client when it cannot make progress; raise ``BrokerError`` when the
        target refused the records. Called from the cycle loop's thread only."""
        if self._unusable is not None:
            raise BrokerError(self._unusable)
        if self._fatal is not None and self._transactions is not None:
            failure = self._transactions.failure(self.producer, self._fatal)
            if isinstance(failure, IntervalAbortedError):  # the broker's abort: take over
                self._fatal = None
                self._replace(str(failure))
            raise failure
        self._audit.maybe_start(self.generation, self._partitions())
        now = self._clock()
        pending = self.ledger.stats.pending
        if pending == 0:
            self._idle_since = now
            if not self._replace_reason:
                return
        if self._stop.is_set():
            return  # shutting down: the flush decides, within its budget
        reason = self._replace_reason
        waited = now - max(self.ledger.last_ack, self._idle_since, self.generation.started)
        if not reason and waited > self._stall_limit:
            reason = f"{pending} records waited {waited:.0f} s without an acknowledgement"
        if not reason and client_internals.has_fatal_error(self.producer):
            reason = "the client's idempotent state is fatally broken"
        if reason:
            self._replace(reason)
            if self._transactions is not None:  # the interval's transaction went with it
                raise IntervalAbortedError(f"Kafka client replaced ({reason})")

    def replace(self, reason: str) -> None:
        """Replace the client now (exactly-once: when its transaction cannot be aborted)."""
        self._replace(reason)

    def note_producer_id(self) -> None:
        """Remember the (producer id, epoch) the current client uses, for the audit."""
        pair = client_internals.producer_id_and_epoch(self.producer)
        if pair is not None:
            self.generation.producers.add(pair)

    def close_gracefully(self, timeout: float) -> None:
        """Send what is buffered and close the client within ``timeout`` seconds; what is not
        acknowledged by then counts as failed. Settles the audit within the same time."""
        deadline = self._clock() + timeout
        if self.producer is None:
            return
        self.note_producer_id()
        producer, self.producer = self.producer, None
        client_internals.close_gracefully(producer, timeout)
        self._retire(self.generation)  # the sender thread has stopped: nothing more will come
        self._audit.finish(self.generation, self._partitions(), deadline)

    def close(self) -> None:
        """Release the client at once; what it has not delivered counts as failed."""
        producer, self.producer = self.producer, None
        if producer is not None:
            client_internals.force_close(producer, timeout=1.0)
            self._retire(self.generation)

    def _note_error(self, error: BaseException) -> None:
        """A failed batch's error (kafka-python's I/O thread): remember whether it calls for a
        new client or makes the target unusable; ``supervise`` acts on it."""
        name = type(error).__name__
        if self._transactions is not None and is_fatal(error):
            self._fatal = error  # fenced: another producer owns these machines now
        elif name in _REPLACE_CLIENT_ERRORS:
            self._replace_reason = f"fatal idempotence error {name}"
        elif name in _UNUSABLE_TARGET_ERRORS and self._unusable is None:
            self._unusable = (
                f"Kafka refused records for topic {self._topic!r}: {name}: {error}; check the "
                "topic's max.message.bytes and the user's ACLs (Write on the topic)"
            )

    def _retire(self, generation: ClientGeneration) -> int:
        if generation.retired:  # only this thread retires generations
            return 0
        lost = self.ledger.retire(generation)
        self._audit.add(generation)
        return lost

    def _replace(self, reason: str) -> None:
        old, generation = self.producer, self.generation
        self.note_producer_id()
        log.warning(
            "replacing the Kafka client (%s): records it has not delivered count as failed",
            reason,
        )
        client_internals.force_close(old, timeout=_CLOSE_OLD_CLIENT_SECONDS)
        lost = self._retire(generation)
        self._replace_reason = ""
        self.producer = self._clients.new()
        if self._transactions is not None:  # fences the old client, aborting its transaction
            self._transactions.open(self.producer, patient=True)
        self.writer = BatchWriter(self.producer, self._topic, self._keys)
        self.generation = self.ledger.new_generation(generation.number + 1)
        self.replacements += 1
        stats = self.ledger.stats
        log.warning(
            "Kafka client replaced (%d so far): %d records of the old client failed (%d delivered, "
            "%d failed in all)",
            self.replacements,
            generation.failed + lost,
            stats.delivered,
            stats.failed,
        )

"""How many records a replaced Kafka client really wrote, asked of the broker afterwards.

When a broker hangs with produce requests in flight, the client gives up on them (delivery
timeout, or the sink force-closes it) and they count as failed; but the requests sit in the
broker's socket buffer and are written when it resumes. The client cannot know. The broker
can: an idempotent producer's records carry (producer id, epoch, sequence), sequences count
from 0 per partition and the broker accepts them only without gaps, so DescribeProducers'
``last_sequence + 1`` on each partition is exactly how many records that producer id wrote
there. Summed over the producer ids a client used, minus what it saw acknowledged, that is
how many of its "failed" records are in fact in the topic.

Not countable (``None``): a client whose epoch changed under the same producer id (KIP-360
bump: sequences restart, the broker reports only the latest epoch), a broker that refuses
DescribeProducers (it needs Read on the topic, Kafka >= 2.8), or one that does not answer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from contextlib import closing
from typing import Any

from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from producer.kafka.delivery_ledger import ClientGeneration, Clock, DeliveryLedger
from producer.kafka.topics import TopicAdministration

log = logging.getLogger(__name__)

AUDIT_AFTER_SECONDS = 3.0
"""How long the new client delivers before the broker is asked what the old one wrote."""


def records_written(
    admin: Any, topic: str, partitions: Iterable[int], producers: set[tuple[int, int]]
) -> int | None:
    """Records the broker holds from these (producer id, epoch) pairs on ``topic``."""
    if len({pid for pid, _ in producers}) != len(producers):
        return None  # an epoch bump under one producer id restarted its sequences
    try:
        states = admin.describe_producers([TopicPartition(topic, p) for p in partitions])
    except (KafkaError, OSError) as exc:
        log.warning("cannot ask the broker what the replaced client wrote: %s", exc)
        return None
    total = 0
    for state in states.values():
        for producer in state.active_producers:
            if (producer.producer_id, producer.producer_epoch) in producers:
                total += int(producer.last_sequence) + 1
    return total


class DeliveryAudit:
    """Settles the counts of retired clients with what the broker holds, in a thread of its
    own, once the current client has been delivering for a while (the broker is back and has
    worked through what it received before)."""

    def __init__(
        self,
        topic: str,
        open_admin: Callable[[], TopicAdministration],
        ledger: DeliveryLedger,
        clock: Clock,
    ) -> None:
        self._topic = topic
        self._open_admin = open_admin
        self._ledger = ledger
        self._clock = clock
        self._waiting: list[ClientGeneration] = []
        self._worker: threading.Thread | None = None

    def add(self, generation: ClientGeneration) -> None:
        """A retired generation; audited if some of its records failed and it had a producer
        id to ask about."""
        if generation.producers and generation.failed:
            self._waiting.append(generation)

    def maybe_start(self, current: ClientGeneration, partitions: frozenset[int]) -> None:
        """Start the audit once ``current`` has delivered for ``AUDIT_AFTER_SECONDS`` (one
        audit at a time, at most one per run)."""
        if not self._waiting or self._worker is not None:
            return
        first_ack = current.first_ack
        if not first_ack or self._clock() - first_ack < AUDIT_AFTER_SECONDS:
            return
        generations, self._waiting = self._waiting, []
        self._worker = threading.Thread(
            target=self._audit, args=(generations, partitions), name="reconcile", daemon=True
        )
        self._worker.start()

    def finish(
        self, current: ClientGeneration, partitions: frozenset[int], deadline: float
    ) -> None:
        """At shutdown: settle what retired clients wrote, if the broker answers by
        ``deadline`` (on the ledger's clock)."""
        if self._worker is not None:
            self._worker.join(max(0.0, deadline - self._clock()))
        pending = [g for g in self._waiting if g is not current]
        if not pending or not current.first_ack:
            return  # nothing to settle, or the broker never came back
        self._waiting = []
        worker = threading.Thread(target=self._audit, args=(pending, partitions), daemon=True)
        worker.start()
        worker.join(max(0.0, deadline - self._clock()))

    def _audit(self, generations: list[ClientGeneration], partitions: frozenset[int]) -> None:
        try:
            admin = self._open_admin()
        except Exception as exc:
            log.warning("cannot ask the broker what the replaced client wrote: %s", exc)
            return
        with closing(admin):
            for generation in generations:
                written = records_written(admin, self._topic, partitions, generation.producers)
                if written is None:
                    continue
                found = self._ledger.credit_written(generation, written)
                log.warning(
                    "the broker holds %d records of replaced client %d that had counted as "
                    "failed (written after it gave up on them): now counted delivered",
                    found,
                    generation.number,
                )

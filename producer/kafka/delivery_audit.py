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
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)


def records_written(
    admin: Any, topic: str, partitions: Iterable[int], producers: set[tuple[int, int]]
) -> int | None:
    """Records the broker holds from these (producer id, epoch) pairs on ``topic``."""
    from kafka.errors import KafkaError  # noqa: PLC0415
    from kafka.structs import TopicPartition  # noqa: PLC0415

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

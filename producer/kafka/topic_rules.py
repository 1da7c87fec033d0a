"""Whether a topic can hold this simulation's stream: the rules, apart from fetching the facts.

A topic that Kafka would accept records for can still be the wrong place for them: an internal
topic (``__consumer_offsets``) breaks the broker's own bookkeeping, a compacted topic keeps only
the last reading of each machine (key), and a topic whose ``max.message.bytes`` is below one
record rejects every batch. Each is refused at start with one line naming the topic, the
problem and the fix (exit code 3), instead of failing record by record later.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TopicFacts:
    """What the broker says about the topic (``None``: not known, e.g. no DescribeConfigs ACL)."""

    name: str
    internal: bool
    cleanup_policy: str | None = None
    max_message_bytes: int | None = None


def topic_problem(facts: TopicFacts, *, largest_batch: int, allow_compacted: bool) -> str | None:
    """The reason the topic cannot be used, or None.

    ``largest_batch``: bytes of a record batch holding this simulation's largest record alone.
    """
    topic = facts.name
    if facts.internal:
        return (
            f"KAFKA_TOPIC={topic} is an internal Kafka topic, which producers must not write to; "
            "choose a topic of your own"
        )
    policies = {p.strip() for p in (facts.cleanup_policy or "").split(",")}
    if "compact" in policies and not allow_compacted:
        return (
            f"KAFKA_TOPIC={topic} has cleanup.policy={facts.cleanup_policy}: compaction keeps only "
            "the last reading of each machine; use a topic with cleanup.policy=delete, or set "
            "KAFKA_ALLOW_COMPACTED_TOPIC=true if that is what you want"
        )
    if facts.max_message_bytes is not None and facts.max_message_bytes < largest_batch:
        return (
            f"KAFKA_TOPIC={topic} has max.message.bytes={facts.max_message_bytes}, but one record "
            f"of this simulation can take {largest_batch} bytes; raise the topic's "
            "max.message.bytes or lower NUM_SENSORS"
        )
    return None

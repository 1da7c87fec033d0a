"""Topic administration, in one place: create a topic, describe it, read its configuration,
and ask the broker for the producer state of its partitions. Used by the record stream's sink
(create when asked, check before the first record, audit a replaced client) and by the
continuity state topic (create compacted, check the policy).

``topic_rules`` decides whether a topic is fit for the stream; this module fetches the facts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import TopicPartition

from producer.kafka.client_config import admin_config
from producer.kafka.topic_rules import TopicFacts
from producer.settings import ProducerSettings

log = logging.getLogger(__name__)


class TopicAdministration(Protocol):
    """What the sink asks of the cluster's administration (``TopicAdmin`` against a broker)."""

    def create(
        self, topic: str, *, partitions: int, configs: Mapping[str, str] | None = None
    ) -> bool: ...

    def facts(self, topic: str) -> TopicFacts: ...

    def describe_producers(self, partitions: list[TopicPartition]) -> Any: ...

    def close(self) -> None: ...


class TopicAdmin:
    """One connection to the cluster's administration (a kafka-python ``KafkaAdminClient``);
    close it when done (it is a context manager)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def connect(cls, settings: ProducerSettings) -> TopicAdmin:
        """Connect with the producer's address, identity and security settings; raises
        kafka-python's ``KafkaError`` when the cluster cannot be reached."""
        return cls(KafkaAdminClient(**admin_config(settings)))

    def __enter__(self) -> TopicAdmin:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def create(
        self, topic: str, *, partitions: int, configs: Mapping[str, str] | None = None
    ) -> bool:
        """Create ``topic`` and wait for its metadata; False if it already exists."""
        spec: dict[str, Any] = {"num_partitions": partitions}
        if configs is not None:
            spec["configs"] = dict(configs)
        try:
            self._client.create_topics({topic: spec}, wait_for_metadata=True)
        except TopicAlreadyExistsError:
            return False
        return True

    def config_values(self, topic: str, names: list[str] | None = None) -> dict[str, str | None]:
        """The topic's configuration (only ``names`` if given); a value the broker does not
        report (yet) is None. Raises ``KafkaError``, e.g. without the DescribeConfigs ACL."""
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, names)
        described = self._client.describe_configs([resource], config_filter="all")
        entries = described.get("topic", {}).get(topic, {})
        values: dict[str, str | None] = {}
        for key, entry in entries.items():
            value = entry.get("value") if isinstance(entry, dict) else entry
            values[key] = None if value is None else str(value)
        return values

    def facts(self, topic: str) -> TopicFacts:
        """What the broker says about ``topic``; its configuration stays unknown (and a warning
        says so) when the user may not read it, which need not block the stream."""
        described = self._client.describe_topics([topic])
        internal = any(bool(t.get("is_internal")) for t in described)
        try:
            values = self.config_values(topic)
        except KafkaError as exc:
            log.warning(
                "cannot read the configuration of topic %r (%s): not checking its "
                "cleanup.policy and max.message.bytes",
                topic,
                type(exc).__name__,
            )
            return TopicFacts(topic, internal)
        max_bytes = values.get("max.message.bytes")
        return TopicFacts(
            topic,
            internal,
            cleanup_policy=values.get("cleanup.policy"),
            max_message_bytes=int(max_bytes) if max_bytes is not None else None,
        )

    def describe_producers(self, partitions: list[TopicPartition]) -> Any:
        """The broker's idempotent-producer state of these partitions (DescribeProducers)."""
        return self._client.describe_producers(partitions)

"""The test broker is a real Kafka: 1,000 keyed records go in and come back intact."""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

pytestmark = pytest.mark.kafka


def test_thousand_keyed_records_round_trip(kafka_bootstrap: str) -> None:
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    admin.close()
    sent = {f"key-{i}".encode(): f'{{"n": {i}}}'.encode() for i in range(1000)}

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    futures = [producer.send(topic, key=key, value=value) for key, value in sent.items()]
    producer.flush()
    assert all(future.get(timeout=30).topic == topic for future in futures)
    producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=10_000,
    )
    received = [(record.key, record.value) for record in consumer]
    consumer.close()

    assert len(received) == 1000
    assert dict(received) == sent

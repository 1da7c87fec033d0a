"""The Kafka sink against kafka-python's accumulator without a broker: configuration, keys,
headers, topic checks, counting, backpressure, client replacement.

The sink runs its own program throughout; only its two doors to the broker are fakes, given
through its constructor: the client (``FakeProducer``, around kafka-python's real record
accumulator) and the topic administration (``FakeTopicAdmin``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from kafka.codec import has_zstd
from kafka.errors import (
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumberError,
)
from kafka.partitioner.default import DefaultPartitioner
from kafka.producer.record_accumulator import RecordAccumulator
from kafka.record.memory_records import MemoryRecords
from kafka.structs import TopicPartition

from domain.machine_ids import machine_ids
from producer.errors import BrokerError, ConfigError
from producer.kafka.client_config import client_config
from producer.kafka.connection import crc32c_implementation
from producer.kafka.sending import machine_partitions
from producer.kafka.sink import KafkaSink
from producer.kafka.supervision import READY_STALL_SECONDS, STALL_MARGIN_SECONDS
from producer.kafka.topic_rules import TopicFacts
from producer.runtime.stopping import StopFlag
from producer.settings import ProducerSettings, load_settings
from producer.sinks.protocol import OutgoingCycle
from testbed.polling import wait_until

pytestmark = pytest.mark.unit


@dataclass
class SentRecord:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    partition: int


class FakeSender:
    """kafka-python's sender thread as far as the sink sees it: a graceful close delivers what
    the producer would deliver; a forced one fails every unresolved batch."""

    def __init__(self, producer: FakeProducer) -> None:
        self.producer = producer
        self.alive = True

    def initiate_close(self) -> None:
        if self.producer.auto_ack:
            self.producer.ack_all()
            self.alive = False

    def force_close(self) -> None:
        self.producer.fail_all(RuntimeError("Producer is closed forcefully."))
        self.alive = False

    def join(self, timeout: float | None = None) -> None:
        return None

    def is_alive(self) -> bool:
        return self.alive

    def wakeup(self) -> None:
        if self.producer.auto_ack:
            self.producer.ack_all()


class FakeProducer:
    """A KafkaProducer without a broker: kafka-python's real record accumulator (the sink puts
    whole batches in it), with the test playing the sender: it drains, acknowledges or fails."""

    instances: ClassVar[list[FakeProducer]] = []

    def __init__(self, **config: Any) -> None:
        self.config = {**config, "api_version": config.get("api_version", (4, 0))}
        self._accumulator = RecordAccumulator(
            batch_size=config.get("batch_size", 65536), linger_ms=0, compression_attrs=0
        )
        self.partition_ids = {0, 1, 2}
        self.auto_ack = True
        self.drained: list[Any] = []
        self.unresolved: list[Any] = []
        self._closed = False
        self._sender = FakeSender(self)
        self._transaction_manager = None
        FakeProducer.instances.append(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def _unregister_cleanup(self) -> None:
        return None

    def partitions_for(self, topic: str) -> set[int]:
        return self.partition_ids

    def drain(self) -> None:
        for queue in self._accumulator._batches.values():
            while queue:
                batch = queue.popleft()
                batch.records.close()
                self.drained.append(batch)
                self.unresolved.append(batch)

    def ack_all(self) -> None:
        self.drain()
        batches, self.unresolved = self.unresolved, []
        for batch in batches:
            batch.complete(0, -1)

    def fail_first(self, error: Exception) -> None:
        self.drain()
        batch = self.unresolved.pop(0)
        batch.complete_exceptionally(error, lambda _: error)

    def fail_all(self, error: Exception) -> None:
        self.drain()
        batches, self.unresolved = self.unresolved, []
        for batch in batches:
            batch.abort(error)

    @property
    def sent(self) -> list[SentRecord]:
        self.drain()
        return [
            SentRecord(b.topic_partition.topic, r.key, r.value, list(r.headers),
                       b.topic_partition.partition)
            for b in self.drained
            for records in MemoryRecords(bytes(b.records.buffer()))
            for r in records
        ]  # fmt: skip


PLAIN_TOPIC = TopicFacts("t", internal=False, cleanup_policy="delete", max_message_bytes=1_048_588)


class FakeTopicAdmin:
    """The cluster's administration as the sink sees it: the topics it knows (any other
    is a plain ``cleanup.policy=delete`` one) and the ones it was asked to create."""

    topics: ClassVar[dict[str, TopicFacts]] = {}
    created: ClassVar[list[tuple[str, int]]] = []

    def create(self, topic: str, *, partitions: int, configs: Any = None) -> bool:
        FakeTopicAdmin.created.append((topic, partitions))
        if topic in FakeTopicAdmin.topics:
            return False
        FakeTopicAdmin.topics[topic] = PLAIN_TOPIC
        return True

    def facts(self, topic: str) -> TopicFacts:
        return FakeTopicAdmin.topics.get(topic, PLAIN_TOPIC)

    def describe_producers(self, partitions: list[TopicPartition]) -> Any:
        return {}

    def close(self) -> None:
        return None


@pytest.fixture(autouse=True)
def _no_topics_yet() -> None:
    FakeTopicAdmin.topics = {}
    FakeTopicAdmin.created = []


class FakeClock:
    """A monotonic clock the test moves on."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def settings(**overrides: Any) -> ProducerSettings:
    return ProducerSettings(**{"kafka_topic": "t", "simulation_name": "plant", **overrides})


def new_sink(
    sink_settings: ProducerSettings,
    machines: list[str],
    failure_types: tuple[str, ...] = (),
    **parts: Any,
) -> KafkaSink:
    """A sink whose client and topic administration are the fakes unless ``parts`` say."""
    parts = {"client_factory": FakeProducer, "open_admin": FakeTopicAdmin, **parts}
    return KafkaSink(sink_settings, machines, failure_types, **parts)


def started_sink(
    clock: FakeClock | None = None, **overrides: Any
) -> tuple[KafkaSink, FakeProducer]:
    sink = new_sink(settings(**overrides), ["aaaaaaaa", "bbbbbbbb", "cccccccc"], ("wear", "heat"),
                    clock=clock or FakeClock())  # fmt: skip
    sink.start()
    return sink, FakeProducer.instances[-1]


def test_client_config_is_idempotent_with_acks_all() -> None:
    config = client_config(settings(kafka_compression_type="gzip", kafka_linger_ms=20))
    assert config["acks"] == "all"
    assert config["enable_idempotence"] is True
    assert config["compression_type"] == "gzip"
    assert config["linger_ms"] == 20
    assert config["batch_size"] == 65536
    assert config["bootstrap_servers"] == ["localhost:9092"]
    assert "sasl_mechanism" not in config


def test_client_config_without_acks_all_drops_idempotence() -> None:
    config = client_config(settings(kafka_acks="1", kafka_compression_type="none"))
    assert config["acks"] == 1
    assert config["enable_idempotence"] is False
    assert config["compression_type"] is None


def test_client_config_sasl() -> None:
    config = client_config(
        settings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="u",
            kafka_sasl_password="p",
        )
    )
    assert config["security_protocol"] == "SASL_PLAINTEXT"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl_plain_username"], config["sasl_plain_password"]) == ("u", "p")


def test_records_are_keyed_with_headers_and_counted() -> None:
    sink, fake = started_sink()
    fake.auto_ack = False
    assert sink.ready.is_set()
    sink.send_cycle(OutgoingCycle(seq=41, bodies=[b"x", b"y", b"z"], failing=[False, True, True],
                                  failure_type=[0, 1, 0]))  # fmt: skip
    sent = sorted(fake.sent, key=lambda r: r.key)
    assert [(r.topic, r.key, r.value) for r in sent] == [
        ("t", b"aaaaaaaa", b"x"),
        ("t", b"bbbbbbbb", b"y"),
        ("t", b"cccccccc", b"z"),
    ]
    assert sent[0].headers == [("seq", b"41"), ("simulation", b"plant")]
    assert sent[1].headers == [("seq", b"41"), ("simulation", b"plant"), ("failure_type", b"heat")]
    assert sent[2].headers[-1] == ("failure_type", b"wear")
    assert (sink.stats.sent, sink.stats.delivered, sink.stats.pending) == (3, 0, 3)
    failed = fake.unresolved[0].record_count
    fake.fail_first(RuntimeError("boom"))
    fake.auto_ack = True
    assert sink.flush(1.0) is False  # everything completed, but one batch failed
    assert (sink.stats.delivered, sink.stats.failed) == (3 - failed, failed)
    assert "boom" in sink.stats.last_error
    sink.close()
    assert fake.closed


def test_flush_timeout_counts_what_is_left_as_failed() -> None:
    sink, fake = started_sink()
    fake.auto_ack = False
    sink.send_cycle(OutgoingCycle(seq=0, bodies=[b"x"], failing=[False], failure_type=[0]))
    assert sink.flush(0.1) is False
    assert (sink.stats.sent, sink.stats.delivered, sink.stats.failed) == (1, 0, 1)
    assert fake.closed
    sink.close()  # after flush: nothing left to do, and no error


def cycle_of(n: int, seq: int = 0) -> OutgoingCycle:
    return OutgoingCycle(seq=seq, bodies=[b"x"] * n, failing=[False] * n, failure_type=[0] * n)


def send_then_set(sink: KafkaSink, cycle: OutgoingCycle, done: threading.Event) -> None:
    sink.send_cycle(cycle)
    done.set()


MANY = [f"{i:08x}" for i in range(600)]


def test_backpressure_blocks_instead_of_dropping() -> None:
    sink = new_sink(settings(kafka_max_pending_records=2), MANY)
    sink.start()
    fake = FakeProducer.instances[-1]
    fake.auto_ack = False
    done = threading.Event()
    worker = threading.Thread(target=send_then_set, args=(sink, cycle_of(600), done), daemon=True)
    worker.start()
    # the first partition's records go out; then more than 2 are unacknowledged: it waits
    wait_until(
        lambda: sink.stats.sent > 0,
        timeout=10.0,
        interval=0.001,
        message="the first partition's records",
    )
    assert not done.wait(0.05)
    assert sink.stats.sent < 600

    def acknowledged_until_done() -> bool:
        fake.ack_all()
        return done.is_set()

    wait_until(
        acknowledged_until_done, timeout=10.0, interval=0.001, message="the whole cycle sent"
    )
    worker.join()
    fake.ack_all()
    assert sink.stats.sent == sink.stats.delivered == 600


def test_the_backpressure_wait_wakes_the_sender_for_what_it_waits_on() -> None:
    # The fake sender delivers only when woken, like kafka-python's sender that went to sleep
    # on an empty accumulator: a wait for room that does not wake it waits forever.
    sink = new_sink(settings(kafka_max_pending_records=2), MANY)
    sink.start()
    done = threading.Event()
    worker = threading.Thread(target=send_then_set, args=(sink, cycle_of(600), done), daemon=True)
    worker.start()
    assert done.wait(10.0), "the cycle loop waited for records its sender was not told of"
    worker.join()
    assert sink.stats.sent == sink.stats.delivered == 600


def test_no_more_than_one_and_a_half_times_the_bound_is_ever_unacknowledged() -> None:
    # 600 records on 6 partitions: 100 per partition, far more than half the bound of 40
    sink = new_sink(settings(kafka_max_pending_records=40), MANY)
    sink.start()
    fake = FakeProducer.instances[-1]
    fake.auto_ack = False
    done = threading.Event()
    worker = threading.Thread(target=send_then_set, args=(sink, cycle_of(600), done), daemon=True)
    worker.start()
    peak = 0
    while not done.is_set():
        # the loop waits (pending over the bound) until acknowledgements make room: what is
        # pending while it waits is the most it ever handed over
        wait_until(
            lambda: done.is_set() or sink.stats.pending > 40,
            timeout=10.0,
            interval=0.001,
            message="a wait for room or the end of the cycle",
        )
        peak = max(peak, sink.stats.pending)
        fake.ack_all()
    worker.join()
    fake.ack_all()
    assert 40 < peak <= 60
    assert sink.stats.sent == sink.stats.delivered == 600


def test_a_stop_ends_the_backpressure_wait_and_hands_over_the_cycle() -> None:
    stop = StopFlag()
    sink = new_sink(settings(kafka_max_pending_records=2), MANY, stop=stop)
    sink.start()
    fake = FakeProducer.instances[-1]
    fake.auto_ack = False
    done = threading.Event()
    worker = threading.Thread(target=send_then_set, args=(sink, cycle_of(600), done), daemon=True)
    worker.start()
    wait_until(
        lambda: sink.stats.sent > 0,
        timeout=10.0,
        interval=0.001,
        message="the first partition's records",
    )
    stop.set()  # SIGTERM
    assert done.wait(5.0), "send_cycle kept waiting after the stop"
    worker.join()
    assert len(fake.sent) == 600  # the whole cycle was handed over, nothing dropped
    fake.auto_ack = True
    assert sink.flush(1.0) is True
    assert sink.stats.delivered == 600


def no_metadata(topic: str) -> set[int]:
    raise KafkaTimeoutError("no metadata")


def test_missing_metadata_fails_the_records_after_the_delivery_timeout() -> None:
    sink, fake = started_sink(kafka_delivery_timeout_ms=1000)
    fake.partitions_for = no_metadata  # type: ignore[method-assign]
    sink.send_cycle(cycle_of(3))  # returns (after ~1 s) instead of waiting forever
    assert fake.sent == []
    assert (sink.stats.sent, sink.stats.failed, sink.stats.pending) == (3, 3, 0)
    assert "no metadata" in sink.stats.last_error


def test_missing_metadata_does_not_hold_a_stop() -> None:
    stop = StopFlag()
    sink = new_sink(settings(), ["aaaaaaaa"], stop=stop)
    sink.start()
    FakeProducer.instances[-1].partitions_for = no_metadata  # type: ignore[method-assign]
    stop.set()
    sink.send_cycle(cycle_of(1))  # with the default 120 s delivery timeout: returns at once
    assert (sink.stats.sent, sink.stats.failed) == (1, 1)


def test_a_stalled_client_is_replaced_and_the_counts_stay_exact() -> None:
    clock = FakeClock()
    sink, old = started_sink(clock)
    old.auto_ack = False  # a hung broker: nothing is ever acknowledged
    sink.send_cycle(cycle_of(3))
    old.drain()
    delivered_before = old.unresolved[0].record_count
    old.unresolved.pop(0).complete(0, -1)  # one batch made it before the hang
    sink.send_cycle(cycle_of(3, seq=1))
    assert sink.replacements == 0  # waiting is no reason by itself
    clock.advance(120 + STALL_MARGIN_SECONDS + 1)  # the delivery timeout and the margin
    sink.send_cycle(cycle_of(3, seq=2))
    assert sink.replacements == 1
    new = FakeProducer.instances[-1]
    assert new is not old
    assert old.closed
    assert new.config["api_version"] == (4, 0)  # no second bootstrap
    assert len(new.sent) == 3
    lost = 6 - delivered_before
    stats = sink.stats
    # the new client's fake acknowledges at once (auto_ack)
    assert (stats.sent, stats.delivered, stats.failed) == (9, delivered_before + 3, lost)
    assert sink.flush(1.0) is False  # records were lost in the hang
    assert (sink.stats.delivered, sink.stats.failed, sink.stats.pending) == (9 - lost, lost, 0)


def test_a_fatal_idempotence_error_replaces_the_client_at_the_next_cycle() -> None:
    sink, old = started_sink()
    old.auto_ack = False
    sink.send_cycle(cycle_of(3))
    old.fail_first(OutOfOrderSequenceNumberError("sequence"))
    sink.send_cycle(cycle_of(3, seq=1))
    assert sink.replacements == 1
    assert sink.stats.pending == 0
    assert sink.stats.sent == 6
    assert sink.stats.failed + sink.stats.delivered == 6
    assert sink.stats.delivered >= 3  # the new client's whole cycle


def test_a_record_the_topic_refuses_stops_the_run_with_a_broker_error() -> None:
    sink, fake = started_sink()
    fake.auto_ack = False
    sink.send_cycle(cycle_of(1))
    fake.fail_first(MessageSizeTooLargeError("too large"))
    assert not sink.delivering()
    with pytest.raises(BrokerError, match=r"topic 't'.*MessageSizeTooLargeError") as info:
        sink.send_cycle(cycle_of(1, seq=1))
    assert info.value.exit_code == 3


def test_readiness_drops_when_nothing_is_acknowledged() -> None:
    clock = FakeClock()
    sink, fake = started_sink(clock)
    assert sink.delivering()
    fake.auto_ack = False
    sink.send_cycle(cycle_of(3))
    assert sink.delivering()
    clock.advance(READY_STALL_SECONDS)
    assert not sink.delivering()
    fake.ack_all()
    assert sink.delivering()


def unreachable(**config: Any) -> FakeProducer:
    raise KafkaTimeoutError("Unable to bootstrap from ['h:1']")


def test_unreachable_broker_is_a_clear_broker_error() -> None:
    sink = new_sink(settings(kafka_bootstrap_servers="h:1"), ["aaaaaaaa"],
                    client_factory=unreachable)  # fmt: skip
    with pytest.raises(BrokerError) as info:
        sink.start()
    message = str(info.value)
    assert "cannot reach Kafka at h:1" in message
    assert "KAFKA_BOOTSTRAP_SERVERS" in message
    assert info.value.exit_code == 3


def test_missing_codec_is_reported() -> None:
    sink = new_sink(settings(kafka_compression_type="zstd"), ["aaaaaaaa"])
    if has_zstd():
        sink.start()
    else:
        with pytest.raises(BrokerError, match="zstandard"):
            sink.start()


def test_the_topic_is_created_when_asked() -> None:
    started_sink(kafka_create_topic=True, kafka_topic_partitions=6)
    assert FakeTopicAdmin.created == [("t", 6)]
    started_sink()
    assert FakeTopicAdmin.created == [("t", 6)]


@pytest.mark.parametrize(
    ("facts", "problem"),
    [
        (TopicFacts("t", True), "internal Kafka topic"),
        (TopicFacts("t", False, "compact"), "cleanup.policy=compact"),
        (TopicFacts("t", False, "delete", 100), "max.message.bytes=100"),
    ],
)
def test_a_topic_unfit_for_the_stream_is_refused_at_start(facts: TopicFacts, problem: str) -> None:
    FakeTopicAdmin.topics["t"] = facts
    sink = new_sink(settings(), ["aaaaaaaa"], max_body_bytes=500)
    with pytest.raises(BrokerError, match=problem) as info:
        sink.start()
    assert info.value.exit_code == 3
    assert not sink.ready.is_set()
    assert FakeProducer.instances[-1].closed  # the client it had made is released


def test_a_compacted_topic_is_accepted_when_allowed() -> None:
    FakeTopicAdmin.topics["t"] = TopicFacts("t", False, "compact")
    sink, _ = started_sink(kafka_allow_compacted_topic=True)
    assert sink.ready.is_set()


# -- throughput measures: CRC-32C and cached partitions ---------------------------------------


def test_kafka_python_checksums_with_the_c_package() -> None:
    # crc32c is a dependency so that kafka-python never falls back to its pure-Python CRC.
    assert crc32c_implementation() == "crc32c"


class _Cluster:
    def __init__(self, partitions: set[int]) -> None:
        self.partitions = partitions

    def topics(self) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self.partitions

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self.partitions


def test_cached_partitions_equal_the_default_partitioner() -> None:
    keys = [m.encode("ascii") for m in machine_ids("plant", range(5_000))]
    keys += [b"", b"a", b"ab", b"abc", b"abcde", "caf\u00e9".encode()]
    partitioner = DefaultPartitioner()
    for partitions in ({0}, {0, 1, 2}, set(range(6)), set(range(7)), set(range(12)), {3, 5, 9}):
        cluster = _Cluster(partitions)
        expected = [partitioner.partition("t", k, k, None, None, cluster) for k in keys]
        assert machine_partitions(keys, partitions) == expected


def test_records_carry_the_cached_partition_and_follow_new_partitions() -> None:
    sink, fake = started_sink()
    keys = [b"aaaaaaaa", b"bbbbbbbb", b"cccccccc"]
    cycle = OutgoingCycle(seq=0, bodies=[b"x", b"y", b"z"], failing=[False] * 3,
                          failure_type=[0] * 3)  # fmt: skip
    sink.send_cycle(cycle)
    expected = dict(zip(keys, machine_partitions(keys, {0, 1, 2}), strict=True))
    assert {r.key: r.partition for r in fake.sent} == expected
    fake.partition_ids = set(range(12))  # the topic gained partitions
    sink.send_cycle(cycle)
    expected = dict(zip(keys, machine_partitions(keys, set(range(12))), strict=True))
    assert {r.key: r.partition for r in fake.sent[3:]} == expected


def test_a_short_metadata_gap_keeps_the_partition_assignment() -> None:
    sink, fake = started_sink()
    answers = iter([KafkaTimeoutError("no metadata")])

    def flaky_metadata(topic: str) -> set[int]:
        error = next(answers, None)
        if error is not None:
            raise error
        return fake.partition_ids

    fake.partitions_for = flaky_metadata  # type: ignore[method-assign]
    sink.send_cycle(OutgoingCycle(seq=0, bodies=[b"x"], failing=[False], failure_type=[0]))
    assert [r.partition for r in fake.sent] == machine_partitions([b"aaaaaaaa"], {0, 1, 2})


def test_a_partial_last_cycle_sends_only_the_first_machines() -> None:
    sink, fake = started_sink()
    sink.send_cycle(OutgoingCycle(seq=0, bodies=[b"x", b"y"], failing=[False] * 2,
                                  failure_type=[0] * 2))  # fmt: skip
    assert sorted(r.key for r in fake.sent) == [b"aaaaaaaa", b"bbbbbbbb"]
    assert sink.stats.sent == sink.stats.delivered == 2


@pytest.mark.parametrize("delivery_ms", [1000, 5000, 30_000, 30_005, 60_000, 120_000])
@pytest.mark.parametrize("linger_ms", [0, 5, 100, 500])
def test_every_accepted_timeout_gives_a_client_config_kafka_python_accepts(
    delivery_ms: int, linger_ms: int
) -> None:
    config = client_config(
        settings(kafka_delivery_timeout_ms=delivery_ms, kafka_linger_ms=linger_ms)
    )
    RecordAccumulator(**config)  # raises KafkaConfigurationError on an impossible combination
    assert config["request_timeout_ms"] == min(30_000, delivery_ms - linger_ms)


def test_a_delivery_timeout_shorter_than_linger_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(kafka_delivery_timeout_ms=2000, kafka_linger_ms=1800)
    message = str(info.value)
    assert "KAFKA_DELIVERY_TIMEOUT_MS (2000)" in message
    assert "KAFKA_LINGER_MS (1800)" in message
    assert info.value.exit_code == 2

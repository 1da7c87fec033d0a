"""The Kafka sink against a fake client: configuration, keys, headers, counting, backpressure."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from kafka.errors import KafkaTimeoutError
from kafka.partitioner.default import DefaultPartitioner

from domain.machine_ids import machine_ids
from producer.errors import BrokerError
from producer.kafka_sink import (
    KafkaSink,
    client_config,
    crc32c_implementation,
    machine_partitions,
)
from producer.settings import ProducerSettings
from producer.sinks import OutgoingCycle

pytestmark = pytest.mark.unit


class FakeFuture:
    def __init__(self) -> None:
        self.callbacks: list[Callable[[Any], None]] = []
        self.errbacks: list[Callable[[BaseException], None]] = []

    def add_callback(self, f: Callable[[Any], None]) -> FakeFuture:
        self.callbacks.append(f)
        return self

    def add_errback(self, f: Callable[[BaseException], None]) -> FakeFuture:
        self.errbacks.append(f)
        return self

    def succeed(self) -> None:
        for f in self.callbacks:
            f(object())

    def fail(self, exc: BaseException) -> None:
        for f in self.errbacks:
            f(exc)


class FakeProducer:
    instances: ClassVar[list[FakeProducer]] = []

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.sent: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]] = []
        self.futures: list[FakeFuture] = []
        self.partitions_sent: list[int | None] = []
        self.partition_ids = {0, 1, 2}
        self.auto_ack = True
        self.closed = False
        FakeProducer.instances.append(self)

    def partitions_for(self, topic: str) -> set[int]:
        return self.partition_ids

    def send(
        self,
        topic: str,
        *,
        value: bytes,
        key: bytes,
        headers: list[tuple[str, bytes]],
        partition: int | None = None,
    ) -> FakeFuture:
        self.sent.append((topic, key, value, headers))
        self.partitions_sent.append(partition)
        future = FakeFuture()
        self.futures.append(future)
        return future

    def ack_all(self) -> None:
        for future in self.futures:
            future.succeed()
        self.futures.clear()

    def flush(self, timeout: float | None = None) -> None:
        if self.auto_ack:
            self.ack_all()
        else:
            raise KafkaTimeoutError("flush timed out")

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def settings(**overrides: Any) -> ProducerSettings:
    return ProducerSettings(**{"kafka_topic": "t", "simulation_name": "plant", **overrides})


def started_sink(**overrides: Any) -> tuple[KafkaSink, FakeProducer]:
    sink = KafkaSink(settings(**overrides), ["aaaaaaaa", "bbbbbbbb", "cccccccc"], ("wear", "heat"),
                     client_factory=FakeProducer)  # fmt: skip
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
    assert sink.ready.is_set()
    sink.send_cycle(OutgoingCycle(seq=41, bodies=[b"x", b"y", b"z"], failing=[False, True, True],
                                  failure_type=[0, 1, 0]))  # fmt: skip
    assert [(t, k, v) for t, k, v, _ in fake.sent] == [
        ("t", b"aaaaaaaa", b"x"),
        ("t", b"bbbbbbbb", b"y"),
        ("t", b"cccccccc", b"z"),
    ]
    assert fake.sent[0][3] == [("seq", b"41"), ("simulation", b"plant")]
    assert fake.sent[1][3] == [("seq", b"41"), ("simulation", b"plant"), ("failure_type", b"heat")]
    assert fake.sent[2][3][-1] == ("failure_type", b"wear")
    assert (sink.stats.sent, sink.stats.delivered, sink.stats.pending) == (3, 0, 3)
    fake.futures.pop(0).fail(RuntimeError("boom"))
    assert sink.flush(1.0) is False  # everything completed, but one record failed
    assert (sink.stats.delivered, sink.stats.failed) == (2, 1)
    assert "boom" in sink.stats.last_error
    sink.close()
    assert fake.closed


def test_flush_timeout_reports_false() -> None:
    sink, fake = started_sink()
    fake.auto_ack = False
    sink.send_cycle(OutgoingCycle(seq=0, bodies=[b"x"], failing=[False], failure_type=[0]))
    assert sink.flush(0.1) is False


def test_backpressure_blocks_instead_of_dropping() -> None:
    sink, fake = started_sink(kafka_max_pending_records=2)
    done = threading.Event()

    def produce() -> None:
        for seq in range(200):
            sink.send_cycle(OutgoingCycle(seq=seq, bodies=[b"a", b"b", b"c"],
                                          failing=[False] * 3, failure_type=[0] * 3))  # fmt: skip
        done.set()

    worker = threading.Thread(target=produce)
    worker.start()
    time.sleep(0.2)
    assert not done.is_set()  # waiting for acknowledgements
    assert sink.stats.pending <= 2 + 256
    while not done.is_set():
        fake.ack_all()
        time.sleep(0.001)
    worker.join()
    fake.ack_all()
    assert sink.stats.sent == 600
    assert sink.stats.delivered == 600


def test_a_stop_ends_the_backpressure_wait_and_hands_over_the_cycle() -> None:
    stop = threading.Event()
    sink = KafkaSink(settings(kafka_max_pending_records=2), ["aaaaaaaa"] * 600, (),
                     client_factory=FakeProducer, stop=stop)  # fmt: skip
    sink.start()
    fake = FakeProducer.instances[-1]
    done = threading.Event()
    cycle = OutgoingCycle(seq=0, bodies=[b"x"] * 600, failing=[False] * 600,
                          failure_type=[0] * 600)  # fmt: skip

    def produce() -> None:
        sink.send_cycle(cycle)
        done.set()

    worker = threading.Thread(target=produce)
    worker.start()
    time.sleep(0.2)
    assert not done.is_set()  # the broker acknowledges nothing: waiting for room
    stop.set()  # SIGTERM
    stopped_in_time = done.wait(2.0)
    while not done.is_set():  # (only if it failed: release the worker)
        fake.ack_all()
        time.sleep(0.001)
    worker.join()
    assert stopped_in_time, "send_cycle kept waiting after the stop"
    assert len(fake.sent) == 600  # the whole cycle was handed over, nothing dropped
    assert sink.flush(1.0) is True
    assert sink.stats.delivered == 600


def test_metadata_timeouts_are_retried() -> None:
    sink, fake = started_sink()
    real_send = fake.send
    calls = {"n": 0}

    def flaky(topic: str, **kwargs: Any) -> FakeFuture:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KafkaTimeoutError("no metadata")
        return real_send(topic, **kwargs)

    fake.send = flaky  # type: ignore[method-assign]
    sink.send_cycle(OutgoingCycle(seq=0, bodies=[b"x"], failing=[False], failure_type=[0]))
    assert len(fake.sent) == 1
    assert sink.stats.sent == 1


def unreachable(**config: Any) -> FakeProducer:
    raise KafkaTimeoutError("Unable to bootstrap from ['h:1']")


def test_unreachable_broker_is_a_clear_broker_error() -> None:
    sink = KafkaSink(settings(kafka_bootstrap_servers="h:1"), ["aaaaaaaa"], (),
                     client_factory=unreachable)  # fmt: skip
    with pytest.raises(BrokerError) as info:
        sink.start()
    message = str(info.value)
    assert "cannot reach Kafka at h:1" in message
    assert "KAFKA_BOOTSTRAP_SERVERS" in message
    assert info.value.exit_code == 3


def test_missing_codec_is_reported() -> None:
    sink = KafkaSink(settings(kafka_compression_type="zstd"), ["aaaaaaaa"], (),
                     client_factory=FakeProducer)  # fmt: skip
    from kafka.codec import has_zstd  # noqa: PLC0415

    if has_zstd():
        sink.start()
    else:
        with pytest.raises(BrokerError, match="zstandard"):
            sink.start()


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
    assert fake.partitions_sent == machine_partitions(keys, {0, 1, 2})
    fake.partition_ids = set(range(12))  # the topic gained partitions
    sink.send_cycle(cycle)
    assert fake.partitions_sent[3:] == machine_partitions(keys, set(range(12)))


def test_a_metadata_failure_keeps_the_last_partition_assignment() -> None:
    sink, fake = started_sink()

    def no_metadata(topic: str) -> set[int]:
        raise KafkaTimeoutError("no metadata")

    fake.partitions_for = no_metadata  # type: ignore[method-assign]
    sink.send_cycle(OutgoingCycle(seq=0, bodies=[b"x"], failing=[False], failure_type=[0]))
    assert fake.partitions_sent == machine_partitions([b"aaaaaaaa"], {0, 1, 2})

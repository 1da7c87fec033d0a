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
from producer.errors import BrokerError, ConfigError
from producer.kafka_sink import (
    KafkaSink,
    client_config,
    crc32c_implementation,
    machine_partitions,
)
from producer.settings import ProducerSettings
from producer.sinks import OutgoingCycle
from producer.stopping import StopFlag

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


class FakeSender:
    """kafka-python's sender thread as far as closing goes: a graceful close delivers what the
    producer would deliver; a forced one fails every unresolved record."""

    def __init__(self, producer: FakeProducer) -> None:
        self.producer = producer
        self.alive = True

    def initiate_close(self) -> None:
        if self.producer.auto_ack:
            self.producer.ack_all()
            self.alive = False

    def force_close(self) -> None:
        for future in self.producer.futures:
            future.fail(RuntimeError("Producer is closed forcefully."))
        self.producer.futures.clear()
        self.alive = False

    def join(self, timeout: float | None = None) -> None:
        return None

    def is_alive(self) -> bool:
        return self.alive


class FakeProducer:
    instances: ClassVar[list[FakeProducer]] = []

    def __init__(self, **config: Any) -> None:
        self.config = {**config, "api_version": config.get("api_version", (4, 0))}
        self.sent: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]] = []
        self.futures: list[FakeFuture] = []
        self.partitions_sent: list[int | None] = []
        self.partition_ids = {0, 1, 2}
        self.auto_ack = True
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
        futures, self.futures = self.futures, []
        for future in futures:
            future.succeed()


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


def test_flush_timeout_counts_what_is_left_as_failed() -> None:
    sink, fake = started_sink()
    fake.auto_ack = False
    sink.send_cycle(OutgoingCycle(seq=0, bodies=[b"x"], failing=[False], failure_type=[0]))
    assert sink.flush(0.1) is False
    assert (sink.stats.sent, sink.stats.delivered, sink.stats.failed) == (1, 0, 1)
    assert fake.closed
    sink.close()  # after flush: nothing left to do, and no error


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


def cycle_of(n: int, seq: int = 0) -> OutgoingCycle:
    return OutgoingCycle(seq=seq, bodies=[b"x"] * n, failing=[False] * n, failure_type=[0] * n)


def send_then_set(sink: KafkaSink, cycle: OutgoingCycle, done: threading.Event) -> None:
    sink.send_cycle(cycle)
    done.set()


def test_backpressure_blocks_instead_of_dropping() -> None:
    sink = KafkaSink(settings(kafka_max_pending_records=2), ["aaaaaaaa"] * 600, (),
                     client_factory=FakeProducer)  # fmt: skip
    sink.start()
    fake = FakeProducer.instances[-1]
    done = threading.Event()
    worker = threading.Thread(target=send_then_set, args=(sink, cycle_of(600), done))
    worker.start()
    # the check every 256 records finds 256 unacknowledged (> 2): the 257th waits for room
    wait_for(lambda: len(fake.sent) == 256, "the first 256 records")
    assert not done.is_set()
    while not done.is_set():
        fake.ack_all()
        time.sleep(0.001)
    worker.join()
    fake.ack_all()
    assert sink.stats.sent == sink.stats.delivered == 600


def test_a_stop_ends_the_backpressure_wait_and_hands_over_the_cycle() -> None:
    stop = StopFlag()
    sink = KafkaSink(settings(kafka_max_pending_records=2), ["aaaaaaaa"] * 600, (),
                     client_factory=FakeProducer, stop=stop)  # fmt: skip
    sink.start()
    fake = FakeProducer.instances[-1]
    done = threading.Event()
    worker = threading.Thread(target=send_then_set, args=(sink, cycle_of(600), done))
    worker.start()
    wait_for(lambda: len(fake.sent) == 256, "the first 256 records")
    stop.set()  # SIGTERM
    stopped_in_time = done.wait(5.0)
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
    sink = KafkaSink(settings(), ["aaaaaaaa"], (), client_factory=FakeProducer, stop=stop)
    sink.start()
    FakeProducer.instances[-1].partitions_for = no_metadata  # type: ignore[method-assign]
    stop.set()
    sink.send_cycle(cycle_of(1))  # with the default 120 s delivery timeout: returns at once
    assert (sink.stats.sent, sink.stats.failed) == (1, 1)


def test_a_stalled_client_is_replaced_and_the_counts_stay_exact() -> None:
    sink, old = started_sink()
    old.auto_ack = False  # a hung broker: nothing is ever acknowledged
    sink.send_cycle(cycle_of(3))
    old.futures[0].succeed()  # one record made it before the hang
    sink._stall_limit = 0.01  # (the delivery timeout + margin, shortened for the test)
    time.sleep(0.05)  # let the stall limit pass (time itself is the condition here)
    sink.send_cycle(cycle_of(3, seq=1))
    assert sink.replacements == 1
    new = FakeProducer.instances[-1]
    assert new is not old
    assert old.closed
    assert new.config["api_version"] == (4, 0)  # no second bootstrap
    assert len(new.sent) == 3
    stats = sink.stats
    assert (stats.sent, stats.delivered, stats.failed, stats.pending) == (6, 1, 2, 3)
    old.futures.clear()  # late callbacks of the old client would not count (it is retired)
    new.ack_all()
    assert sink.flush(1.0) is False  # two records were lost in the hang
    assert (sink.stats.delivered, sink.stats.failed, sink.stats.pending) == (4, 2, 0)


def test_a_fatal_idempotence_error_replaces_the_client_at_the_next_cycle() -> None:
    from kafka.errors import OutOfOrderSequenceNumberError  # noqa: PLC0415

    sink, old = started_sink()
    old.auto_ack = False
    sink.send_cycle(cycle_of(2))
    old.futures[0].fail(OutOfOrderSequenceNumberError("sequence"))
    sink.send_cycle(cycle_of(2, seq=1))
    assert sink.replacements == 1
    assert (sink.stats.sent, sink.stats.failed, sink.stats.pending) == (4, 2, 2)


def test_a_record_the_topic_refuses_stops_the_run_with_a_broker_error() -> None:
    from kafka.errors import MessageSizeTooLargeError  # noqa: PLC0415

    sink, fake = started_sink()
    fake.auto_ack = False
    sink.send_cycle(cycle_of(1))
    fake.futures[0].fail(MessageSizeTooLargeError("too large"))
    assert not sink.delivering()
    with pytest.raises(BrokerError, match=r"topic 't'.*MessageSizeTooLargeError") as info:
        sink.send_cycle(cycle_of(1, seq=1))
    assert info.value.exit_code == 3


def test_readiness_drops_when_nothing_is_acknowledged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("producer.kafka_sink.READY_STALL_SECONDS", 0.01)
    sink, fake = started_sink()
    assert sink.delivering()
    fake.auto_ack = False
    sink.send_cycle(cycle_of(3))
    wait_for(lambda: not sink.delivering(), "readiness to drop")
    fake.ack_all()
    assert sink.delivering()


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


def test_a_metadata_gap_mid_cycle_keeps_the_partition_assignment() -> None:
    sink, fake = started_sink()
    answers = iter([KafkaTimeoutError("no metadata")])

    def flaky_metadata(topic: str) -> set[int]:
        error = next(answers, None)
        if error is not None:
            raise error
        return fake.partition_ids

    fake.partitions_for = flaky_metadata  # type: ignore[method-assign]
    sink.send_cycle(OutgoingCycle(seq=0, bodies=[b"x"], failing=[False], failure_type=[0]))
    assert fake.partitions_sent == machine_partitions([b"aaaaaaaa"], {0, 1, 2})


@pytest.mark.parametrize("delivery_ms", [1000, 5000, 30_000, 30_005, 60_000, 120_000])
@pytest.mark.parametrize("linger_ms", [0, 5, 100, 500])
def test_every_accepted_timeout_gives_a_client_config_kafka_python_accepts(
    delivery_ms: int, linger_ms: int
) -> None:
    from kafka.producer.record_accumulator import RecordAccumulator  # noqa: PLC0415

    config = client_config(
        settings(kafka_delivery_timeout_ms=delivery_ms, kafka_linger_ms=linger_ms)
    )
    RecordAccumulator(**config)  # raises KafkaConfigurationError on an impossible combination
    assert config["request_timeout_ms"] == min(30_000, delivery_ms - linger_ms)


def test_a_delivery_timeout_shorter_than_linger_is_a_config_error() -> None:
    from producer.settings import load_settings  # noqa: PLC0415

    with pytest.raises(ConfigError) as info:
        load_settings(kafka_delivery_timeout_ms=2000, kafka_linger_ms=1800)
    message = str(info.value)
    assert "KAFKA_DELIVERY_TIMEOUT_MS (2000)" in message
    assert "KAFKA_LINGER_MS (1800)" in message
    assert info.value.exit_code == 2

"""Batches built in bulk (``producer/kafka/batches.py``) are byte-identical to the batches
kafka-python's own builder makes of the same records, and read back the same.

This is the conformance test of the kafka-python internals that module relies on: an upgrade
that changes the record format, the builder's fields or the accumulator fails here.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.errors import KafkaTimeoutError
from kafka.producer.record_accumulator import RecordAccumulator
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder
from kafka.record.util import encode_varint
from kafka.structs import TopicPartition

from producer.kafka.batches import BatchWriter, fill, header_block, varint, zigzag_varint

pytestmark = pytest.mark.unit

TS = 1_796_000_000_000
HEADERS = [("seq", b"41"), ("simulation", b"plant")]


def test_varints_match_kafka_python() -> None:
    for n in [*range(300), 8191, 8192, 16383, 16384, 10**6, 2**31 - 1]:
        out = bytearray()
        encode_varint(n, out.append)
        assert zigzag_varint(n) == varint(n) == bytes(out), n


def kafka_python_batches(
    keys: list[bytes], values: list[bytes], headers: list[list[tuple[str, bytes]]],
    batch_size: int, compression: int = 0,
) -> list[bytes]:  # fmt: skip
    """What ``KafkaProducer.send`` would put in the accumulator: append until full."""
    out = []
    builder = MemoryRecordsBuilder(2, compression, batch_size)
    for key, value, header in zip(keys, values, headers, strict=True):
        if builder.append(TS, key, value, header) is None:
            builder.close()
            out.append(bytes(builder.buffer()))
            builder = MemoryRecordsBuilder(2, compression, batch_size)
            assert builder.append(TS, key, value, header) is not None
    builder.close()
    out.append(bytes(builder.buffer()))
    return out


class FakeSender:
    def wakeup(self) -> None:
        return None


class Producer:
    """What BatchWriter uses of a KafkaProducer: its real accumulator, the sender's wakeup and
    its transaction manager (none: not transactional)."""

    def __init__(self, batch_size: int, compression: int = 0) -> None:
        self._accumulator = RecordAccumulator(
            batch_size=batch_size, compression_attrs=compression, linger_ms=0
        )
        self._sender = FakeSender()
        self._transaction_manager = None


def bulk_batches(
    keys: list[bytes], values: list[bytes], headers: list[list[tuple[str, bytes]]],
    batch_size: int, compression: int = 0,
) -> tuple[list[bytes], list[tuple[int, Any]]]:  # fmt: skip
    producer = Producer(batch_size, compression)
    writer = BatchWriter(producer, "t", keys)
    results: list[tuple[int, Any]] = []
    blocks = [header_block(h) for h in headers]
    written = writer.write(3, range(len(keys)), values, blocks,
                           lambda n, e: results.append((n, e)), timestamp_ms=TS)  # fmt: skip
    assert written == len(keys)
    queue = producer._accumulator._batches[TopicPartition("t", 3)]
    out = []
    for batch in queue:
        batch.records.close()
        out.append(bytes(batch.records.buffer()))
    for batch in list(queue):
        batch.complete(100, -1)  # as the sender does on the broker's acknowledgement
    return out, results


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.binary(min_size=0, max_size=700), min_size=1, max_size=60),
    batch_size=st.sampled_from([200, 1000, 4096, 65536]),
    failing=st.lists(st.booleans(), min_size=60, max_size=60),
)
def test_bulk_batches_are_byte_identical_to_kafka_pythons(
    values: list[bytes], batch_size: int, failing: list[bool]
) -> None:
    keys = [f"{i:08x}".encode() for i in range(len(values))]
    headers = [[*HEADERS, ("failure_type", b"wear")] if failing[i] else HEADERS
               for i in range(len(values))]  # fmt: skip
    expected = kafka_python_batches(keys, values, headers, batch_size)
    actual, results = bulk_batches(keys, values, headers, batch_size)
    assert actual == expected
    assert sum(n for n, _ in results) == len(values)
    assert all(error is None for _, error in results)


@pytest.mark.parametrize("codec", [1, 2, 3, 4])  # gzip, snappy, lz4, zstd
def test_compressed_bulk_batches_read_back_identically(codec: int) -> None:
    values = [(b'{"machine_id":"%08x","readings":' % i) * 10 for i in range(50)]
    keys = [f"{i:08x}".encode() for i in range(50)]
    actual, _ = bulk_batches(keys, values, [HEADERS] * 50, 4096, codec)
    read = [
        (record.key, record.value, list(record.headers))
        for data in actual
        for batch in MemoryRecords(data)
        for record in batch
    ]
    assert read == [(k, v, HEADERS) for k, v in zip(keys, values, strict=True)]
    for data in actual:
        for batch in MemoryRecords(data):
            assert batch.validate_crc()


def test_a_failed_batch_reports_its_records_and_the_error() -> None:
    producer = Producer(65536)
    results: list[tuple[int, Any]] = []
    writer = BatchWriter(producer, "t", [b"k0", b"k1"])
    writer.write(0, [0, 1], [b"a", b"b"], [header_block(HEADERS)] * 2,
                 lambda n, e: results.append((n, e)))  # fmt: skip
    batch = producer._accumulator._batches[TopicPartition("t", 0)][0]
    error = KafkaTimeoutError("Expiring 2 record(s)")
    batch.complete_exceptionally(error, lambda _: error)
    assert results == [(2, error)]


def test_the_accumulator_keeps_the_fields_the_writer_uses() -> None:
    accumulator = RecordAccumulator()
    for name in ("_batches", "_incomplete", "_appends_in_progress", "_closed", "config"):
        assert hasattr(accumulator, name), name
    assert isinstance(accumulator._tp_lock(TopicPartition("t", 0)), type(threading.Lock()))
    assert DefaultRecordBatchBuilder.HEADER_STRUCT.size == 61
    builder = MemoryRecordsBuilder(2, 0, 1000)
    fill(builder, b"", 0, TS)
    for name in ("_buffer", "_num_records", "_last_offset", "_first_timestamp"):
        assert hasattr(builder._builder, name), name

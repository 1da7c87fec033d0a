"""A cycle's records handed to kafka-python as whole record batches.

``KafkaProducer.send()`` does much per record in Python: argument checks, a size estimate, the
accumulator's lock, a v2 record encoded byte by byte, a future and two callbacks per record.
This module builds the same v2 record batches for a whole partition's share of a cycle at once
and puts them in kafka-python's own accumulator, where its sender takes over exactly as for
batches built by ``send()``: idempotence (producer id, epoch and sequence are stamped when the
sender drains the batch), retries, delivery timeout, metadata, compression and the CRC-32C
(both applied when the batch is closed). One callback per batch counts its records.

The record encoding is the v2 format (KIP-98): per record, a zigzag varint length, attributes
(0), timestamp delta (0: one timestamp per batch), offset delta, key, value and headers. The
headers of a cycle are the same for every healthy machine (``seq``, ``simulation``) and for
every machine failing with a given type, so they are encoded once per cycle.

kafka-python internals used here (kafka-python 3.0.x; pinned in pyproject.toml): the
accumulator's ``_batches``/``_incomplete``/``_tp_lock``/``_appends_in_progress``/``_closed``,
the transaction manager's ``maybe_add_partition_to_transaction`` (what ``send()`` calls),
``MemoryRecordsBuilder``/``DefaultRecordBatchBuilder`` fields, ``ProducerBatch``, and that a
batch's ``produce_future`` succeeds with ``(base_offset, timestamp, record_errors)`` where
``record_errors`` is None on success. ``tests/unit/test_kafka_batches_conformance.py`` checks
that batches built here are byte-identical to kafka-python's own builder's, and the tests
under tests/kafka that every record reaches a real broker intact.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kafka.errors import IllegalStateError
from kafka.producer.producer_batch import ProducerBatch
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecordsBuilder
from kafka.structs import TopicPartition

_HEADER_SIZE = 61
"""Bytes of a v2 record batch header (DefaultRecordBatchBuilder.HEADER_STRUCT.size)."""
_ATTRIBUTES_AND_TIMESTAMP_DELTA = b"\x00\x00"


def zigzag_varint(value: int) -> bytes:
    """Kafka's signed varint (zigzag, 7 bits per byte, least significant group first)."""
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_VARINTS = [zigzag_varint(i) for i in range(1 << 14)]


def varint(value: int) -> bytes:
    return _VARINTS[value] if value < 16384 else zigzag_varint(value)


def header_block(headers: Sequence[tuple[str, bytes]]) -> bytes:
    """A record's headers in v2 encoding: count, then (key, value) with varint lengths."""
    parts = [varint(len(headers))]
    for key, value in headers:
        encoded = key.encode("utf-8")
        parts += [varint(len(encoded)), encoded, varint(len(value)), value]
    return b"".join(parts)


BatchDone = Callable[[int, BaseException | None], None]
"""Called once per batch from kafka-python's I/O thread: (records, None) when acknowledged,
(records, error) when the batch failed."""


class BatchWriter:
    """Writes pre-keyed records into one producer's accumulator, one batch per ``batch_size``."""

    def __init__(self, producer: Any, topic: str, keys: Sequence[bytes]) -> None:
        accumulator = producer._accumulator
        config = accumulator.config
        if config["message_version"] < 2:
            raise ValueError("record batches need a broker with message format v2 (Kafka 0.11+)")
        self._accumulator = accumulator
        self._sender = producer._sender
        self._compression = config["compression_attrs"]
        self._batch_size = config["batch_size"]
        self._topic = topic
        self._key_parts = [varint(len(k)) + k for k in keys]
        manager = producer._transaction_manager
        self._transaction = manager if manager is not None and manager.is_transactional() else None
        """A transactional producer's manager: each partition joins the transaction first."""

    def write(
        self,
        partition: int,
        machines: Sequence[int],
        bodies: Sequence[bytes],
        headers: Sequence[bytes],
        done: BatchDone,
        *,
        timestamp_ms: int | None = None,
    ) -> int:
        """Append the records of ``machines`` (indices into ``bodies``/``headers``/keys) to
        ``partition``, in order; returns how many were appended (all of them)."""
        if timestamp_ms is None:
            timestamp_ms = int(time.time() * 1000)
        tp = TopicPartition(self._topic, partition)
        key_parts, limit, v = self._key_parts, self._batch_size, _VARINTS
        batches = []
        parts: list[bytes] = []
        size, count = _HEADER_SIZE, 0
        for i in machines:
            value = bodies[i]
            tail = key_parts[i] + v[len(value)] + value + headers[i]
            record = _ATTRIBUTES_AND_TIMESTAMP_DELTA + v[count] + tail
            length = len(record)
            framed = length + len(v[length])
            if count and size + framed > limit:
                batches.append((b"".join(parts), count))
                parts, size, count = [], _HEADER_SIZE, 0
                record = _ATTRIBUTES_AND_TIMESTAMP_DELTA + v[0] + tail
                length = len(record)
                framed = length + len(v[length])
            parts.append(v[length])
            parts.append(record)
            size += framed
            count += 1
        if count:
            batches.append((b"".join(parts), count))
        if self._transaction is not None:  # as send() does; raises once the transaction failed
            self._transaction.maybe_add_partition_to_transaction(tp)
        accumulator = self._accumulator
        now = time.monotonic()
        accumulator._appends_in_progress.increment()
        try:
            with accumulator._tp_lock(tp):
                if accumulator._closed:
                    raise IllegalStateError("RecordAccumulator is closed")
                queue = accumulator._batches[tp]
                for data, records in batches:
                    builder = MemoryRecordsBuilder(2, self._compression, limit)
                    fill(builder, data, records, timestamp_ms)
                    batch = ProducerBatch(tp, builder, now=now)
                    batch.produce_future.add_callback(_on_batch, records, done)
                    queue.append(batch)
                    accumulator._incomplete.add(batch)
        finally:
            accumulator._appends_in_progress.decrement()
        return sum(records for _, records in batches)

    def wakeup(self) -> None:
        """Let the sender thread look at the new batches now (not at its next poll)."""
        self._sender.wakeup()


def largest_batch_bytes(
    max_body: int, simulation: bytes, failure_types: Iterable[bytes], max_seq_digits: int = 20
) -> int:
    """Bytes of a record batch that holds the largest record of the simulation alone."""
    longest_type = max(failure_types, key=len, default=b"")
    headers = [("seq", b"9" * max_seq_digits), ("simulation", simulation)]
    if longest_type:
        headers.append(("failure_type", longest_type))
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(b"k" * 8, b"x" * max_body, headers))


def fill(builder: Any, data: bytes, records: int, timestamp_ms: int) -> None:
    """Put ``records`` pre-encoded v2 records into an empty ``MemoryRecordsBuilder``, as its
    ``append`` would have, one timestamp for all."""
    inner = builder._builder
    inner._buffer += data
    inner._num_records = records
    inner._last_offset = records - 1
    inner._first_timestamp = timestamp_ms
    inner._max_timestamp = timestamp_ms
    builder._next_offset = records


def _on_batch(records: int, done: BatchDone, result: tuple[int, int, Any]) -> None:
    _, _, record_errors = result
    done(records, None if record_errors is None else record_errors(0))

"""Sending a cycle's records: metadata, each machine's partition, headers, backpressure.

* key = machine id, so a machine's readings stay in order on one partition; records carry an
  explicit partition, cached per machine with kafka-python's murmur2 (the Java client's
  choice), which spares a pure-Python murmur2 per record;
* headers: ``seq`` (per-machine sequence number = cycle), ``simulation`` (SIMULATION_NAME),
  ``failure_type`` while the machine is failing, ``skipped_cycles`` after a catch-up skip,
  ``health``/``rul_cycles``/``quality`` where a scenario labels the record;
* the cycle loop waits when more than KAFKA_MAX_PENDING_RECORDS are unacknowledged
  (kafka-python has no bounded buffer of its own); it never drops. Every wait ends at the stop
  flag and beats the loop's heartbeat, and the client is supervised meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial

from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.partitioner.default import murmur2

from producer.errors import BrokerError
from producer.kafka.batches import header_block
from producer.kafka.supervision import ClientSupervisor
from producer.runtime.stopping import StopFlag
from producer.sinks.protocol import OutgoingCycle

log = logging.getLogger(__name__)


def machine_partitions(keys: Sequence[bytes], partitions: Iterable[int]) -> list[int]:
    """The partition kafka-python's and Java's default partitioner pick for each key:
    ``partitions_sorted[(murmur2(key) & 0x7fffffff) % count]``."""
    ordered = sorted(partitions)
    return [ordered[(murmur2(key) & 0x7FFFFFFF) % len(ordered)] for key in keys]


class PartitionCache:
    """Each machine's partition for the topic's current partition set (recomputed when the
    set changes), grouped: the machines of each partition, in machine order."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        self._keys = keys
        self.partitions: frozenset[int] = frozenset()
        self.by_partition: list[tuple[int, list[int]]] = []

    def use(self, partitions: Iterable[int]) -> None:
        partitions = frozenset(partitions)
        if partitions and partitions != self.partitions:
            self.partitions = partitions
            by_partition: dict[int, list[int]] = {}
            for machine, partition in enumerate(machine_partitions(self._keys, partitions)):
                by_partition.setdefault(partition, []).append(machine)
            self.by_partition = sorted(by_partition.items())


class CycleSender:
    """Hands each cycle's records to the supervised client as whole batches."""

    def __init__(
        self,
        supervisor: ClientSupervisor,
        partitions: PartitionCache,
        *,
        topic: str,
        machines: int,
        simulation: bytes,
        failure_types: Sequence[bytes],
        max_pending: int,
        delivery_timeout: float,
        stop: StopFlag,
        heartbeat: Callable[[], None],
    ) -> None:
        self._supervisor = supervisor
        self._ledger = supervisor.ledger
        self._partitions = partitions
        self._topic = topic
        self._machines = machines
        self._simulation = simulation
        self._failure_types = failure_types
        self._max_pending = max_pending
        # records go to the client in slices of at most half the bound, each after a wait for
        # room: at most 1.5 times the bound is ever unacknowledged, however many machines a
        # partition has in a cycle
        self._slice = max(1, max_pending // 2)
        self._give_up_after = delivery_timeout
        self._stop = stop
        self._heartbeat = heartbeat
        self._metadata_missing_since: float | None = None

    def send(self, cycle: OutgoingCycle) -> None:
        """Partition by partition, each machine's records in cycle order on its partition."""
        self._supervisor.supervise()
        bodies = cycle.bodies
        total = len(bodies)
        if not total:
            return
        if not self._await_metadata():
            self._ledger.count_unsent(
                total,
                f"no metadata for topic {self._topic!r} for {self._give_up_after:g} s "
                "(broker unreachable)",
            )
            return
        headers = self._headers(cycle)
        first = cycle.first_row  # continuity: the bodies may start at a later row of the shard
        wanted = None
        if cycle.rows is not None:  # scattered rows (data-quality faults): placed at their rows
            bodies, headers = self._placed(cycle.rows, bodies, headers)
            wanted = set(cycle.rows)
        elif first:  # the batch writer indexes bodies and headers by the machine's row
            bodies = [b""] * first + list(bodies)
            headers = [b""] * first + headers
        timestamp_ms = int(time.time() * 1000)
        stop = first + total
        some_rows = first > 0 or stop < self._machines
        for partition, machines in self._partitions.by_partition:
            if wanted is not None:
                chosen = [i for i in machines if i in wanted]
            else:
                chosen = [i for i in machines if first <= i < stop] if some_rows else machines
            for start in range(0, len(chosen), self._slice):
                self._write(partition, chosen[start : start + self._slice], bodies, headers,
                            timestamp_ms)  # fmt: skip
        assert self._supervisor.writer is not None
        self._supervisor.writer.wakeup()
        self._supervisor.note_producer_id()

    def _write(
        self,
        partition: int,
        machines: list[int],
        bodies: Sequence[bytes],
        headers: Sequence[bytes],
        timestamp_ms: int,
    ) -> None:
        """Once there is room: the records of ``machines`` to ``partition``, counted as sent."""
        self._wait_for_room()
        writer, generation = self._supervisor.writer, self._supervisor.generation
        assert writer is not None
        count = len(machines)
        self._ledger.count_sent(generation, count)
        try:
            writer.write(
                partition, machines, bodies, headers,
                partial(self._ledger.batch_done, generation, sent_at=self._ledger.now()),
                timestamp_ms=timestamp_ms,
            )  # fmt: skip
        except Exception as exc:  # the client was closed under us: these never left
            self._ledger.batch_done(generation, count, exc)
            raise

    def _placed(
        self, rows: Sequence[int], bodies: Sequence[bytes], headers: Sequence[bytes]
    ) -> tuple[list[bytes], list[bytes]]:
        """``bodies`` and ``headers`` moved to their ``rows`` of the shard."""
        placed_bodies = [b""] * self._machines
        placed_headers = [b""] * self._machines
        for row, body, header in zip(rows, bodies, headers, strict=True):
            placed_bodies[row] = body
            placed_headers[row] = header
        return placed_bodies, placed_headers

    def _headers(self, cycle: OutgoingCycle) -> list[bytes]:
        """Each machine's encoded headers; one block per distinct set, encoded once."""
        healthy = [("seq", str(cycle.seq).encode("ascii")), ("simulation", self._simulation)]
        if cycle.skipped:  # continuity: this machine's previous record is seq - 1 - skipped
            healthy.append(("skipped_cycles", str(cycle.skipped).encode("ascii")))
        healthy_block = header_block(healthy)
        failing_blocks = [
            header_block([*healthy, ("failure_type", t)]) for t in self._failure_types
        ]
        blocks = [
            failing_blocks[kind] if failing else healthy_block
            for failing, kind in zip(cycle.failing, cycle.failure_type, strict=True)
        ]
        if cycle.labels is not None:  # scenarios: the few labelled records get their own
            for row, extra in enumerate(cycle.labels):
                if extra:
                    failing = cycle.failing[row]
                    base = [
                        *healthy,
                        ("failure_type", self._failure_types[cycle.failure_type[row]]),
                    ]
                    blocks[row] = header_block([*(base if failing else healthy), *extra])
        return blocks

    def _wait_for_room(self) -> None:
        """Block while too many records are unacknowledged (backpressure, never drop), unless
        the process is stopping: then the flush at shutdown does the waiting, within its
        bounded time. The client is supervised meanwhile, so the wait cannot last forever."""
        stats, limit = self._ledger.stats, self._max_pending
        if stats.pending <= limit:
            return
        # kafka-python's sender thread sleeps while its accumulator was empty when it last
        # looked; the batches appended since are only sent once it is woken.
        writer = self._supervisor.writer
        assert writer is not None
        writer.wakeup()
        started = time.monotonic()
        last_check = started
        warned = False
        while stats.pending > limit // 2 and not self._stop.is_set():
            self._stop.wait(0.005)
            now = time.monotonic()
            if now - last_check >= 1.0:
                last_check = now
                self._heartbeat()
                self._supervisor.supervise()
            if not warned and now - started > 1.0:
                log.warning(
                    "%d records wait for acknowledgement; the cycle loop is paused until the "
                    "broker catches up",
                    stats.pending,
                )
                warned = True

    def _await_metadata(self) -> bool:
        """Wait (at most ``max_block_ms`` per attempt, looking at the stop flag) until the
        client knows the topic's partitions; False once they have been missing for the
        delivery timeout, or when stopping without them. kafka-python answers from its cache
        when it has the topic (no wait); a replaced client or a deleted topic has to ask the
        broker."""
        while True:
            try:
                partitions = self._supervisor.producer.partitions_for(self._topic)
            except KafkaTimeoutError:
                partitions = None
            except KafkaError as exc:  # authorization and the like: the target is unusable
                raise BrokerError(
                    f"Kafka refused metadata of topic {self._topic!r}: {type(exc).__name__}: "
                    f"{exc}; check the topic and the user's ACLs"
                ) from None
            now = time.monotonic()
            if partitions:
                self._partitions.use(partitions)
                if self._metadata_missing_since is not None:
                    log.info("metadata of topic %r is back", self._topic)
                self._metadata_missing_since = None
                return True
            if self._metadata_missing_since is None:
                self._metadata_missing_since = now
                log.warning("waiting for Kafka metadata of topic %r", self._topic)
            self._heartbeat()
            if self._stop.is_set() or now - self._metadata_missing_since > self._give_up_after:
                return False

"""Counting what a replaced client wrote from the broker's producer state (DescribeProducers)."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest
from kafka.admin._transactions import PartitionProducerState, ProducerState
from kafka.errors import KafkaConnectionError
from kafka.structs import TopicPartition

from producer.kafka.delivery_audit import records_written

pytestmark = pytest.mark.unit


class Admin(NamedTuple):
    states: dict[TopicPartition, PartitionProducerState]

    def describe_producers(self, partitions: list[TopicPartition]) -> Any:
        return {tp: self.states[tp] for tp in partitions}


def state(*producers: tuple[int, int, int]) -> PartitionProducerState:
    return PartitionProducerState(
        [ProducerState(pid, epoch, last_seq, 0, -1, -1) for pid, epoch, last_seq in producers]
    )


def test_the_sequences_of_the_clients_producer_ids_are_summed() -> None:
    admin = Admin({
        TopicPartition("t", 0): state((7, 0, 99), (8, 0, 4), (9, 0, 1000)),  # 9: someone else
        TopicPartition("t", 1): state((7, 0, 49)),
        TopicPartition("t", 2): state(),
    })  # fmt: skip
    assert records_written(admin, "t", [0, 1, 2], {(7, 0), (8, 0)}) == 100 + 5 + 50


def test_an_other_epoch_of_the_same_producer_id_does_not_count() -> None:
    admin = Admin({TopicPartition("t", 0): state((7, 1, 9))})
    assert records_written(admin, "t", [0], {(7, 0)}) == 0


def test_an_epoch_bump_within_one_client_cannot_be_counted() -> None:
    admin = Admin({TopicPartition("t", 0): state((7, 1, 9))})
    assert records_written(admin, "t", [0], {(7, 0), (7, 1)}) is None


def test_a_broker_that_does_not_answer_cannot_be_counted() -> None:
    class Down:
        def describe_producers(self, partitions: list[TopicPartition]) -> Any:
            raise KafkaConnectionError("down")

    assert records_written(Down(), "t", [0], {(7, 0)}) is None

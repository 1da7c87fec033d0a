"""Exactly-once error classes (``producer/kafka/transactions.py``): fenced within the
transaction timeout is fatal, fenced after it is the broker's abort and is taken over."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kafka import errors as kafka_errors

from producer.errors import IntervalAbortedError, TransactionFencedError
from producer.kafka.transactions import Transactions
from producer.runtime.stopping import StopFlag

pytestmark = pytest.mark.unit


def transactions(timeout: float) -> Transactions:
    return Transactions(
        "sensorsim/t-state/p/a-b",
        init_timeout=1.0,
        stop=StopFlag(),
        heartbeat=lambda: None,
        transaction_timeout=timeout,
    )


def failure(timeout: float, error: BaseException) -> BaseException:
    producer = SimpleNamespace(_transaction_manager=SimpleNamespace(last_error=None))
    return transactions(timeout).failure(producer, error)


@pytest.mark.parametrize(
    "error", [kafka_errors.ProducerFencedError(), kafka_errors.InvalidProducerEpochError()]
)
def test_fenced_within_the_transaction_timeout_is_fatal(error: BaseException) -> None:
    result = failure(60.0, error)
    assert isinstance(result, TransactionFencedError)
    assert "another producer of the same machines" in str(result)


@pytest.mark.parametrize(
    "error", [kafka_errors.ProducerFencedError(), kafka_errors.InvalidProducerEpochError()]
)
def test_fenced_after_the_transaction_timeout_aborts_the_interval(error: BaseException) -> None:
    result = failure(-1.0, error)  # the transaction began longer ago than the timeout
    assert isinstance(result, IntervalAbortedError)
    assert "the broker aborted it" in str(result)


def test_not_authorised_is_fatal_however_old_the_transaction() -> None:
    error = kafka_errors.TransactionalIdAuthorizationFailedError()
    assert isinstance(failure(-1.0, error), TransactionFencedError)


def test_other_errors_abort_the_interval() -> None:
    result = failure(60.0, kafka_errors.KafkaTimeoutError())
    assert isinstance(result, IntervalAbortedError)

"""The kafka-python internals that ``producer/kafka/client_internals.py`` uses still exist.

kafka-python is pinned to a version range in pyproject.toml; an upgrade that renames or removes
one of these fails here, loudly, instead of breaking shutdown or client replacement at run time.
Their behaviour against a real broker is covered by tests/kafka/test_producer_faults.py.
"""

from __future__ import annotations

import inspect

import pytest
from kafka import KafkaProducer
from kafka.producer.sender import Sender
from kafka.producer.transaction_manager import TransactionalRequestResult, TransactionManager

pytestmark = pytest.mark.unit


def test_the_producer_keeps_its_sender_transaction_manager_and_atexit_hook() -> None:
    source = inspect.getsource(KafkaProducer.__init__)
    assert "self._sender = Sender(" in source
    assert "self._transaction_manager = " in source
    assert "atexit.register(self._cleanup)" in source
    assert callable(KafkaProducer._unregister_cleanup)
    close = inspect.getsource(KafkaProducer.close)
    assert "if not hasattr(self, '_closed') or self._closed:" in close  # closed = no-op


def test_the_sender_can_be_closed_gracefully_or_by_force() -> None:
    for name in ("initiate_close", "force_close", "join", "is_alive"):
        assert callable(getattr(Sender, name)), name
    run = inspect.getsource(Sender.run)
    assert "abort_incomplete_batches" in run  # force_close fails every incomplete batch


def test_the_transaction_manager_reports_fatal_errors_and_the_producer_id() -> None:
    manager = TransactionManager()
    assert manager.has_fatal_error() is False
    assert manager.producer_id_and_epoch.producer_id == -1
    assert manager.producer_id_and_epoch.epoch == -1


def test_the_producer_records_the_negotiated_api_version() -> None:
    source = inspect.getsource(KafkaProducer.__init__)
    assert "self.config['api_version'] = manager.broker_version" in source
    assert "if manager.broker_version_data is None:" in source  # a known version skips bootstrap


def test_the_transaction_manager_offers_what_exactly_once_uses() -> None:
    """``producer/kafka/transactions.py`` and ``batches.py``: commit and abort with a waited-on
    result, the state by name, the error, and the partition registration ``send()`` does."""
    manager = TransactionManager(transactional_id="t", transaction_timeout_ms=60_000)
    assert manager._current_state.name == "UNINITIALIZED"
    assert manager.last_error is None
    for name in ("begin_commit", "begin_abort", "has_abortable_error"):
        assert callable(getattr(manager, name)), name
    assert "maybe_add_partition_to_transaction(tp)" in inspect.getsource(KafkaProducer.send)
    result = TransactionalRequestResult()
    assert not result.is_done
    assert result.exception is None
    assert result._latch.wait(0) is False
    result.done(KeyError("x"))
    assert result.is_done
    assert isinstance(result.exception, KeyError)

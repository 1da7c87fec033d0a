"""Exactly-once delivery: the data producer is transactional, and each checkpoint interval is
one transaction holding the interval's records and the checkpoint records of its machines.

* ``transactional_id`` follows the machines: ``sensorsim/<state topic>/<simulation prefix>/
  <first machine>-<last machine>`` of the shard's range. A producer of the same range (the same
  shard plan) fences the previous one in ``init_transactions``, which aborts its open
  transaction; a re-sharded plan has other ids, and the operator stops every old producer
  before a new one starts (docs/continuity.md).
* A commit sends the checkpoint records and ends the transaction within a time limit
  (kafka-python's ``commit_transaction`` waits without one): done, the next transaction begins
  at once.
* Errors by class: fenced or not authorised is fatal (``TransactionFencedError``, exit code 3); any
  other failure (an abortable error, a commit that did not complete in time) aborts the
  transaction, or, when the abort cannot complete either, replaces the client (whose
  ``init_transactions`` aborts it), and raises ``IntervalAbortedError``: the producer replays from
  the last committed checkpoint, byte for byte.

kafka-python internals used here (3.0.x): the transaction manager's ``begin_commit`` /
``begin_abort`` results (to wait with a limit; their ``_latch``), ``has_fatal_error``,
``last_error``, ``_current_state`` and the sender's ``wakeup``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from kafka import errors as kafka_errors

from producer.errors import IntervalAbortedError, TransactionFencedError
from producer.runtime.stopping import StopFlag

log = logging.getLogger(__name__)

ABORT_SECONDS = 5.0
"""How long an abort may take before the client is replaced instead."""

_FENCED = (kafka_errors.ProducerFencedError, kafka_errors.InvalidProducerEpochError)
"""A newer epoch of the transactional id exists: another producer's ``init_transactions``, or
the broker's abort of a transaction older than ``transaction.timeout.ms``."""
_FATAL = (
    *_FENCED,
    kafka_errors.TransactionalIdAuthorizationFailedError,
    kafka_errors.ClusterAuthorizationFailedError,
)


def transactional_id(state_topic: str, prefix: str, machine_ids: Sequence[str]) -> str:
    """The id of the producer of these machines (a shard's contiguous range)."""
    return f"sensorsim/{state_topic}/{prefix}/{machine_ids[0]}-{machine_ids[-1]}"


def is_fatal(error: BaseException) -> bool:
    return isinstance(error, _FATAL)


def fenced(error: BaseException, transactional: str) -> TransactionFencedError:
    return TransactionFencedError(
        f"transactional id {transactional!r}: {type(error).__name__}: {error}; another producer "
        "of the same machines is running (or the user lacks Write on the transactional id): "
        "stop it, or check the ACLs"
    )


class Transactions:
    """Begins, commits and aborts the data producer's transactions."""

    def __init__(
        self,
        transactional: str,
        *,
        init_timeout: float,
        stop: StopFlag,
        heartbeat: Callable[[], None],
        transaction_timeout: float = float("inf"),
    ) -> None:
        """``init_timeout``: seconds ``init_transactions`` may take at start (KAFKA_CONNECT_
        TIMEOUT_MS); after a replacement it waits for the broker as long as it takes, unless
        the process is stopping. ``transaction_timeout``: seconds (transaction.timeout.ms)."""
        self.transactional = transactional
        self._init_timeout = init_timeout
        self._transaction_timeout = transaction_timeout
        self._began = time.monotonic()
        self._stop = stop
        self._heartbeat = heartbeat

    def open(self, producer: Any, *, patient: bool = False) -> None:
        """``init_transactions`` (fencing the previous producer of these machines and
        aborting its open transaction), then the first transaction."""
        deadline = time.monotonic() + self._init_timeout
        while True:
            try:
                producer.init_transactions()
                break
            except kafka_errors.KafkaTimeoutError:
                self._heartbeat()
                if self._stop.is_set() or (not patient and time.monotonic() > deadline):
                    raise TransactionFencedError(
                        f"transactional id {self.transactional!r}: init_transactions did not "
                        "complete in time (is the transaction coordinator available?)"
                    ) from None
            except kafka_errors.KafkaError as exc:
                raise fenced(exc, self.transactional) from None
        self._begin(producer)
        log.info("exactly-once: transactional id %r", self.transactional)

    def commit(
        self,
        producer: Any,
        topic: str,
        partition: int,
        records: Sequence[tuple[bytes, bytes]],
        timeout: float,
    ) -> None:
        """Send ``records`` (the checkpoint) and commit the transaction with everything sent
        since it began; then begin the next. Raises ``TransactionFencedError`` (fatal), or
        ``IntervalAbortedError`` when the transaction failed or did not commit within ``timeout``
        (the caller recovers first: ``recover``)."""
        manager = producer._transaction_manager
        try:
            for key, value in records:
                producer.send(topic, key=key, value=value, partition=partition)
            result = manager.begin_commit()
        except kafka_errors.KafkaError as exc:
            raise self._failure(manager, exc) from None
        producer._sender.wakeup()
        if not self._wait(result, timeout):
            raise IntervalAbortedError(f"the commit did not complete within {timeout:g} s")
        if result.exception is not None:
            raise self._failure(manager, result.exception)
        self._begin(producer)

    def abort(self, producer: Any) -> bool:
        """Abort the transaction in progress and begin the next; False if that could not be
        done (a fatal state, or no answer within ``ABORT_SECONDS``): replace the client."""
        manager = producer._transaction_manager
        if manager.has_fatal_error():
            return False
        state = manager._current_state.name
        if state not in {"READY", "IN_TRANSACTION", "ABORTABLE_ERROR"}:
            return False  # e.g. a commit that did not complete: only a new client ends it
        try:
            if state != "READY":
                result = manager.begin_abort()
                producer._sender.wakeup()
                if not self._wait(result, ABORT_SECONDS) or result.exception is not None:
                    return False
            self._begin(producer)
        except kafka_errors.KafkaError:
            log.debug("abort failed", exc_info=True)
            return False
        return True

    def failure(self, producer: Any, error: BaseException) -> BaseException:
        """The exception that ends the interval after ``error`` (fatal or abortable)."""
        return self._failure(producer._transaction_manager, error)

    def _failure(self, manager: Any, error: BaseException) -> BaseException:
        cause = manager.last_error or error
        if is_fatal(cause) or is_fatal(error):
            reason = cause if is_fatal(cause) else error
            if isinstance(reason, _FENCED) and self.outlived_timeout():
                return IntervalAbortedError(
                    f"{type(reason).__name__} after the transaction stayed open longer than "
                    f"transaction.timeout.ms ({self._transaction_timeout:g} s): the broker "
                    "aborted it"
                )
            return fenced(reason, self.transactional)
        return IntervalAbortedError(f"{type(cause).__name__}: {cause}")

    def outlived_timeout(self) -> bool:
        """The transaction in progress began longer than transaction.timeout.ms ago, so the
        broker may have aborted it and bumped the epoch itself: being fenced then is no sign
        of another producer, and a new client (``init_transactions``) may take over. A
        producer fenced within the timeout stops instead, so two producers of one range never
        take the id from each other in turn: the one that re-initialises after a long stall
        fences the other within its timeout, which stops."""
        return time.monotonic() - self._began > self._transaction_timeout

    def _begin(self, producer: Any) -> None:
        producer.begin_transaction()
        self._began = time.monotonic()

    def _wait(self, result: Any, timeout: float) -> bool:
        """Wait for a transactional request's result, beating the heartbeat every second."""
        deadline = time.monotonic() + timeout
        while not result.is_done:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            _wait(result, left)
            self._heartbeat()
        return True


def _wait(result: Any, seconds: float) -> None:
    """Block up to ``seconds`` (at most 1) on the result's latch, without raising its error."""
    result._latch.wait(min(seconds, 1.0))

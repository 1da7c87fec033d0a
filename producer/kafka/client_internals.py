"""The few kafka-python internals the sink relies on, in one place (kafka-python 3.0.x).

``KafkaProducer.close(timeout)`` first calls ``flush(timeout)``, which waits up to ``timeout``
for *each* incomplete batch in turn and raises ``KafkaTimeoutError`` (or ``UnknownError`` for
a batch split after MESSAGE_TOO_LARGE) instead of closing; the atexit hook it registers does the
same at interpreter exit and prints a traceback. A producer that cannot deliver therefore cannot
be closed through the public API within a bounded time. These functions close it with bounded
waits through the sender thread's own ``initiate_close`` / ``force_close`` (which fail every
incomplete batch, so every future resolves) and take the atexit hook away.

Every name used here is checked by ``tests/unit/test_kafka_client_conformance.py`` against the
installed kafka-python, so an upgrade that changes them fails loudly; the version range is
pinned in pyproject.toml.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def api_version(producer: Any) -> tuple[int, ...]:
    """The broker API version the producer negotiated at bootstrap."""
    return tuple(producer.config["api_version"])


def has_fatal_error(producer: Any) -> bool:
    """The idempotent producer's state is fatally broken: every send will fail."""
    manager = producer._transaction_manager
    return manager is not None and bool(manager.has_fatal_error())


def producer_id_and_epoch(producer: Any) -> tuple[int, int] | None:
    """The broker-assigned (producer id, epoch) of an idempotent producer, None before it has
    one (or without idempotence)."""
    manager = producer._transaction_manager
    if manager is None:
        return None
    current = manager.producer_id_and_epoch
    pid, epoch = int(current.producer_id), int(current.epoch)
    return (pid, epoch) if pid >= 0 else None


def _forget_atexit(producer: Any) -> None:
    producer._unregister_cleanup()


def close_gracefully(producer: Any, timeout: float) -> bool:
    """Send what is buffered (ignoring linger) and stop, waiting up to ``timeout`` seconds for
    the sender thread; if it is still busy then, fail what is left (``force_close``).

    True if everything buffered was sent and answered in time.
    """
    _forget_atexit(producer)
    sender = producer._sender
    sender.initiate_close()
    sender.join(max(0.0, timeout))
    done = not sender.is_alive()
    if not done:
        force_close(producer, timeout=1.0)
    producer._closed = True
    return done


def force_close(producer: Any, timeout: float) -> None:
    """Stop at once: every incomplete batch fails (its futures' errbacks run), connections
    close. Waits up to ``timeout`` for the sender thread; never raises."""
    _forget_atexit(producer)
    sender = producer._sender
    try:
        sender.force_close()
        sender.join(max(0.0, timeout))
    except Exception:  # closing a broken client must not break the caller
        log.debug("force-closing the Kafka producer", exc_info=True)
    if sender.is_alive():
        log.warning("the old Kafka client's I/O thread did not stop within %.0f s", timeout)
    producer._closed = True

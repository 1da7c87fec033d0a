"""JSON lines on standard output: the sink for trying sensorsim without a broker."""

from __future__ import annotations

import sys
from typing import BinaryIO

from producer.sinks.protocol import DeliveryStats, OutgoingCycle


class StdoutSink:
    """Writes one body per line; a closed pipe (``| head``) stops the run quietly."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer
        self.stats = DeliveryStats()
        self._closed_pipe = False

    def start(self) -> None:
        return None

    def send_cycle(self, cycle: OutgoingCycle) -> None:
        if self._closed_pipe or not cycle.bodies:
            return
        try:
            self._stream.write(b"\n".join(cycle.bodies) + b"\n")
            self._stream.flush()
        except BrokenPipeError:
            self._closed_pipe = True
            return
        count = len(cycle.bodies)
        self.stats.sent += count
        self.stats.delivered += count

    def delivering(self) -> bool:
        return not self._closed_pipe

    @property
    def accepting(self) -> bool:
        return not self._closed_pipe

    def wait_delivered(self, timeout: float) -> bool:
        return True

    def flush(self, timeout: float) -> bool:
        return True

    def close(self) -> None:
        return None

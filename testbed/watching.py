"""Every change of a kind of object, in the API server's order, from ``kubectl get -w``.

A watch delivers each change of the watched objects in resourceVersion order, so a recording of
it shows what existed at the same time without any polling gap (a poll may miss an object that
lived between two looks).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import IO, Any

from testbed import tools
from testbed.cluster import KubeCluster


@dataclass(frozen=True, slots=True)
class Change:
    """One watch event: ADDED, MODIFIED or DELETED, the object after it, when it arrived."""

    type: str
    object: dict[str, Any]
    arrived: float  # time.time()


class Watch:
    """Records the changes of ``kind`` objects (matching ``selector`` when given) in
    ``namespace`` from its creation (the objects then present come first, as ADDED) to
    ``stop()``."""

    def __init__(
        self, cluster: KubeCluster, namespace: str, kind: str, selector: str | None = None
    ) -> None:
        self.changes: list[Change] = []
        self._process = subprocess.Popen(
            [
                str(tools.tool_path("kubectl")),
                "-n",
                namespace,
                "get",
                kind,
                *(("-l", selector) if selector else ()),
                "--watch",
                "--output-watch-events",
                "-o",
                "json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=cluster.env,
        )
        self._lock = threading.Lock()
        assert self._process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self._process.stdout,))
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        decoder = json.JSONDecoder()
        buffer = ""
        for line in stream:
            buffer += line
            while True:
                buffer = buffer.lstrip()
                try:
                    event, end = decoder.raw_decode(buffer)
                except json.JSONDecodeError:
                    break  # incomplete: wait for more lines
                buffer = buffer[end:]
                with self._lock:
                    self.changes.append(Change(event["type"], event["object"], time.time()))

    def snapshot(self) -> list[Change]:
        with self._lock:
            return list(self.changes)

    def stop(self) -> list[Change]:
        self._process.terminate()
        self._process.wait(timeout=10)
        self._reader.join(timeout=10)
        return self.snapshot()

"""One HTTP port for probes and metrics: ``/healthz``, ``/readyz``, ``/metrics``.

A stdlib ``ThreadingHTTPServer`` on a daemon thread; the handlers only read state.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)


class HealthServer:
    """Serves liveness, readiness and metrics until ``stop()``."""

    def __init__(
        self,
        port: int,
        *,
        live: Callable[[], bool],
        ready: Callable[[], bool],
        metrics: Callable[[], bytes],
        host: str = "0.0.0.0",  # noqa: S104 - probes and scrapes come from outside the pod
    ) -> None:
        # path -> (check, body when it passes, body when it fails)
        probes = {
            "/healthz": (live, b"ok\n", b"not live\n"),
            "/readyz": (ready, b"ready\n", b"not ready\n"),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                probe = probes.get(path)
                if probe is not None:
                    check, yes, no = probe
                    ok = check()
                    status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
                    self._reply(status, yes if ok else no, "text/plain")
                elif path == "/metrics":
                    self._reply(HTTPStatus.OK, metrics(), CONTENT_TYPE_LATEST)
                else:
                    self._reply(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

            def _reply(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http: " + format, *args)

        self.live = live
        self.ready = ready
        self.metrics = metrics
        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

"""`python -m sensorsim_operator` as a local process against a test control plane, the way the
e2e tests, the chart's RBAC tests and the operator benchmark run it."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from testbed import procs, tools
from testbed.polling import wait_until


class OperatorProcess:
    """One operator process; ``start()`` waits for its /healthz, ``stop()`` sends SIGTERM.

    ``env`` is the base environment (a cluster's ``env``, or one with another KUBECONFIG);
    the ports are chosen here and ``settings`` add or override operator variables.
    """

    def __init__(self, env: dict[str, str], log_file: Path, **settings: str) -> None:
        self.base_env = env
        self.log_file = log_file
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None
        self.health_port = 0
        self.metrics_port = 0

    def start(self, timeout: float = 60) -> None:
        self.health_port, self.metrics_port = procs.free_port(), procs.free_port()
        env = {
            **self.base_env,
            "OPERATOR_HEALTH_PORT": str(self.health_port),
            "OPERATOR_METRICS_PORT": str(self.metrics_port),
            "OPERATOR_LOG_FORMAT": "plain",
            **self.settings,
        }
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sensorsim_operator"],
                cwd=tools.REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(
            self._healthy,
            timeout=timeout,
            message="the operator's /healthz",
            process=self.process,
            log_file=self.log_file,
        )

    def _healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        total = 0.0
        for line in text.splitlines():
            if not line.startswith((name + "{", name + " ")):
                continue
            sample, value = line.rsplit(" ", 1)
            if all(f'{k}="{v}"' in sample for k, v in labels.items()):
                total += float(value)
        return total

    def __enter__(self) -> OperatorProcess:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

"""A real Prometheus server for the tests: a configuration and rule files in a work directory,
the pinned binary (``tools.PROMETHEUS``) on a free port, and its HTTP API."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbed import procs, tools
from testbed.polling import wait_until

Series = dict[str, Any]
"""One element of an instant query's ``result``: ``{"metric": {...}, "value": [t, "v"]}``."""


class PrometheusApiError(RuntimeError):
    """Prometheus answered a request with an error (bad PromQL, unknown endpoint)."""


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the pinned promtool (``check rules``, ``test rules``, ...); the caller checks the
    exit code and reads its output."""
    return subprocess.run(
        [str(tools.tool_path("promtool")), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@dataclass
class PrometheusServer:
    """One Prometheus in ``workdir``, evaluating ``rule_groups`` (the ``groups`` of a rules
    file) and scraping with ``scrape_configs`` every ``interval`` (also the rules' evaluation
    interval)."""

    workdir: Path
    scrape_configs: list[dict[str, Any]]
    rule_groups: list[dict[str, Any]]
    interval: str = "1s"
    port: int = field(default_factory=procs.free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.workdir / "prometheus.log"

    @property
    def rules_file(self) -> Path:
        return self.workdir / "rules.yaml"

    @property
    def config_file(self) -> Path:
        return self.workdir / "prometheus.yaml"

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.rules_file.write_text(yaml.safe_dump({"groups": self.rule_groups}, sort_keys=False))
        config = {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "rule_files": [str(self.rules_file)],
            "scrape_configs": self.scrape_configs,
        }
        self.config_file.write_text(yaml.safe_dump(config, sort_keys=False))

    def start(self, timeout: float = 60.0) -> None:
        self.write_config()
        cmd = [
            str(tools.tool_path("prometheus")),
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.process = procs.start_detached(cmd, self.log_file)
        wait_until(
            lambda: procs.http_ok(f"{self.url}/-/ready"),
            timeout=timeout,
            message=f"Prometheus on {self.url}",
            process=self.process,
            log_file=self.log_file,
        )

    def stop(self) -> None:
        if self.process is not None:
            procs.stop_pid(self.process.pid)
            self.process.wait(timeout=10)
            self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of ``GET /api/v1/<path>?<params>``; raises on an error answer."""
        query = urllib.parse.urlencode(params)
        request = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = json.loads(error.read() or b"{}")
        if body.get("status") != "success":
            raise PrometheusApiError(f"{path} {params}: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str) -> list[Series]:
        """An instant query's series (an error for anything but a vector result)."""
        data = self.api("query", query=expr)
        if data["resultType"] != "vector":
            raise PrometheusApiError(f"{expr}: a {data['resultType']}, not a vector")
        return list(data["result"])

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets", state="active")["activeTargets"])

    def rules(self) -> list[dict[str, Any]]:
        """Every rule of every group, as ``/api/v1/rules`` reports it (health, state, alerts)."""
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]

    def alerts(self) -> list[dict[str, Any]]:
        """The active (pending or firing) alerts."""
        return list(self.api("alerts")["alerts"])

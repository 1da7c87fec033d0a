"""`make kafka-up`/`kafka-down` and `make cluster-up`/`cluster-down` (python -m testbed)
work as documented: the last line gives the address, the service answers, and down leaves no
process and no state behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from testbed import procs, tools

REPO = Path(__file__).resolve().parents[2]


def infra(command: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SENSORSIM_STATE": str(state), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "testbed", command],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def read_pids(files: list[Path]) -> list[int]:
    return [int(path.read_text()) for path in files]


@pytest.mark.kafka
def test_kafka_up_prints_the_bootstrap_address_last_and_down_stops_it(tmp_path: Path) -> None:
    up = infra("kafka-up", tmp_path)
    try:
        assert up.returncode == 0, up.stderr
        last = up.stdout.strip().splitlines()[-1]
        assert last.startswith("KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:")
        bootstrap = last.partition("=")[2]
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        assert isinstance(admin.list_topics(), list)
        admin.close()
        pids = read_pids([tmp_path / "kafka" / "broker.pid"])
        assert pids
        assert all(procs.pid_alive(pid) for pid in pids)
        assert (tmp_path / "kafka" / "broker.log").stat().st_size > 0  # output went to the log
    finally:
        down = infra("kafka-down", tmp_path)
    assert down.returncode == 0, down.stderr
    assert not any(procs.pid_alive(pid) for pid in pids)
    assert not (tmp_path / "kafka").exists()


@pytest.mark.k8s
def test_cluster_up_prints_the_kubeconfig_last_and_down_stops_it(tmp_path: Path) -> None:
    up = infra("cluster-up", tmp_path)
    try:
        assert up.returncode == 0, up.stderr
        last = up.stdout.strip().splitlines()[-1]
        assert last.startswith("KUBECONFIG=")
        kubeconfig = last.partition("=")[2]
        nodes = subprocess.run(
            [str(tools.tool_path("kubectl")), "--kubeconfig", kubeconfig, "get", "nodes",
             "-o", "json"],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        [node] = json.loads(nodes.stdout)["items"]
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready[0]["status"] == "True"
        pids = read_pids(sorted((tmp_path / "cluster" / "pids").iterdir()))
        assert len(pids) == 5  # etcd, apiserver, controller-manager, scheduler, kwok
        assert all(procs.pid_alive(pid) for pid in pids)
    finally:
        down = infra("cluster-down", tmp_path)
    assert down.returncode == 0, down.stderr
    assert not any(procs.pid_alive(pid) for pid in pids)
    assert not (tmp_path / "cluster").exists()

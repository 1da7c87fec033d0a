"""Command line for people and `make`: install tools, start and stop the broker and cluster.

python -m testbed tools          build/reuse the pinned tools, print their versions
python -m testbed kafka-up       start a broker; last line KAFKA_BOOTSTRAP_SERVERS=...
python -m testbed kafka-down     stop it and remove its data
python -m testbed cluster-up     start a control plane; last line KUBECONFIG=...
python -m testbed cluster-down   stop it and remove its state
python -m testbed image          build the Dockerfile with podman; last line IMAGE=...
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from testbed import cluster, containers, kafka, procs, tools
from testbed.polling import WaitTimeoutError

STATE_DIR = Path(os.environ.get("SENSORSIM_STATE", tools.REPO_ROOT / ".infra"))
KAFKA_DIR = STATE_DIR / "kafka"
CLUSTER_DIR = STATE_DIR / "cluster"
DEFAULT_KAFKA_PORT = 9092  # the producer's default bootstrap address is localhost:9092


def _tools() -> None:
    started = time.monotonic()
    tools.install_all()
    for line in tools.version_report():
        print(line)
    print(f"tools ready in {time.monotonic() - started:.1f}s (cache {tools.cache_dir()})")


def _kafka_up() -> None:
    tools.install(tools.KAFKA)
    broker = kafka.KafkaBroker(KAFKA_DIR)
    if broker.pid_file.exists() and procs.pid_alive(int(broker.pid_file.read_text())):
        sys.exit(f"a broker is already running (pid file {broker.pid_file}); `make kafka-down`")
    if procs.port_is_free(DEFAULT_KAFKA_PORT):
        broker.port = DEFAULT_KAFKA_PORT
    started = time.monotonic()
    broker.destroy()
    broker.start()
    print(f"Kafka {tools.versions()['KAFKA_VERSION']} ready in {time.monotonic() - started:.1f}s")
    print(f"log: {broker.log_file}")
    print(f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap}")


def _kafka_down() -> None:
    kafka.KafkaBroker(KAFKA_DIR).destroy()
    print("Kafka stopped and its data removed")


def _cluster_up() -> None:
    for tool in tools.GO_TOOLS:
        tools.install(tool)
    if (CLUSTER_DIR / "pids" / "kube-apiserver").exists():
        sys.exit(f"a cluster is already running (state in {CLUSTER_DIR}); `make cluster-down`")
    started = time.monotonic()
    control_plane = cluster.KubeCluster(CLUSTER_DIR)
    control_plane.start()
    print(f"control plane ready in {time.monotonic() - started:.1f}s")
    print(f"logs: {CLUSTER_DIR / 'logs'}")
    print(f"KUBECONFIG={control_plane.kubeconfig}")


def _cluster_down() -> None:
    if (CLUSTER_DIR / "ports.json").exists():
        cluster.from_workdir(CLUSTER_DIR).destroy()
    print("control plane stopped and its state removed")


def _image() -> None:
    started = time.monotonic()
    built = containers.build_image()
    for line in containers.image_report(built.pinned):
        print(line)
    print(f"also tagged {built.pinned} (this build exactly)")
    print(f"image ready in {time.monotonic() - started:.1f}s (base: see README, Container image)")
    print(f"IMAGE={built.tag}")


COMMANDS = {
    "tools": _tools,
    "kafka-up": _kafka_up,
    "kafka-down": _kafka_down,
    "cluster-up": _cluster_up,
    "cluster-down": _cluster_down,
    "image": _image,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m testbed", description=__doc__)
    parser.add_argument("command", choices=sorted(COMMANDS))
    args = parser.parse_args()
    try:
        COMMANDS[args.command]()
    except (tools.ToolError, RuntimeError, WaitTimeoutError) as error:
        sys.exit(f"{args.command} failed: {error}")


if __name__ == "__main__":
    main()

"""`make run`: a real broker, a small fleet for a few seconds, and a summary of the topic.

Starts a throw-away Kafka broker, runs `python -m producer` against it (20 machines, 5 cycles
per second, 6 seconds), reads the topic back and prints what arrived, then stops the broker.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from kafka import KafkaConsumer

from testbed import tools
from testbed.kafka import KafkaBroker

TOPIC = "sensor-data"
FLEET = {
    "NUM_MACHINES": "20",
    "SIMULATION_INTERVAL_MS": "200",
    "DURATION_SECONDS": "6",
    "FAILURE_PROBABILITY": "0.02",
    "SIMULATION_NAME": "demo",
    "SIMULATION_SEED": "7",
    "KAFKA_CREATE_TOPIC": "true",
    "KAFKA_TOPIC_PARTITIONS": "3",
    "HTTP_PORT": "0",
}


def summarise(bootstrap: str) -> None:
    consumer = KafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    per_machine: collections.Counter[str] = collections.Counter()
    failing: collections.Counter[str] = collections.Counter()
    failure_types: collections.Counter[str] = collections.Counter()
    sample = None
    for record in consumer:
        body = json.loads(record.value)
        per_machine[body["machine_id"]] += 1
        headers = {key: value.decode() for key, value in record.headers}
        if body["readings"]["has_failure"]:
            failing[body["machine_id"]] += 1
            failure_types[headers.get("failure_type", "?")] += 1
            sample = sample or body  # show a record of a machine in a failure episode
    consumer.close()
    total = sum(per_machine.values())
    print(f"\n== topic {TOPIC!r} on {bootstrap}")
    print(f"records: {total} from {len(per_machine)} machines")
    print(f"records during failures: {sum(failing.values())} on {len(failing)} machines")
    print(f"failure records by type: {dict(failure_types)}")
    print("a record during a failure:", json.dumps(sample)[:400])


def main() -> int:
    tools.install(tools.KAFKA)
    with tempfile.TemporaryDirectory(prefix="sensorsim-demo-") as workdir:
        broker = KafkaBroker(Path(workdir))
        print("starting a local Kafka broker ...", flush=True)
        broker.start()
        try:
            env = {**os.environ, **FLEET, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap}
            print(f"running the producer against {broker.bootstrap}: {FLEET}", flush=True)
            run = subprocess.run([sys.executable, "-m", "producer"], env=env, check=False)
            if run.returncode != 0:
                print(f"producer exited with {run.returncode}", file=sys.stderr)
                return run.returncode
            summarise(broker.bootstrap)
        finally:
            broker.destroy()
            print("broker stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Continuity benchmark: what checkpoints cost, and the pause of a handover (a script).

(a) The project's producer (engine, encoder, Kafka sink) into a real broker as fast as it goes
    (``SIMULATION_INTERVAL_MS=0``), alternating runs with the default CHECKPOINT_INTERVAL_MS
    and with checkpoints off (``0``), from the first cycle to the last acknowledgement and the
    final checkpoint; and what one checkpoint of the fleet costs (export, encode, bytes).
(b) A handover as the operator would do it on a scale 2 -> 3: two producer processes get
    SIGTERM, three start once both have exited. The pause a machine sees is the longest gap
    between two of its consecutive records' send times (Kafka CreateTime).

    python bench/continuity_bench.py                        # on a broker it starts
    python bench/continuity_bench.py --bootstrap 127.0.0.1:9092
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from kafka import KafkaConsumer, TopicPartition

from domain.machine_ids import machine_ids
from producer.assembly import build_app
from producer.continuity.codec import encode_machines
from producer.settings import DEFAULT_DATA_FILE, ProducerSettings
from producer.simulation.engine import SimulationEngine
from producer.simulation.reference_data import load_profile
from testbed.kafka import KafkaBroker
from testbed.polling import ProcessExitedError, WaitTimeoutError, wait_until

DEFAULT_INTERVAL_MS = ProducerSettings.model_fields["checkpoint_interval_ms"].default


def run(bootstrap: str, records: int, machines: int, checkpoint_ms: int) -> tuple[float, int]:
    """Records/s end to end, and the checkpoints written."""
    settings = ProducerSettings(
        kafka_bootstrap_servers=bootstrap,
        kafka_topic=f"bench-continuity-{uuid.uuid4().hex[:8]}",
        kafka_create_topic=True,
        kafka_topic_partitions=6,
        num_machines=machines,
        simulation_interval_ms=0,
        simulation_seed=1,
        max_messages=records,
        http_port=0,
        checkpoint_interval_ms=checkpoint_ms,
    )
    app = build_app(settings)
    started = time.perf_counter()
    summary = app.run()
    elapsed = time.perf_counter() - started
    if summary.delivered != records:
        raise SystemExit(f"only {summary.delivered} of {records} records were delivered")
    written = app.metrics.registry.get_sample_value("sensorsim_checkpoints_total") or 0
    return records / elapsed, int(written)


def one_checkpoint(machines: int) -> tuple[float, int]:
    """Seconds to export and encode the fleet's state once, and its bytes."""
    profile = load_profile(DEFAULT_DATA_FILE, 20)
    settings = ProducerSettings()
    engine = SimulationEngine(
        profile, settings.failure_model, first_machine=0, count=machines, seed=1,
        simulation_name="bench", model=settings.simulation_model,
    )  # fmt: skip
    engine.step()
    ids = machine_ids("bench", range(machines))
    rows = np.arange(machines)
    started = time.perf_counter()
    records = encode_machines(
        "bench", ids, [1] * machines, model=settings.simulation_model.value, fingerprint="0" * 16,
        state=engine.export_state(rows),
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    return elapsed, sum(len(k) + len(v) for k, v in records)


def start_shards(env: dict[str, str], shards: int, logs: Path) -> list[subprocess.Popen[bytes]]:
    """Producer processes for every shard (stderr to files in ``logs``); returns once each
    says it is simulating."""
    processes = []
    for index in range(shards):
        log = logs / f"shards{shards}-{index}.log"
        with log.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "producer"],
                env={**env, "SHARD_COUNT": str(shards), "SHARD_INDEX": str(index)},
                stderr=stderr,
                stdout=subprocess.DEVNULL,
            )
        processes.append((process, log))
    try:
        for process, log in processes:
            wait_until(
                functools.partial(announced_start, log),
                timeout=300,
                interval=0.1,
                message="a producer to start",
                process=process,
                log_file=log,
            )
    except (WaitTimeoutError, ProcessExitedError) as error:
        for other, _ in processes:
            other.kill()
        raise SystemExit(str(error)) from None
    return [process for process, _ in processes]


def announced_start(log: Path) -> bool:
    """True once the producer logging to ``log`` has started its loop."""
    return b"simulating machines" in log.read_bytes()


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        if process.wait(timeout=60) != 0:
            raise SystemExit(f"a producer exited with {process.returncode}")


def handover(bootstrap: str, machines: int, interval_ms: int, seconds: float) -> list[float]:
    """Per machine, the longest gap (s) between consecutive records around a 2 -> 3 handover."""
    topic = f"bench-handover-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_TOPIC": topic, "KAFKA_CREATE_TOPIC": "true",
        "NUM_MACHINES": str(machines), "SIMULATION_INTERVAL_MS": str(interval_ms),
        "SIMULATION_SEED": "1", "HTTP_PORT": "0",
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as logs:
        before = start_shards(env, 2, Path(logs))
        time.sleep(seconds)
        stopping = time.monotonic()
        stop(before)
        starting = time.monotonic()
        after = start_shards(env, 3, Path(logs))
        running = time.monotonic()
        time.sleep(seconds)
        stop(after)
    print(f"(b) old shards stopped (final flush + checkpoint) in {starting - stopping:.2f} s; "
          f"new shards started (process, data, Kafka, state topic read) in "
          f"{running - starting:.2f} s")  # fmt: skip
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    total = sum(consumer.end_offsets(partitions).values())
    sent: dict[bytes, list[int]] = {}
    seen = 0
    while seen < total:
        for batch in consumer.poll(timeout_ms=1000).values():
            for record in batch:
                sent.setdefault(record.key, []).append(record.timestamp)
                seen += 1
    consumer.close()
    return [max(np.diff(np.array(times))) / 1000 for times in sent.values()]


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bootstrap", help="Kafka bootstrap address (default: start a broker)")
    parser.add_argument("--records", type=int, default=1_000_000, help="records per run")
    parser.add_argument("--machines", type=int, default=10_000, help="fleet size")
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs of each; median")
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin to (-1: do not pin)")
    parser.add_argument("--skip-a", action="store_true", help="only the handover (b)")
    parser.add_argument("--skip-b", action="store_true", help="only the checkpoint cost (a)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    with contextlib.ExitStack() as stack:
        bootstrap = args.bootstrap
        if bootstrap is None:
            broker = KafkaBroker(Path(stack.enter_context(tempfile.TemporaryDirectory())))
            stack.callback(broker.destroy)
            broker.start()
            bootstrap = broker.bootstrap
        if not args.skip_b:
            pauses = handover(bootstrap, 1000, 100, 5.0)  # before pinning: 5 processes
            print(f"(b) handover 2 -> 3 shards, 1,000 machines at 100 ms: pause per machine "
                  f"median {median(pauses):.2f} s, max {max(pauses):.2f} s")  # fmt: skip
        if args.skip_a:
            return 0
        if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {args.cpu})
        seconds, size = one_checkpoint(args.machines)
        print(f"(a) one checkpoint of {args.machines:,} machines: export+encode "
              f"{seconds * 1000:.0f} ms, {size / 1e6:.1f} MB to the state topic")  # fmt: skip
        print(f"end to end, {args.records:,} records, {args.machines:,} machines, "
              f"{args.repeat} alternating runs")  # fmt: skip
        with_cp: list[float] = []
        without: list[float] = []
        written = []
        for _ in range(args.repeat):
            rate, count = run(bootstrap, args.records, args.machines, DEFAULT_INTERVAL_MS)
            with_cp.append(rate)
            written.append(count)
            without.append(run(bootstrap, args.records, args.machines, 0)[0])
        runs = ", ".join(f"{r:,.0f}" for r in with_cp)
        print(f"checkpoints every {DEFAULT_INTERVAL_MS} ms | {median(with_cp):>9,.0f} rec/s | "
              f"{runs} | checkpoints written {written}")  # fmt: skip
        runs = ", ".join(f"{r:,.0f}" for r in without)
        print(f"no checkpoints              | {median(without):>9,.0f} rec/s | {runs}")
        print(f"ratio with / without (medians): {median(with_cp) / median(without):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

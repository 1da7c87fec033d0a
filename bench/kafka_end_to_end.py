"""Part (b) of the producer bench: end to end into a real broker, the project's producer
(engine, encoder, Kafka sink: ``ProducerApp``) against Kafka's Java ``ProducerPerformance`` on
the same broker, same record size, ``acks=all``, alternating runs.

Java's own tool is the reference because it is what the broker's authors measure the broker
with: the ratio says how close a Python producer comes, whatever the machine's load.
``run_sink`` is also what the delivery-guarantee part measures.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import re
import resource
import subprocess
import time
import uuid
from statistics import median_high
from typing import Any

from kafka.producer.sender import Sender

from bench.engine_throughput import TIMESTAMP
from producer.assembly import build_app
from producer.settings import ProducerSettings
from producer.simulation.engine import SimulationEngine


def run_sink(
    bootstrap: str, records: int, machines: int, codec: str = "none", **continuity: Any
) -> tuple[float, int, float]:
    """Records/s of the project's producer (engine, encoder, Kafka sink) into the broker,
    from the first cycle to the last acknowledgement; the mean body size; and the CPU seconds
    of this process (all its threads) per million records. ``continuity``:
    settings of continuity (``checkpoint_interval_ms``, ``delivery_guarantee``); without
    them, continuity is off."""
    topic = f"bench-sink-{uuid.uuid4().hex[:8]}"
    settings = ProducerSettings(
        **({"checkpoint_interval_ms": 0} | continuity),
        kafka_compression_type=codec,
        kafka_bootstrap_servers=bootstrap,
        kafka_topic=topic,
        kafka_create_topic=True,
        kafka_topic_partitions=6,
        num_machines=machines,
        simulation_interval_ms=0,
        simulation_seed=1,
        max_messages=records,
        http_port=0,
    )
    app = build_app(settings)
    app.sink.start()
    sizes = [len(b) for b in app.simulation.encoder.encode(app.simulation.engine.step(), TIMESTAMP)]
    profile = app.simulation.profile
    app.simulation.engine = SimulationEngine(
        profile, settings.failure_model(profile.labelled_share), first_machine=0, count=machines,
        seed=1, simulation_name="bench", model=settings.simulation_model,
    )  # fmt: skip
    app.sink.start = lambda: None  # type: ignore[method-assign]  # already connected
    started, cpu_started = time.perf_counter(), time.process_time()
    summary = app.run()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if summary.delivered != records:
        raise SystemExit(f"only {summary.delivered} of {records} records were delivered")
    return records / elapsed, round(sum(sizes) / len(sizes)), cpu / records * 1e6


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_java(
    bootstrap: str, classpath: str, records: int, size: int, codec: str = "none"
) -> tuple[float, float]:
    """Records/s of Kafka's ``ProducerPerformance``, and the CPU seconds of its JVM (start-up
    and JIT compilation included) per million records."""
    topic = f"bench-java-{uuid.uuid4().hex[:8]}"
    command = [
        "java", "-Xmx512m", "-cp", classpath, "org.apache.kafka.tools.ProducerPerformance",
        "--topic", topic, "--num-records", str(records), "--record-size", str(size),
        "--throughput", "-1", "--producer-props", f"bootstrap.servers={bootstrap}", "acks=all",
        "linger.ms=5", "batch.size=65536", f"compression.type={codec}",
    ]  # fmt: skip
    cpu_started = children_cpu_seconds()
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    cpu = children_cpu_seconds() - cpu_started
    last = [line for line in output.stdout.splitlines() if "records sent" in line][-1]
    match = re.search(r"([\d.]+) records/sec", last)
    if match is None:
        raise SystemExit(f"unexpected ProducerPerformance output: {last}")
    return float(match.group(1)), cpu / records * 1e6


def profile_both_threads(bootstrap: str, records: int, machines: int) -> None:
    """cProfile of the caller (cycle loop, ``send``) and of kafka-python's I/O thread."""
    io_profiler = cProfile.Profile()
    original_run = Sender.run

    def profiled_run(self: Any) -> None:
        io_profiler.enable()
        try:
            original_run(self)
        finally:
            io_profiler.disable()

    Sender.run = profiled_run  # benchmark-only instrumentation
    main_profiler = cProfile.Profile()
    try:
        main_profiler.enable()
        run_sink(bootstrap, records, machines)
        main_profiler.disable()
    finally:
        Sender.run = original_run
    for name, profiler in (
        ("caller thread", main_profiler),
        ("kafka-python I/O thread", io_profiler),
    ):
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(14)
        print(f"profile of the end-to-end run, {name} (top functions by own time):")
        print(stream.getvalue())


def print_against_java(
    bootstrap: str,
    classpath: str,
    records: int,
    machines: int,
    *,
    profile: bool,
    repeat: int,
    codecs: list[str],
) -> None:
    """Part (b): ``repeat`` alternating runs of ``run_sink`` and ``run_java`` per codec; the
    medians and their ratio."""
    print(
        f"(b) end to end into Kafka at {bootstrap}: {records:,} records from {machines:,} "
        f"machines, acks=all, linger 5 ms, batch 64 KiB; {repeat} alternating runs per codec"
    )
    print(f"{'codec':<6} | {'producer':<44} | {'median':>9} | {'CPU s/1M':>8} | runs (records/s)")
    print("-" * 100)
    for codec in codecs:
        rates: dict[str, list[float]] = {"ours": [], "java": []}
        cpu: dict[str, list[float]] = {"ours": [], "java": []}
        size = 0
        for _ in range(repeat):
            rate, size, seconds = run_sink(bootstrap, records, machines, codec)
            rates["ours"].append(rate)
            cpu["ours"].append(seconds)
            rate, seconds = run_java(bootstrap, classpath, records, size, codec)
            rates["java"].append(rate)
            cpu["java"].append(seconds)
        names = {
            "ours": "sensorsim (engine+encoder+KafkaSink, python)",
            "java": f"Kafka ProducerPerformance (java, {size} B)",
        }
        for side, name in names.items():
            runs = ", ".join(f"{r:,.0f}" for r in rates[side])
            print(
                f"{codec:<6} | {name:<44} | {median_high(rates[side]):>9,.0f} | "
                f"{median_high(cpu[side]):>8.2f} | {runs}"
            )
        print(
            f"{codec:<6} | ratio sensorsim / java (medians): records/s "
            f"{median_high(rates['ours']) / median_high(rates['java']):.2f}, CPU s per 1M records "
            f"{median_high(cpu['ours']) / median_high(cpu['java']):.2f}"
        )
    print()
    if profile:
        profile_both_threads(bootstrap, records // 4, machines)

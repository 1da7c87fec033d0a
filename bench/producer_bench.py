"""Producer benchmark: prints a table of measured throughput (a script, not a test).

(a) engine + serialisation, messages/s at 1, 100, 10,000 and 100,000 machines (20 sensors),
    against a straightforward per-sensor Python implementation of the original algorithm; the
    learned model also with dynamics learned from a time column (the bundled rows in file
    order), a full 20 x 20 transition per cycle; and, at 10,000 machines, the learned model
    with a scenario list configured whose windows all lie far in the future, against the
    plain learned model, alternating runs;
(b) end to end into a real broker: the project's Kafka sink (``ProducerApp``) against Kafka's
    Java ``ProducerPerformance`` on the same broker, same record size, ``acks=all``.

    python bench/producer_bench.py                       # (a), and (b) on a broker it starts
    python bench/producer_bench.py --bootstrap 127.0.0.1:9092   # (b) on a running broker
    python bench/producer_bench.py --no-kafka                # (a) only
    python bench/producer_bench.py --guarantees --records 1000000   # (d) only

(d) exactly-once against at-least-once, both with continuity, same broker, alternating runs.
(e) engine + serialisation of this tree against a baseline commit, both models, alternating
    runs in the same invocation (``bench/baseline_comparison.py``):

    python bench/producer_bench.py --against             # the commit in bench/baseline_commit.txt
    python bench/producer_bench.py --against 4cc883e --against-machines 10000,100000

Everything runs pinned to one CPU (``--cpu``) so the figures are per core.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import logging
import os
import platform
import pstats
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import kafka
import numpy as np
import pandas as pd
from kafka.producer.sender import Sender

from domain.machine_ids import machine_ids
from domain.messages import MessageFormat
from domain.reference_columns import ReferenceColumns
from domain.scenarios import Scenario, parse_scenarios
from domain.simulation_model import FailureModel, SimulationModel
from producer.assembly import build_app
from producer.runtime.heap import keep_cycle_memory
from producer.serialisation import BodyEncoder
from producer.settings import DEFAULT_DATA_FILE, ProducerSettings
from producer.shard import scenario_fields
from producer.simulation.engine import SimulationEngine
from producer.simulation.reference_data import ReferenceProfile, load_profile

REPO = Path(__file__).resolve().parents[1]

TIMESTAMP = "2026-11-29T12:34:56.789+00:00"

FAR_FUTURE: Final = 10**9
IDLE_SCENARIOS: Final = [
    {"target": {"machines": [17]}, "startCycle": FAR_FUTURE,
     "failure": {"type": "bearing_wear", "cycles": 50}},
    {"target": {"all": True}, "startCycle": FAR_FUTURE, "noFailures": {"cycles": 200}},
    {"target": {"fraction": 0.05}, "startCycle": FAR_FUTURE,
     "degradation": {"type": "overheating", "cycles": 1000}},
    {"target": {"all": True}, "startCycle": FAR_FUTURE,
     "quality": {"fault": "spike", "cycles": 100}},
    {"target": {"fraction": 0.1}, "startCycle": FAR_FUTURE,
     "quality": {"fault": "duplicate", "cycles": 100, "rate": 0.01}},
]  # fmt: skip
"""One scenario of each kind, none due before cycle 10**9: what configured scenarios cost
while none is active."""


class OriginalMachine:
    """The original producer's algorithm, one machine, written the straightforward way:
    a Python loop over sensors with numpy scalar draws, ``json.dumps`` per message (with the
    defects fixed that would change the work: one failure type per episode, real names)."""

    def __init__(self, profile: ReferenceProfile, machine_id: str) -> None:
        self.machine_id = machine_id
        self.names = list(profile.sensor_names)
        self.stats = [
            {
                "mean": float(profile.mean[j]),
                "std": float(profile.std[j]),
                "min": float(profile.lower[j]),
                "max": float(profile.upper[j]),
            }
            for j in range(len(self.names))
        ]
        self.patterns = [
            {
                "mean": profile.signature_mean[t].tolist(),
                "std": profile.signature_std[t].tolist(),
            }
            for t in range(len(profile.failure_types))
        ]
        self.values = [s["mean"] for s in self.stats]
        self.failure_active = False
        self.failure_cycle = 0
        self.failure_duration = 0
        self.pattern: dict[str, list[float]] | None = None

    def reading(self) -> bytes:
        readings = {}
        for j, name in enumerate(self.names):
            s = self.stats[j]
            value = self.values[j] + np.random.normal(0, s["std"] * 0.1)
            value += 0.05 * (s["mean"] - value)
            value = max(s["min"], min(s["max"], value))
            self.values[j] = value
            readings[name] = value
        if not self.failure_active and random.random() < 0.05:
            self.failure_active = True
            self.failure_cycle = 0
            self.failure_duration = random.randint(30, 60)
            self.pattern = random.choice(self.patterns)
        if self.failure_active and self.pattern is not None:
            self.failure_cycle += 1
            progress = min(1.0, self.failure_cycle / 10)
            for j, name in enumerate(self.names):
                target = np.random.normal(self.pattern["mean"][j], self.pattern["std"][j])
                readings[name] = readings[name] * (1 - progress) + target * progress
            if self.failure_cycle >= self.failure_duration:
                self.failure_active = False
        message = {
            "machine_id": self.machine_id,
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "readings": {
                "readings": {k: round(v, 6) for k, v in readings.items()},
                "has_failure": self.failure_active,
            },
        }
        return json.dumps(message).encode()


def measure_baseline(
    profile: ReferenceProfile, machines: int, budget: float
) -> tuple[float, float]:
    """(messages per wall second, per CPU second) of the straightforward implementation (its
    cost per message does not depend on the fleet size, so large fleets are measured on their
    first 2,000 machines)."""
    fleet = [OriginalMachine(profile, i) for i in machine_ids("bench", range(min(machines, 2000)))]
    count = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    while True:
        for machine in fleet:
            machine.reading()
        count += len(fleet)
        elapsed = time.perf_counter() - started
        if elapsed >= budget:
            return count / elapsed, count / (time.process_time() - cpu_started)


def measure_vectorised(
    profile: ReferenceProfile,
    machines: int,
    budget: float,
    model: SimulationModel,
    scenarios: Sequence[Scenario] = (),
) -> tuple[float, float, float, float]:
    """(messages per wall second, per CPU second, engine share, encoder share) of
    ``engine.step`` + ``encoder.encode``; ``scenarios`` reach the engine and the encoder as
    in the producer (``producer.shard``)."""
    engine = SimulationEngine(
        profile,
        FailureModel(),
        first_machine=0,
        count=machines,
        seed=1,
        simulation_name="bench",
        model=model,
        scenarios=scenarios,
    )
    encoder = BodyEncoder(
        profile.sensor_names,
        machine_ids("bench", range(machines)),
        profile.failure_types,
        MessageFormat.ORIGINAL,
        max_abs_value=engine.max_abs_reading,
        scenarios=scenario_fields(engine),
    )
    encoder.encode(engine.step(), TIMESTAMP)  # warm up
    cycles = 0
    engine_time = encode_time = 0.0
    started, cpu_started = time.perf_counter(), time.process_time()
    while True:
        t0 = time.perf_counter()
        result = engine.step()
        t1 = time.perf_counter()
        encoder.encode(result, TIMESTAMP)
        t2 = time.perf_counter()
        engine_time += t1 - t0
        encode_time += t2 - t1
        cycles += 1
        elapsed = time.perf_counter() - started
        if elapsed >= budget and cycles >= 3:
            total = engine_time + encode_time
            cpu = time.process_time() - cpu_started
            return (
                machines * cycles / elapsed,
                machines * cycles / cpu,
                engine_time / total,
                encode_time / total,
            )


def timed_profile(directory: Path) -> ReferenceProfile:
    """The bundled rows with their row number as a time column: the learned model then runs a
    VAR(1) fitted to them."""
    frame = pd.read_csv(DEFAULT_DATA_FILE)
    frame.insert(0, "row", np.arange(len(frame)))
    path = directory / "timed.csv"
    frame.to_csv(path, index=False)
    return load_profile(path, 20, columns=ReferenceColumns(time="row"))


def part_a(profile: ReferenceProfile, budget: float) -> None:
    print("(a) engine + serialisation, 20 sensors, original format, one core")
    print("    msg/s per CPU second of this process (wall-clock in brackets); both simulation")
    print("    models, the learned one against the original, and the original against a")
    print("    per-sensor Python implementation of the original algorithm")
    print(f"{'machines':>9} | {'learned CPU':>11} {'(wall)':>11} | {'original CPU':>12} "
          f"{'(wall)':>11} | {'learned/original':>16} | {'engine/encode':>13} | "
          f"{'per-sensor CPU':>14} | {'ratio':>6} | {'learned, dynamics':>17} "
          f"{'/original':>9}")  # fmt: skip
    print("-" * 156)
    with tempfile.TemporaryDirectory() as directory:
        timed = timed_profile(Path(directory))
    for machines in (1, 100, 10_000, 100_000):
        learned_wall, learned_cpu, _, _ = measure_vectorised(
            profile, machines, budget, SimulationModel.LEARNED
        )
        fast_wall, fast_cpu, engine_share, encode_share = measure_vectorised(
            profile, machines, budget, SimulationModel.ORIGINAL
        )
        _, slow_cpu = measure_baseline(profile, machines, budget)
        _, dynamics_cpu, _, _ = measure_vectorised(timed, machines, budget, SimulationModel.LEARNED)
        print(
            f"{machines:>9,} | {learned_cpu:>11,.0f} ({learned_wall:>9,.0f}) | "
            f"{fast_cpu:>12,.0f} ({fast_wall:>9,.0f}) | {learned_cpu / fast_cpu:>15.2f}x | "
            f"{engine_share:>6.0%}/{encode_share:<6.0%} | {slow_cpu:>14,.0f} | "
            f"{fast_cpu / slow_cpu:>5.1f}x | {dynamics_cpu:>17,.0f} "
            f"{dynamics_cpu / fast_cpu:>8.2f}x"
        )
    idle_scenarios_row(profile, budget)
    print()


def idle_scenarios_row(profile: ReferenceProfile, budget: float, machines: int = 10_000) -> None:
    """The learned model with ``IDLE_SCENARIOS`` configured against the plain learned model,
    three alternating runs each; the ratio of the medians (CPU)."""
    scenarios = parse_scenarios(IDLE_SCENARIOS)
    plain: list[float] = []
    idle: list[float] = []
    for _ in range(3):
        plain.append(measure_vectorised(profile, machines, budget, SimulationModel.LEARNED)[1])
        idle.append(
            measure_vectorised(profile, machines, budget, SimulationModel.LEARNED, scenarios)[1]
        )
    ratio = median(idle) / median(plain)
    print(
        f"learned, scenarios configured, none active ({len(scenarios)} scenarios, all from cycle "
        f"{FAR_FUTURE:,}), {machines:,} machines, 3 alternating runs, msg/s per CPU second:"
    )
    print(f"    plain learned {median(plain):,.0f} ({', '.join(f'{r:,.0f}' for r in plain)})")
    print(f"    with scenarios {median(idle):,.0f} ({', '.join(f'{r:,.0f}' for r in idle)})")
    print(f"    ratio with scenarios / plain (medians): {ratio:.3f} (cost {1 - ratio:.1%})")


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


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


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


def part_b(
    bootstrap: str,
    classpath: str,
    records: int,
    machines: int,
    *,
    profile: bool,
    repeat: int,
    codecs: list[str],
) -> None:
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
                f"{codec:<6} | {name:<44} | {median(rates[side]):>9,.0f} | "
                f"{median(cpu[side]):>8.2f} | {runs}"
            )
        print(
            f"{codec:<6} | ratio sensorsim / java (medians): records/s "
            f"{median(rates['ours']) / median(rates['java']):.2f}, CPU s per 1M records "
            f"{median(cpu['ours']) / median(cpu['java']):.2f}"
        )
    print()
    if profile:
        profile_both_threads(bootstrap, records // 4, machines)


def part_d(bootstrap: str, records: int, machines: int, *, repeat: int, interval_ms: int) -> None:
    """Exactly-once against at-least-once, both with continuity (CHECKPOINT_INTERVAL_MS =
    ``interval_ms``), alternating runs in one process."""
    print(
        f"(d) delivery guarantees at {bootstrap}: {records:,} records from {machines:,} machines, "
        f"CHECKPOINT_INTERVAL_MS={interval_ms}; {repeat} alternating runs"
    )
    print(f"{'guarantee':<14} | {'median':>9} | runs")
    print("-" * 60)
    rates: dict[str, list[float]] = {"at-least-once": [], "exactly-once": []}
    for _ in range(repeat):
        for guarantee, runs in rates.items():
            rate, _, _ = run_sink(
                bootstrap, records, machines,
                checkpoint_interval_ms=interval_ms, delivery_guarantee=guarantee,
            )  # fmt: skip
            runs.append(rate)
    for guarantee, runs in rates.items():
        listed = ", ".join(f"{r:,.0f}" for r in runs)
        print(f"{guarantee:<14} | {median(runs):>9,.0f} | {listed}")
    ratio = median(rates["exactly-once"]) / median(rates["at-least-once"])
    print(f"ratio exactly-once / at-least-once (medians): {ratio:.2f} (cost {1 - ratio:.0%})")
    print()


def peak_rss_mib(command: list[str], env: dict[str, str]) -> float:
    """Peak resident set size (MiB) of a child process, from ``wait4``'s rusage."""
    with open(os.devnull, "wb") as devnull:
        process = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=devnull, stderr=subprocess.PIPE
        )
        _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        errors = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"{' '.join(command)} failed: {errors[-2000:]}")
    return usage.ru_maxrss / 1024


def wide_reference(sensors: int, directory: Path) -> Path:
    """The bundled reference table with its sensor columns repeated to ``sensors`` columns
    (``Sensor 1`` .. ``Sensor N``, then the label): a stand-in for a wider table of the same
    length, so the producer's memory can be measured by sensor count."""
    lines = DEFAULT_DATA_FILE.read_text().splitlines()
    rows = [line.split(",") for line in lines[1:] if line]
    width = len(lines[0].split(",")) - 1
    header = [f"Sensor {i + 1}" for i in range(sensors)] + ["Label"]
    path = directory / f"sensors-{sensors}.csv"
    body = (",".join([row[i % width] for i in range(sensors)] + [row[width]]) for row in rows)
    path.write_text("\n".join([",".join(header), *body]) + "\n")
    return path


def part_c(bootstrap: str | None, machines_grid: list[int], sensors_grid: list[int]) -> None:
    """Peak RSS of ``python -m producer`` by fleet size and sensors, 3 cycles at full speed."""
    print("(c) peak RSS of `python -m producer`, 3 cycles at full speed")
    print(f"{'machines':>9} | {'sensors':>7} | {'stdout sink MiB':>15} | {'Kafka sink MiB':>14}")
    print("-" * 56)
    with tempfile.TemporaryDirectory() as directory:
        for machines in machines_grid:
            for sensors in sensors_grid:
                env = {**os.environ, "NUM_MACHINES": str(machines), "NUM_SENSORS": str(sensors),
                       "SIMULATION_INTERVAL_MS": "0", "HTTP_PORT": "0",
                       "SIMULATION_SEED": "1"}  # fmt: skip
                if sensors > 20:
                    env["SENSOR_DATA_FILE"] = str(wide_reference(sensors, Path(directory)))
                run = [sys.executable, "-m", "producer", "--max-messages", str(3 * machines)]
                stdout = peak_rss_mib([*run, "--sink", "stdout"], env)
                kafka = "-"
                if bootstrap is not None:
                    topic = f"bench-rss-{uuid.uuid4().hex[:8]}"
                    kafka_env = {**env, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                                 "KAFKA_TOPIC": topic, "KAFKA_CREATE_TOPIC": "true"}  # fmt: skip
                    kafka = f"{peak_rss_mib(run, kafka_env):,.0f}"
                print(f"{machines:>9,} | {sensors:>7} | {stdout:>15,.0f} | {kafka:>14}", flush=True)
    print()


def machine_description() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} CPUs visible, Python {platform.python_version()}, "
        f"numpy {np.__version__}, kafka-python {kafka.__version__}, {platform.system()} "
        f"{platform.release()}; load average {os.getloadavg()[0]:.1f} at start"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bootstrap", help="Kafka bootstrap address for part (b)")
    parser.add_argument("--java-classpath", help="classpath of Kafka's jars ('.../libs/*')")
    parser.add_argument("--records", type=int, default=200_000, help="records for part (b)")
    parser.add_argument("--machines", type=int, default=10_000, help="fleet size for part (b)")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin to (-1: do not pin)")
    parser.add_argument("--profile", action="store_true", help="cProfile the end-to-end run")
    parser.add_argument("--repeat", type=int, default=3, help="runs of part (b); median")
    parser.add_argument("--skip-a", action="store_true", help="only part (b)")
    parser.add_argument("--no-kafka", action="store_true", help="only part (a)")
    parser.add_argument("--memory", action="store_true", help="only part (c): peak RSS")
    parser.add_argument("--memory-machines", default="1,10000,100000", help="part (c): fleets")
    parser.add_argument("--memory-sensors", default="20", help="part (c): sensors per machine")
    parser.add_argument(
        "--codecs", default="none,lz4,zstd", help="compression codecs for part (b), comma-separated"
    )
    parser.add_argument(
        "--guarantees", action="store_true",
        help="only part (d): exactly-once against at-least-once",
    )  # fmt: skip
    parser.add_argument(
        "--checkpoint-ms", type=int, default=30_000, help="CHECKPOINT_INTERVAL_MS of part (d)"
    )
    parser.add_argument(
        "--against", nargs="?", const="", metavar="COMMIT",
        help="only part (e): against COMMIT (default: the one in bench/baseline_commit.txt)",
    )  # fmt: skip
    parser.add_argument("--against-machines", default="10000,100000", help="part (e): fleet sizes")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_cycle_memory()  # the heap policy of `sensorsim run`
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    # The test bed starts the broker; it lives in the checkout, which
    # `python bench/producer_bench.py` does not put on the path by itself.
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from bench import baseline_comparison  # noqa: PLC0415
    from testbed import tools  # noqa: PLC0415
    from testbed.kafka import KafkaBroker  # noqa: PLC0415

    if args.against is not None:
        print(machine_description())
        print()
        baseline_comparison.compare(
            args.against or baseline_comparison.stored_baseline(),
            [int(n) for n in args.against_machines.split(",")],
            args.budget, args.cpu, max(1, args.repeat),
        )  # fmt: skip
        return 0

    with contextlib.ExitStack() as stack:
        bootstrap = args.bootstrap
        if bootstrap is None and not args.no_kafka:
            # Started before pinning, so the broker does not share the benchmark's CPU.
            broker = KafkaBroker(Path(stack.enter_context(tempfile.TemporaryDirectory())))
            stack.callback(broker.destroy)
            broker.start()
            bootstrap = broker.bootstrap
        classpath = args.java_classpath or f"{tools.kafka_libs()}/*"
        if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {args.cpu})
        print(machine_description())
        print()
        if args.memory:
            grid = (args.memory_machines, args.memory_sensors)
            part_c(bootstrap, *([int(n) for n in axis.split(",")] for axis in grid))
            return 0
        if args.guarantees:
            if bootstrap is None:
                raise SystemExit("part (d) needs a broker")
            part_d(bootstrap, args.records, args.machines, repeat=max(1, args.repeat),
                   interval_ms=args.checkpoint_ms)  # fmt: skip
            return 0
        reference: Any = load_profile(DEFAULT_DATA_FILE, 20)
        if not args.skip_a:
            part_a(reference, args.budget)
        if bootstrap is not None:
            part_b(bootstrap, classpath, args.records, args.machines, profile=args.profile,
                   repeat=max(1, args.repeat), codecs=args.codecs.split(","))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

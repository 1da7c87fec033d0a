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

(c) peak RSS of ``python -m producer`` by fleet size and sensors (``--memory``).
(d) exactly-once against at-least-once, both with continuity, same broker, alternating runs.
(e) engine + serialisation of this tree against a baseline commit, both models, alternating
    runs in the same invocation (``bench/baseline_comparison.py``):

    python bench/producer_bench.py --against             # the commit in bench/baseline_commit.txt
    python bench/producer_bench.py --against 4cc883e --against-machines 10000,100000

Everything runs pinned to one CPU (``--cpu``) so the figures are per core. This script is the
command line; each part is measured by its own module: (a) ``bench/engine_throughput.py``,
(b) ``bench/kafka_end_to_end.py``, (c) ``bench/producer_memory.py``,
(d) ``bench/delivery_guarantees.py``, (e) ``bench/baseline_comparison.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import sys
import tempfile
from pathlib import Path

import kafka
import numpy as np

# bench/ and the test bed (testbed/) live in the checkout, which
# `python bench/producer_bench.py` does not put on the path by itself.
REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from bench import baseline_comparison  # noqa: E402
from bench.delivery_guarantees import print_guarantees  # noqa: E402
from bench.engine_throughput import print_engine_table  # noqa: E402
from bench.kafka_end_to_end import print_against_java  # noqa: E402
from bench.producer_memory import print_peak_rss  # noqa: E402
from producer.runtime.heap import keep_cycle_memory  # noqa: E402
from producer.settings import DEFAULT_DATA_FILE  # noqa: E402
from producer.simulation.reference_data import load_profile  # noqa: E402
from testbed import tools  # noqa: E402
from testbed.kafka import KafkaBroker  # noqa: E402


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
            print_peak_rss(bootstrap, *([int(n) for n in axis.split(",")] for axis in grid))
            return 0
        if args.guarantees:
            if bootstrap is None:
                raise SystemExit("part (d) needs a broker")
            print_guarantees(
                bootstrap, args.records, args.machines, repeat=max(1, args.repeat),
                interval_ms=args.checkpoint_ms,
            )  # fmt: skip
            return 0
        reference = load_profile(DEFAULT_DATA_FILE, 20)
        if not args.skip_a:
            print_engine_table(reference, args.budget)
        if bootstrap is not None:
            print_against_java(
                bootstrap, classpath, args.records, args.machines, profile=args.profile,
                repeat=max(1, args.repeat), codecs=args.codecs.split(","),
            )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""One measurement of engine + serialisation in the tree it is run in, as one line of JSON.

``producer_bench.py --against`` runs this script once in the current tree and once in an
export of a baseline commit (``PYTHONPATH`` and working directory set to that tree), so the
same measurement runs on both. It therefore imports only what every tree since the
baseline commit in ``baseline_commit.txt`` has, and finds the engine in either layout
(``producer.engine`` before the simulation package, ``producer.simulation.engine`` since).

    python bench/engine_probe.py --machines 10000 --model original --budget 3 --cpu 1

Prints ``{"messages_per_cpu_second": ..., "engine_us": ..., "encode_us": ..., "cycles": ...}``;
exit code 3 when the tree has no such simulation model.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import sys
import time
from types import ModuleType
from typing import Any

TIMESTAMP = "2026-11-29T12:34:56.789+00:00"
NO_SUCH_MODEL = 3


def first_module(*names: str) -> ModuleType:
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    raise ModuleNotFoundError(f"none of {names}")


def measure_this_tree_only() -> None:
    """Drop the virtualenv's editable-install finders: they map the project's packages to the
    checkout the virtualenv was made for, and would fill in modules a baseline tree lacks."""
    sys.meta_path[:] = [
        finder for finder in sys.meta_path
        if not getattr(finder, "__module__", "").startswith("__editable__")
    ]  # fmt: skip


def apply_heap_policy() -> None:
    """The tree's heap policy for the cycle loop, where it has one (what its producer does)."""
    try:
        heap = importlib.import_module("producer.runtime.heap")
    except ModuleNotFoundError:
        return
    heap.keep_cycle_memory()


def failure_model(model: str, rate: str, profile: Any) -> Any:
    """The failure model of the run: ``default``, the one ``python -m producer`` gives
    ``model`` without failure settings (the learned model's: the reference's labelled share);
    ``original``, the seed system's start chance for both models."""
    from domain.simulation_model import FailureModel  # noqa: PLC0415

    if rate == "original" or model == "original":
        return FailureModel()
    settings = importlib.import_module("producer.settings")
    chosen = settings.ProducerSettings(simulation_model=model, _env_file=None)
    return chosen.failure_model(profile.labelled_share)


def build(machines: int, model: str, rate: str = "default") -> tuple[Any, Any]:
    from domain.machine_ids import machine_ids  # noqa: PLC0415
    from domain.messages import MessageFormat  # noqa: PLC0415
    from producer.serialisation import BodyEncoder  # noqa: PLC0415
    from producer.settings import DEFAULT_DATA_FILE  # noqa: PLC0415

    engines = first_module("producer.simulation.engine", "producer.engine")
    references = first_module("producer.simulation.reference_data", "producer.reference_data")
    profile = references.load_profile(DEFAULT_DATA_FILE, 20)
    options: dict[str, Any] = {}
    if "model" in inspect.signature(engines.SimulationEngine).parameters:
        from domain.simulation_model import SimulationModel  # noqa: PLC0415

        options["model"] = SimulationModel(model)
    elif model != "original":
        raise SystemExit(NO_SUCH_MODEL)
    engine = engines.SimulationEngine(
        profile, failure_model(model, rate, profile), first_machine=0, count=machines, seed=1,
        simulation_name="bench", **options,
    )  # fmt: skip
    bound = getattr(engine, "max_abs_reading", None)
    if bound is None:  # before the engine knew its bound: the reading bounds
        bound = max(abs(float(v)) for v in (*profile.reading_lower, *profile.reading_upper))
    encoder = BodyEncoder(
        profile.sensor_names,
        machine_ids("bench", range(machines)),
        profile.failure_types,
        MessageFormat.ORIGINAL,
        max_abs_value=bound,
    )
    return engine, encoder


def measure(engine: Any, encoder: Any, machines: int, budget: float) -> dict[str, float]:
    """CPU time of ``engine.step`` and ``encoder.encode`` over ``budget`` CPU seconds."""
    encoder.encode(engine.step(), TIMESTAMP)  # warm up
    cycles = 0
    engine_time = encode_time = 0.0
    started = time.process_time()
    while True:
        t0 = time.process_time()
        result = engine.step()
        t1 = time.process_time()
        encoder.encode(result, TIMESTAMP)
        t2 = time.process_time()
        engine_time += t1 - t0
        encode_time += t2 - t1
        cycles += 1
        if t2 - started >= budget and cycles >= 3:
            messages = machines * cycles
            return {
                "messages_per_cpu_second": messages / (t2 - started),
                "engine_us": engine_time / messages * 1e6,
                "encode_us": encode_time / messages * 1e6,
                "cycles": cycles,
            }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--machines", type=int, default=10_000)
    parser.add_argument("--model", default="original")
    parser.add_argument(
        "--failures",
        choices=("default", "original"),
        default="default",
        help="failure rate: the model's default, or the original model's for both",
    )
    parser.add_argument("--budget", type=float, default=3.0, help="CPU seconds")
    parser.add_argument("--cpu", type=int, default=-1, help="CPU to pin to (-1: do not pin)")
    args = parser.parse_args(argv)
    if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    measure_this_tree_only()
    apply_heap_policy()
    engine, encoder = build(args.machines, args.model, args.failures)
    print(json.dumps(measure(engine, encoder, args.machines, args.budget)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

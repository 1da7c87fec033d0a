"""Part (d) of the producer bench: what exactly-once costs against at-least-once, both with
continuity, into the same broker, alternating runs in one process (so load on the machine
falls on both sides alike)."""

from __future__ import annotations

from statistics import median_high

from bench.kafka_end_to_end import run_sink


def print_guarantees(
    bootstrap: str, records: int, machines: int, *, repeat: int, interval_ms: int
) -> None:
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
        print(f"{guarantee:<14} | {median_high(runs):>9,.0f} | {listed}")
    ratio = median_high(rates["exactly-once"]) / median_high(rates["at-least-once"])
    print(f"ratio exactly-once / at-least-once (medians): {ratio:.2f} (cost {1 - ratio:.0%})")
    print()

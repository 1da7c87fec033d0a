"""The dashboard's panels over the time range (handovers, restarts, failed records) on a history
no short live run produces: a handover to pods of a new stream hash, a restarted producer,
records failing. promtool evaluates the rendered dashboard's own queries on input series shaped
like the PodMonitor's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed import tools
from testbed.prometheus import promtool
from tests.prometheus_support import dashboard, panel_queries, render_monitoring

pytestmark = [pytest.mark.tools, pytest.mark.subprocess]

POD = 'namespace="plant-a",simulation="line-1"'
"""The labels of every input series besides ``pod`` and ``stream_hash``."""
RANGE = "20m"
EVAL = "20m"
# 15 s steps: the old pods report for 10m and go (their series stale), the new ones start at
# 10m; line-1-0 of the new pods restarts at 15m (its counters start again at 0); line-1-1
# fails 10 records a step from 17m30s.
HISTORY = [
    (f'sensorsim_machines{{{POD},pod="line-1-0",stream_hash="old"}}', "3x40 stale"),
    (f'sensorsim_machines{{{POD},pod="line-1-1",stream_hash="old"}}', "3x40 stale"),
    (f'sensorsim_machines{{{POD},pod="line-1-0",stream_hash="new"}}', "_x40 3x40"),
    (f'sensorsim_machines{{{POD},pod="line-1-1",stream_hash="new"}}', "_x40 3x40"),
    (f'sensorsim_cycles_total{{{POD},pod="line-1-0",stream_hash="new"}}', "_x40 0+5x19 0+5x20"),
    (f'sensorsim_cycles_total{{{POD},pod="line-1-1",stream_hash="new"}}', "_x40 0+5x40"),
    (f'sensorsim_delivery_errors_total{{{POD},pod="line-1-1",stream_hash="new"}}',
     "_x40 0x29 10+10x10"),
]  # fmt: skip
EXPECTED = {"Handovers (time range)": 1, "Restarts (time range)": 1}


def panel_tests(board: dict[str, Any]) -> list[dict[str, Any]]:
    variables = {"namespace": "plant-a", "simulation": "line-1", "__range": RANGE,
                 "__rate_interval": "1m"}  # fmt: skip
    tests = []
    for title, query in panel_queries(board, variables):
        if title in EXPECTED:
            value: float = EXPECTED[title]
        elif title == "Records failed (time range)":
            value = 110  # the counter went from 0 to 110 within the range
        else:
            continue
        tests.append({
            "expr": query,
            "eval_time": EVAL,
            "exp_samples": [{"labels": f"{{{POD}}}", "value": value}],
        })  # fmt: skip
    return tests


def test_handovers_restarts_and_failures_over_the_time_range(tmp_path: Path) -> None:
    tools.install(tools.PROMETHEUS)
    tests = panel_tests(dashboard(render_monitoring("plant-a")))
    assert len(tests) == 3
    test_file = tmp_path / "panels.test.yaml"
    test_file.write_text(yaml.safe_dump({
        "rule_files": [],
        "evaluation_interval": "15s",
        "tests": [{
            "interval": "15s",
            "input_series": [{"series": s, "values": v} for s, v in HISTORY],
            "promql_expr_test": tests,
        }],
    }))  # fmt: skip
    result = promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr

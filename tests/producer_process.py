"""Run ``python -m producer`` as a user would, for tests of its command line and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_producer(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m producer *args`` with ``env`` added to this environment; no HTTP port and no
    pacing unless ``env`` says otherwise."""
    full_env = {**os.environ, "HTTP_PORT": "0", "SIMULATION_INTERVAL_MS": "0", **env}
    return subprocess.run(
        [sys.executable, "-m", "producer", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

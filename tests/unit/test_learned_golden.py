"""The learned model's streams stay the same byte for byte (its hot path is tuned for speed).

Digests of every body of a seeded run (extended format, in order) for the configurations users
get by default: the bundled file (regimes found without time order), the bundled rows with a
time column (learned dynamics and regimes), recordings with groups (regimes, learned dwell and
machine offsets), each also without regimes and with a set persistence. Failures start often
and ramp quickly, so the failing reads and blends run on many machines. Two fleet sizes: 40
machines (the matrix products column by column) and 3,200 (row by row).

The fit behind a stream (mixtures, Baum-Welch, the VAR fit) goes through BLAS and numpy
kernels chosen by the CPU, and a last bit of a fitted parameter can move a reading across a
rounding step; a producer process therefore asks for the AVX2 kernels on every x86-64 CPU
(``producer.runtime.kernels``). The digests are worked out in a child process with the same
``PORTABLE_KERNELS``, whatever this process loaded.

Run as a script (``python -m tests.unit.test_learned_golden``) to print the digests of the tree
it runs in (set ``PORTABLE_KERNELS`` in the environment first).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from domain.machine_ids import machine_ids
from domain.messages import MessageFormat
from domain.reference_columns import ReferenceColumns
from domain.simulation_model import FailureModel, SimulationModel
from producer.runtime.kernels import PORTABLE_KERNELS
from producer.serialisation import BodyEncoder
from producer.simulation.engine import SimulationEngine
from producer.simulation.reference_data import ReferenceProfile, load_profile
from tests import regime_reference
from tests.regime_reference import RegimeSpec

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "data" / "data_sensors.csv"
FAILURES = FailureModel(probability=0.02, min_cycles=5, max_cycles=20, ramp_cycles=3)
RECORDINGS = RegimeSpec(recordings=4, rows=1200)
RECORDING_COLUMNS = ReferenceColumns.parse(
    label="is_anomaly", label_set=True, normal_labels="0", time="timestamp", group="recording"
)


@cache
def reference(name: str, directory: Path) -> ReferenceProfile:
    if name == "bundled":
        return load_profile(BUNDLED, 20)
    if name == "timed":
        frame = pd.read_csv(BUNDLED)
        frame.insert(0, "row", np.arange(len(frame)))
        path = directory / "timed.csv"
        frame.to_csv(path, index=False)
        return load_profile(path, 20, columns=ReferenceColumns(time="row"))
    path = regime_reference.write(directory / "recordings.csv", RECORDINGS)
    return load_profile(path, columns=RECORDING_COLUMNS)


def stream_digest(
    profile: ReferenceProfile,
    *,
    first: int,
    count: int,
    cycles: int,
    regimes: int | None,
    persistence: float | None,
) -> str:
    engine = SimulationEngine(
        profile,
        FAILURES,
        first_machine=first,
        count=count,
        seed=20261207,
        simulation_name="learned-golden",
        model=SimulationModel.LEARNED,
        persistence=persistence,
        regimes=regimes,
    )
    encoder = BodyEncoder(
        profile.sensor_names,
        machine_ids("learned-golden", range(first, first + count)),
        profile.failure_types,
        MessageFormat.EXTENDED,
        max_abs_value=engine.max_abs_reading,
        max_episode_cycles=FAILURES.max_cycles,
    )
    digest = hashlib.sha256()
    for _ in range(cycles):
        for body in encoder.encode(engine.step(), "2026-12-07T00:00:00.000+00:00"):
            digest.update(body + b"\n")
    return digest.hexdigest()


# "reference/regimes/persistence/machines" -> sha256 of the bodies ("found": as many regimes as
# the reference shows; "-": the persistence the reference gives)
GOLDEN = {
    "bundled/found/-/40": "89aac2690d072be11afa14ed42e7df575c336c1dea8fdd0ef781d7c09eb4c8c1",
    "bundled/found/-/3200": "38b1206d4661f9a6d3c59b95b0bf76184894c67d00adb6edbc807173b946fd13",
    "bundled/1/-/40": "d768b942552f0b6e3e0abba01cb3af869701c0ca47f902c696b21c9db37af859",
    "bundled/1/-/3200": "aab0c8b80876798fe631a6dc10b1b7d2254bcb6d431dee6ef1cb61964a906007",
    "bundled/found/0.8/40": "d52d9c2caa796840a303db6df40ee992cd7fc7ae800b8cab4fd0d6683b439078",
    "bundled/found/0.8/3200": "aaf8d9758f68c549ec66927e1aab9fb92217fca2fc8fa47aee5b6062c7b71116",
    "timed/found/-/40": "00fde42401947534a6bb79c7f9a2d35110834f255efce25c1d16bf2536bb61a6",
    "timed/found/-/3200": "329eed9c6a37636b7654a9f622c568729070b8291de399a0b93f3b0699f3fb94",
    "timed/1/-/40": "8c1bd2b97581285704530e584129e09e3422bf3aa129ad04695099d29ccb2364",
    "timed/1/-/3200": "615b12bdef8eae5fae23f368571df1fba99f533f8102bf9557486e6df270a177",
    "timed/found/0.8/40": "d52d9c2caa796840a303db6df40ee992cd7fc7ae800b8cab4fd0d6683b439078",
    "timed/found/0.8/3200": "aaf8d9758f68c549ec66927e1aab9fb92217fca2fc8fa47aee5b6062c7b71116",
    "recordings/found/-/40": "26862bec426a64bcd8321bf814334ad22436d79a7d4578cef386132789f60936",
    "recordings/found/-/3200": "f4ffcb18808e0ed5472b48e430a5510bd8ca4cde145acaa3e4a76dfb945d8815",
    "recordings/1/-/40": "231ddf1e11208c9c403b0a3bd7e615cc3a26a64a7cf69a85757cb64f6c50b2bc",
    "recordings/1/-/3200": "156f6088b7fc264db7321b43aec015c6934fce4ff70735035fd212342534085e",
    "recordings/found/0.8/40": "8e4a48d51af7056f90c3ba5ba1b38babb043418b7b64c2bbf82ded6e4a7b624f",
    "recordings/found/0.8/3200": "a8c166aff7c5175472c7007bd0d600ac772afc0eedbf132dfb250b99fc8f12d0",
}
RUNS = {40: (3, 200), 3200: (0, 12)}
"""Machines -> (first machine, cycles)."""


def run(case: str, directory: Path) -> str:
    """The digest of the stream ``case`` names (a key of ``GOLDEN``)."""
    name, regimes, persistence, machines = case.split("/")
    first, cycles = RUNS[int(machines)]
    return stream_digest(
        reference(name, directory),
        first=first,
        count=int(machines),
        cycles=cycles,
        regimes=None if regimes == "found" else int(regimes),
        persistence=None if persistence == "-" else float(persistence),
    )


@pytest.fixture(scope="module")
def digests() -> dict[str, str]:
    """Every case's digest, from a child process on ``PORTABLE_KERNELS``."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.unit.test_learned_golden", "--json"],
        cwd=REPO,
        env={**os.environ, **PORTABLE_KERNELS},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    found: dict[str, str] = json.loads(done.stdout.splitlines()[-1])
    return found


@pytest.mark.parametrize("case", list(GOLDEN))
def test_learned_stream_is_unchanged_byte_for_byte(digests: dict[str, str], case: str) -> None:
    assert digests[case] == GOLDEN[case]


def _digests(directory: Path) -> dict[str, str]:
    return {case: run(case, directory) for case in GOLDEN}


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as temporary:
        found = _digests(Path(temporary))
    if "--json" in sys.argv:
        print(json.dumps(found))
    else:
        for case, digest in found.items():
            print(f'    "{case}": "{digest}",')

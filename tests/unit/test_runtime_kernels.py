"""Every producer process asks numpy and OpenBLAS for the same kernels before numpy loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

from producer.runtime.kernels import PORTABLE_KERNELS, cpu_flags, use_portable_kernels

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
AVX2 = frozenset({"fpu", "sse4_2", "avx", "avx2", "fma"})


def test_the_kernels_are_set_before_numpy_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "numpy", raising=False)
    environ: dict[str, str] = {"OPENBLAS_NUM_THREADS": "4"}
    assert use_portable_kernels(environ, lambda: AVX2)
    assert environ == {**PORTABLE_KERNELS, "OPENBLAS_NUM_THREADS": "4"}  # the user's stays


def test_nothing_is_set_once_numpy_is_loaded_or_without_avx2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environ: dict[str, str] = {}
    monkeypatch.setitem(sys.modules, "numpy", numpy)
    assert not use_portable_kernels(environ, lambda: AVX2)
    monkeypatch.delitem(sys.modules, "numpy")
    assert not use_portable_kernels(environ, lambda: AVX2 - {"avx2"})
    assert not use_portable_kernels(environ, frozenset)
    assert environ == {}


def test_cpu_flags_are_the_first_processors(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx2 fma\n\n"
        "processor\t: 1\nflags\t\t: fpu\n"
    )
    assert cpu_flags(cpuinfo) == {"fpu", "sse4_2", "avx2", "fma"}
    (tmp_path / "arm").write_text("processor\t: 0\nFeatures\t: fp asimd\n")
    assert cpu_flags(tmp_path / "arm") == frozenset()
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_a_producer_process_loads_the_portable_kernels() -> None:
    """What OpenBLAS reports in a fresh process that imports the producer first."""
    if not frozenset({"avx2", "fma"}).issubset(cpu_flags()):
        pytest.fail("this test needs an x86-64 CPU with AVX2 and FMA, as CI's machines have")
    script = (
        "import json, os, producer, numpy, threadpoolctl\n"
        "blas = [i for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas'][0]\n"
        "print(json.dumps({'threads': blas['num_threads'], 'arch': blas['architecture'],\n"
        "                  'numpy': os.environ.get('NPY_DISABLE_CPU_FEATURES')}))\n"
    )
    # without the variables this process got from its own import of the producer
    environ = {k: v for k, v in os.environ.items() if k not in PORTABLE_KERNELS}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == {"threads": 1, "arch": "Haswell", "numpy": "X86_V4"}

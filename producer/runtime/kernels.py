"""One choice of numeric kernels on every x86-64 CPU, so that every node fits the same model.

The learned model is fitted when a producer starts (mixtures, Baum-Welch, LAPACK), and numpy
and OpenBLAS choose their kernels by CPU when they load: a CPU with AVX-512 runs other kernels
than one with AVX2 only, and their results differ in the last bits. Rounding the fitted
matrices does not absorb that everywhere (the iterative fits carry a difference further, and a
value next to a rounding step crosses it), and a last bit of a fitted transition probability
can change a machine's regime draw. Pods of one simulation on nodes with different CPUs would
then not emit what one process emits, which the determinism contract promises.

``use_portable_kernels`` therefore asks both libraries, before numpy loads, for their AVX2
kernels on any CPU that has AVX2 and FMA (Intel since Haswell, AMD since Zen), and OpenBLAS for
one thread (a dot product split between threads sums in another order, and the thread count
follows the node's cores). The cycle loop does not use BLAS; numpy's elementwise loops run
with AVX2 instead of AVX-512 there. A variable the user set is left as it is.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, MutableMapping
from pathlib import Path

PORTABLE_KERNELS = {
    "OPENBLAS_CORETYPE": "Haswell",
    "OPENBLAS_NUM_THREADS": "1",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4",
}
"""OpenBLAS's AVX2 kernels on one thread; numpy without its AVX-512 loops."""
REQUIRED_FLAGS = frozenset({"avx2", "fma"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first processor's flags (none where there is no such file or line, e.g. on ARM)."""
    try:
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def use_portable_kernels(
    environ: MutableMapping[str, str] = os.environ,
    flags: Callable[[], frozenset[str]] = cpu_flags,
) -> bool:
    """Set ``PORTABLE_KERNELS`` (each unless already set) if numpy is not loaded yet and the
    CPU has AVX2 and FMA; whether they were set."""
    if "numpy" in sys.modules or not REQUIRED_FLAGS.issubset(flags()):
        return False
    for name, value in PORTABLE_KERNELS.items():
        environ.setdefault(name, value)
    return True

"""The C heap's policy for a process that allocates the same large arrays every cycle.

Each cycle the engine and the encoder allocate arrays of megabytes (machines x sensors) and
free them before the next. glibc's malloc adjusts itself to such a load only by accident: it
serves a block above ``M_MMAP_THRESHOLD`` with its own ``mmap`` (unmapped when freed), and it
returns the top of the heap to the kernel once more than ``M_TRIM_THRESHOLD`` of it is free;
both thresholds follow the sizes freed so far, so whether a cycle's arrays stay mapped depends
on the order in which long-lived and temporary arrays happened to be allocated. When they do
not, every cycle faults the same pages back in: page faults then take a large share of the
engine's time.

``keep_cycle_memory`` fixes both thresholds: blocks up to 32 MiB (glibc's largest mmap
threshold) come from the heap, and freed heap stays mapped for the next cycle. The resident
size then stays at the peak of a cycle, which the process reaches every cycle anyway.
"""

from __future__ import annotations

import ctypes
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""``mallopt`` parameters (glibc's ``malloc.h``)."""

MMAP_THRESHOLD = 32 * 1024 * 1024
"""Blocks from this size on get their own mapping (glibc accepts at most 32 MiB)."""
TRIM_THRESHOLD = 1024 * 1024 * 1024
"""Free heap kept mapped before any is returned to the kernel."""


def keep_cycle_memory() -> bool:
    """Set the thresholds; False where the C library is not glibc (nothing changes)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )

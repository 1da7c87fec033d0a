"""Machine ids: 8 lowercase hex characters, a keyed bijection of the machine index.

A 4-round Feistel network over 32 bits, keyed by a hash of the simulation name, permutes the
index space. Being a permutation, distinct indices always get distinct ids (no collision check
needed), and the id depends only on (simulation name, index): stable across restarts, rescaling
and pod moves. Different simulations get unrelated-looking ids.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

MAX_MACHINES = 1 << 32
_ROUNDS = 4
_MASK16 = 0xFFFF


def _round_keys(simulation_name: str) -> tuple[int, ...]:
    digest = hashlib.blake2b(simulation_name.encode("utf-8"), digest_size=4 * _ROUNDS).digest()
    return tuple(int.from_bytes(digest[4 * r : 4 * r + 4], "big") for r in range(_ROUNDS))


def _mix(half: npt.NDArray[np.uint64], key: int) -> npt.NDArray[np.uint64]:
    # A cheap avalanche of 16 bits: multiply-xorshift with a per-round key.
    x = (half ^ np.uint64(key & _MASK16)) * np.uint64(0x9E3B)
    x = x + np.uint64(key >> 16)
    x = x ^ (x >> np.uint64(7))
    x = x * np.uint64(0x2C1B)
    x = x ^ (x >> np.uint64(9))
    return x & np.uint64(_MASK16)


def machine_id_values(simulation_name: str, indices: npt.ArrayLike) -> npt.NDArray[np.uint64]:
    """The 32-bit id values of many machine indices at once (vectorised)."""
    if isinstance(indices, range):  # a shard's range: no Python loop over its members
        idx = np.arange(indices.start, indices.stop, indices.step, dtype=np.int64)
    else:
        idx = np.asarray(indices, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= MAX_MACHINES):
        raise ValueError(f"machine indices must be in 0..{MAX_MACHINES - 1}")
    value = idx.astype(np.uint64)
    left = value >> np.uint64(16)
    right = value & np.uint64(_MASK16)
    for key in _round_keys(simulation_name):
        left, right = right, left ^ _mix(right, key)
    result: npt.NDArray[np.uint64] = (left << np.uint64(16)) | right
    return result


def machine_ids(simulation_name: str, indices: npt.ArrayLike) -> list[str]:
    """The ids of many machine indices, as 8 lowercase hex characters each."""
    return [f"{int(v):08x}" for v in machine_id_values(simulation_name, indices)]


def machine_id(simulation_name: str, index: int) -> str:
    """The id of one machine."""
    return machine_ids(simulation_name, [index])[0]

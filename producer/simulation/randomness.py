"""Counter-based random numbers: the same draws for a machine whatever shard simulates it.

Every cycle each machine owns a fixed block of ``words_per_machine`` 64-bit words of a Philox
stream keyed by (seed, simulation name) and counted by (cycle, machine index). A shard that
simulates machines ``start..stop`` jumps straight to its blocks, so its draws are exactly those
the same machines get in a one-shard run, with no per-machine generator objects.

Normal variates come from the words by a piecewise-linear inverse CDF with 4096 cells (two
gathers, a multiply and an add per variate): only IEEE basic arithmetic on the hot path, so the
output is bit-identical on every CPU, unlike SIMD transcendentals. Tails are truncated at 4.0
standard deviations (probability 6e-5), which a drift and noise model does not miss.
"""

from __future__ import annotations

import hashlib
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

UInt64Array = npt.NDArray[np.uint64]
FloatArray = npt.NDArray[np.float64]

_WORDS_PER_BLOCK = 4  # Philox4x64 emits four 64-bit words per counter value
_TABLE_BITS = 12
_MANTISSA = np.uint64((1 << 52) - 1)
_ONE = np.uint64(0x3FF0000000000000)
_INDEX_SHIFT = np.uint64(64 - _TABLE_BITS)
_UNIFORM_SHIFT = np.uint64(11)
_UNIFORM_SCALE = 2.0**-53

DOMAIN_CYCLE = 0
DOMAIN_INITIAL = 1
DOMAIN_REGIME = 2
"""Each machine's operating regime: its moves and, where it starts, its first regime."""
DOMAIN_MACHINE = 3
"""What a machine is, drawn once (cycle 0): its persistent offset."""
DOMAIN_EXTREMES = 4
"""Fresh tail draws of isolated extremes (``isolated_extremes``)."""


def _inverse_cdf_table() -> tuple[FloatArray, FloatArray]:
    cells = 1 << _TABLE_BITS
    dist = NormalDist()
    # Interior edges at i/cells; the two outer edges at the 1/(8*cells) quantiles.
    edge_p = [i / cells for i in range(cells + 1)]
    edge_p[0] = 1 / (8 * cells)
    edge_p[-1] = 1 - 1 / (8 * cells)
    edges = np.array([dist.inv_cdf(p) for p in edge_p])
    return edges[:-1].copy(), np.diff(edges)


_BASE, _SLOPE = _inverse_cdf_table()
_PAIRS = np.empty(_BASE.shape, dtype=np.complex128)
"""``_BASE + i _SLOPE``: a cell's two values in one gather."""
_PAIRS.real = _BASE
_PAIRS.imag = _SLOPE


def derive_key(seed: int, simulation_name: str) -> npt.NDArray[np.uint64]:
    """The 128-bit Philox key of a (seed, simulation name) pair."""
    if not 0 <= seed < 1 << 64:
        raise ValueError(f"seed must be in 0..2**64-1, got {seed}")
    digest = hashlib.blake2b(
        seed.to_bytes(8, "big") + simulation_name.encode("utf-8"),
        digest_size=16,
        person=b"sensorsim-rng",
    ).digest()
    return np.frombuffer(digest, dtype="<u8").astype(np.uint64)


def words_per_machine(words: int) -> int:
    """Block size per machine and cycle for ``words`` draws, rounded up to whole Philox counter
    steps."""
    return -(-words // _WORDS_PER_BLOCK) * _WORDS_PER_BLOCK


class CounterStream:
    """Draws for a contiguous range of machines, addressed by (domain, cycle, machine)."""

    def __init__(self, seed: int, simulation_name: str, words_per_machine: int) -> None:
        if words_per_machine % _WORDS_PER_BLOCK:
            raise ValueError("words_per_machine must be a multiple of 4")
        self._key = derive_key(seed, simulation_name)
        self.words_per_machine = words_per_machine

    def with_words(self, words_per_machine: int) -> CounterStream:
        """The same key (seed and simulation name) with another block size (for draws of
        another domain)."""
        other = CounterStream.__new__(CounterStream)
        other._key = self._key
        other.words_per_machine = words_per_machine
        return other

    def words(
        self, cycle: int, first_machine: int, count: int, domain: int = DOMAIN_CYCLE
    ) -> UInt64Array:
        """Raw words of shape (count, words_per_machine) for machines
        ``first_machine .. first_machine + count - 1`` at ``cycle``."""
        blocks = self.words_per_machine // _WORDS_PER_BLOCK
        counter = np.array([first_machine * blocks, 0, cycle, domain], dtype=np.uint64)
        bit_generator = np.random.Philox(key=self._key, counter=counter)
        raw: UInt64Array = bit_generator.random_raw(count * self.words_per_machine)
        return raw.reshape(count, self.words_per_machine)


def normals(words: UInt64Array) -> FloatArray:
    """Standard normal variates, one per word (same shape)."""
    # the top bits of a word fit an intp: viewed as one, without a conversion pass
    index = (words >> _INDEX_SHIFT).view(np.intp)
    fraction = ((words & _MANTISSA) | _ONE).view(np.float64)
    fraction -= 1.0
    cells = np.take(_PAIRS, index)
    fraction *= cells.imag
    out: FloatArray = cells.real + fraction
    return out


def uniforms(words: UInt64Array) -> FloatArray:
    """Uniform variates in [0, 1) with 53 random bits, one per word."""
    out: FloatArray = (words >> _UNIFORM_SHIFT).astype(np.float64) * _UNIFORM_SCALE
    return out

"""Rows of bytes with a keep mask: the building blocks of the vectorised body encoder.

A row template is a sequence of regions (constant text, fixed-width fields, padding); a boolean
mask says which bytes are real. Numbers are written as digits with lookup tables (three digits
per gather) and their leading and trailing zeros masked off.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from domain.simulation_model import DECIMALS, MICROS

UInt8Array = npt.NDArray[np.uint8]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

_ZERO = ord("0")
DIG3: UInt8Array = np.array([[ord(c) for c in f"{i:03d}"] for i in range(1000)], dtype=np.uint8)
TRAIL3: BoolArray = np.array([[i != 0, i % 100 != 0, i % 10 != 0] for i in range(1000)])


class Template:
    """Accumulates a row template: bytes, and which of them are kept by default."""

    def __init__(self) -> None:
        self._chars: list[UInt8Array] = []
        self._keep: list[BoolArray] = []
        self.width = 0

    def const(self, data: bytes) -> int:
        return self.region(data, len(data))

    def region(self, data: bytes, width: int, keep: bool = True) -> int:
        """A region of ``width`` bytes starting with ``data`` (the rest padding, dropped)."""
        if len(data) > width:
            raise ValueError("region narrower than its data")
        start = self.width
        chars = np.full(width, ord(" "), dtype=np.uint8)
        chars[: len(data)] = np.frombuffer(data, dtype=np.uint8)
        mask = np.zeros(width, dtype=np.bool_)
        mask[: len(data)] = keep
        self._chars.append(chars)
        self._keep.append(mask)
        self.width += width
        return start

    def field(self, width: int) -> int:
        """A region of ``width`` bytes, all kept (overwritten every cycle)."""
        start = self.region(b"", width)
        self._keep[-1][:] = True
        return start

    def align(self, multiple: int) -> None:
        """Pad with dropped bytes to a multiple of ``multiple``."""
        if self.width % multiple:
            self.region(b"", multiple - self.width % multiple)

    def block(self, chars: UInt8Array, keep: BoolArray) -> int:
        start = self.width
        self._chars.append(chars.ravel())
        self._keep.append(keep.ravel())
        self.width += chars.size
        return start

    def build(self, rows: int) -> tuple[UInt8Array, BoolArray]:
        chars = np.concatenate(self._chars)
        keep = np.concatenate(self._keep)
        return np.tile(chars, (rows, 1)), np.tile(keep, (rows, 1))


def number_template(int_digits: int, decimals: bool) -> tuple[bytes, int]:
    """Template of a number region: sign, integer digits, and point + 6 decimals."""
    text = b"-" + b"0" * int_digits + (b"." + b"0" * DECIMALS if decimals else b"")
    return text, len(text)


def write_decimals(chars: UInt8Array, keep: BoolArray, micros: IntArray, int_digits: int) -> None:
    """Write numbers given in millionths into regions ``chars[..., 0:int_digits + 8]``.

    ``chars``/``keep`` are views of shape ``micros.shape + (int_digits + 8,)``.
    """
    negative = micros < 0
    keep[..., 0] = negative
    magnitude = np.abs(micros)
    integer = magnitude // MICROS
    fraction = magnitude - integer * MICROS
    _write_integer_digits(chars[..., 1 : 1 + int_digits], keep[..., 1 : 1 + int_digits], integer)
    point = 1 + int_digits
    high = fraction // 1000
    low = fraction - high * 1000
    chars[..., point + 1 : point + 4] = DIG3[high]
    chars[..., point + 4 : point + 7] = DIG3[low]
    low_nonzero = (low != 0)[..., None]
    keep[..., point + 4 : point + 7] = TRAIL3[low]
    keep_high = TRAIL3[high] | low_nonzero
    keep_high[..., 0] = True
    keep[..., point + 1 : point + 4] = keep_high


def write_integers(chars: UInt8Array, keep: BoolArray, values: IntArray) -> None:
    """Write non-negative integers into regions ``chars[..., 0:width]`` (width a multiple of 3)."""
    _write_integer_digits(chars, keep, values)


def _write_integer_digits(chars: UInt8Array, keep: BoolArray, values: IntArray) -> None:
    width = chars.shape[-1]
    rest = values
    for group in range(width // 3):
        end = width - 3 * group
        if group == width // 3 - 1:
            digits = rest
        else:
            digits = rest % 1000
            rest = rest // 1000
        chars[..., end - 3 : end] = DIG3[digits]
    for position in range(1, width):  # 0 = units, always kept
        keep[..., width - 1 - position] = values >= 10**position
    keep[..., width - 1] = True

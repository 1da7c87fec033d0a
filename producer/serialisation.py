"""Message bodies for a whole cycle at once, without a Python loop over sensors.

The bodies of a chunk of machines are laid out as rows of a byte matrix in which every field
has a fixed maximum width, and a boolean matrix says which bytes are real (``true``/``false``,
the text of each number, the padding around them). Numbers are written as decimal digits with
small lookup tables (three digits per gather); one boolean compaction then yields the bytes of
every body of the chunk back to back, which are sliced into one ``bytes`` per machine. The
compaction costs per run of kept bytes, so a sensor's key is right-aligned against its number
and the number's text starts at its region's first byte: key and reading are one run.

Numbers are written the way Python writes a float rounded to 6 decimals, minus exponents:
shortest fixed-point form, at least one decimal (``0.5``, ``-12.25``, ``3.0``, ``0.000001``).
The bytes equal ``orjson.dumps`` of the same dict except for values below 1e-4 in magnitude,
which orjson writes with an exponent (``1e-5``); both parse to the same float.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import orjson

from domain.messages import MessageFormat
from domain.scenarios import MAX_SCENARIO_CYCLES
from domain.simulation_model import DECIMALS, MICROS
from producer.byte_layout import Template, number_template, write_decimals, write_integers
from producer.simulation.engine import CycleResult

UInt8Array = npt.NDArray[np.uint8]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

DEFAULT_CHUNK_ROWS = 1024
EXACT_MAX_ABS = (2**53 - 1) / MICROS
"""The largest magnitude (about 9.007e9) whose 6-decimal rounding float64 represents exactly:
integer micro-units up to 2**53 - 1. Bounds above it are refused by ``BodyEncoder``."""


def int_digits_for(magnitude: float) -> int:
    """Digits of the integer part needed for values up to ``magnitude``, in groups of 3.

    Readings are rounded to 6 decimals after clipping, so a bound just below a power of ten
    (``999.9999996``) can round up to it (``1000.0``): count the digits of the rounded bound.
    """
    digits = max(1, len(str(math.floor(abs(magnitude) + 0.5 / MICROS))))
    return 3 * -(-digits // 3)


def _pack3(rows: list[tuple[int, int, int]]) -> npt.NDArray[np.uint64]:
    """Three bytes per entry, packed little-endian into the low bytes of a uint64."""
    table = np.array(rows, dtype=np.uint64)
    eight, sixteen = np.uint64(8), np.uint64(16)
    packed: npt.NDArray[np.uint64] = table[:, 0] | (table[:, 1] << eight) | (table[:, 2] << sixteen)
    return packed


def _digit_count(i: int) -> int:
    return len(str(i)) if i else 0


def _decimals_kept(i: int) -> int:
    """Decimals a 3-digit group keeps once its trailing zeros are dropped (0 for 0)."""
    return len(f"{i:03d}".rstrip("0"))


_TEXT_BITS = np.uint64(0xFFFFFF)
_LENGTH_SHIFT = np.uint64(32)


def _group_table(lengths: list[int]) -> npt.NDArray[np.uint64]:
    """Per 3-digit group ``i``: its digits (the low 3 bytes, as ``_pack3``) and, from bit 32,
    ``lengths[i]``, what the group gives the number's text length."""
    digits = _pack3(
        [(ord(f"{i:03d}"[0]), ord(f"{i:03d}"[1]), ord(f"{i:03d}"[2])) for i in range(1000)]
    )
    table: npt.NDArray[np.uint64] = digits | (np.array(lengths, dtype=np.uint64) << _LENGTH_SHIFT)
    return table


# Integer group k (0: units) of a number: 3 k + its digits when it is the most significant
# non-zero group, less otherwise, so the maximum over the groups is the count of integer digits
# (a number below 1 has one, its 0).
_INTEGER_GROUPS = [
    _group_table([max(1, _digit_count(i)) for i in range(1000)]),
    *(
        _group_table([3 * k + _digit_count(i) if i else 0 for i in range(1000)])
        for k in range(1, 4)
    ),
]
# Decimals: the point and the decimals kept, from the low group where it is not 000 (5 to 7,
# more than the high group's 2 to 4), else from the high group (at least one decimal).
_HIGH_DECIMALS = _group_table([1 + max(1, _decimals_kept(i)) for i in range(1000)])
_LOW_DECIMALS = _group_table([1 + 3 + _decimals_kept(i) if i else 0 for i in range(1000)])
_ZERO_TO_MINUS = np.uint64(ord("0") ^ ord("-"))
_SIGN_BIT = np.uint64(63)


def _lookup(
    table: npt.NDArray[np.uint64], index: npt.NDArray[np.uint64]
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """The digits and the length of each group ``index`` (below 1000: ``mode="clip"`` only
    skips the bounds check)."""
    entry = np.take(table, index, mode="clip")
    length = entry >> _LENGTH_SHIFT
    entry &= _TEXT_BITS
    return entry, length


def _ceil8(n: int) -> int:
    return -(-n // 8) * 8


class WordNumberWriter:
    """Writes numbers (in millionths) as text at the start of 8-byte-aligned regions, a 64-bit
    word at a time.

    The text is Python's for the rounded float: ``-`` where negative, the integer digits without
    leading zeros, ``.``, and the 6 decimals without trailing zeros (at least one). Every digit
    is first laid out at a fixed place (``0``, ``3 * int_groups`` integer digits, ``.``, 6
    decimals; each 3-digit group one table lookup), the region's words are then shifted down
    past the leading zeros (a negative number keeps one zero, which becomes its ``-``), and the
    keep mask is the prefix of the text's length. Starting every number at its region's first
    byte makes it one run with the key before it, and the encoder's final compaction costs per
    run.
    """

    def __init__(self, int_groups: int) -> None:
        self.int_groups = int_groups
        self.int_digits = 3 * int_groups
        self.width = _ceil8(1 + self.int_digits + 1 + DECIMALS)
        self.words = self.width // 8
        layout = np.zeros(self.width, dtype=np.uint8)
        layout[0] = ord("0")
        layout[1 + self.int_digits] = ord(".")
        self._layout = layout.view(np.uint64).copy()
        prefixes = np.arange(self.width)[None, :] < np.arange(self.width + 1)[:, None]
        prefix_words = prefixes.astype(np.uint8).view(np.uint64)
        self._prefix = [prefix_words[:, w].copy() for w in range(self.words)]
        if int_groups > len(_INTEGER_GROUPS):
            raise ValueError(f"at most {3 * len(_INTEGER_GROUPS)} integer digits")

    def _place(
        self,
        words: list[npt.NDArray[np.uint64] | None],
        values: npt.NDArray[np.uint64],
        byte_offset: int,
    ) -> None:
        """OR 3 bytes (``values``, a fresh array) into ``words`` at ``byte_offset``."""
        index, shift = divmod(byte_offset, 8)
        if shift > 5:  # three bytes spill into the next word
            self._or_into(words, index + 1, values >> np.uint64(64 - 8 * shift))
        if shift:
            values <<= np.uint64(8 * shift)
        self._or_into(words, index, values)

    def _or_into(
        self, words: list[npt.NDArray[np.uint64] | None], index: int, part: npt.NDArray[np.uint64]
    ) -> None:
        current = words[index]
        if current is None:
            part |= self._layout[index]
            words[index] = part
        else:
            current |= part

    def write(
        self,
        char_words: npt.NDArray[np.uint64],
        keep_words: npt.NDArray[np.uint64],
        micros: IntArray,
    ) -> None:
        """``char_words``/``keep_words``: views of shape ``micros.shape + (words,)``."""
        negative = micros.view(np.uint64) >> _SIGN_BIT
        magnitude = np.abs(micros).view(np.uint64)
        integer = magnitude // np.uint64(MICROS)
        fraction = magnitude - integer * np.uint64(MICROS)
        groups = []  # least significant first
        rest = integer
        for _ in range(self.int_groups - 1):
            high = rest // np.uint64(1000)
            groups.append(rest - high * np.uint64(1000))
            rest = high
        groups.append(rest)
        text: list[npt.NDArray[np.uint64] | None] = [None] * self.words
        digits: npt.NDArray[np.uint64] | None = None
        for k, group in enumerate(groups):
            group_text, group_length = _lookup(_INTEGER_GROUPS[k], group)
            self._place(text, group_text, 1 + self.int_digits - 3 * (k + 1))
            digits = (
                group_length if digits is None else np.maximum(digits, group_length, out=digits)
            )
        assert digits is not None
        high = fraction // np.uint64(1000)
        low = fraction - high * np.uint64(1000)
        point = 1 + self.int_digits
        high_text, length = _lookup(_HIGH_DECIMALS, high)
        self._place(text, high_text, point + 1)
        low_text, low_length = _lookup(_LOW_DECIMALS, low)
        self._place(text, low_text, point + 4)
        np.maximum(length, low_length, out=length)
        length += digits
        length += negative
        # bytes before the text: the fixed zero and the leading zeros, less one for a minus
        skip = np.uint64(1 + self.int_digits) - digits
        skip -= negative
        words = [w if w is not None else np.full(micros.shape, self._layout[i], np.uint64)
                 for i, w in enumerate(text)]  # fmt: skip
        if self.int_digits >= 8:  # the skip may pass a whole word
            whole = skip >= 8
            for w in range(self.words - 1):
                words[w] = np.where(whole, words[w + 1], words[w])
            words[-1] = np.where(whole, np.uint64(0), words[-1])
            skip &= np.uint64(7)
        bits = skip << np.uint64(3)
        # numpy shifts by 64 or more give 0, so a skip of 0 takes nothing from the next word
        up = np.uint64(64) - bits
        for w in range(self.words):
            shifted = words[w] >> bits
            if w + 1 < self.words:
                shifted |= words[w + 1] << up
            if w == 0:
                shifted ^= negative * _ZERO_TO_MINUS
            char_words[..., w] = shifted
            keep_words[..., w] = np.take(self._prefix[w], length, mode="clip")


class BodyEncoder:
    """Encodes the bodies of one shard's machines, cycle after cycle.

    ``max_abs_value`` bounds the readings (the clip bounds); it fixes the number of integer
    digits reserved per reading.
    """

    def __init__(  # noqa: PLR0915 - one statement per field of the layout reads best
        self,
        sensor_names: Sequence[str],
        machine_ids: Sequence[str],
        failure_types: Sequence[str],
        message_format: MessageFormat = MessageFormat.ORIGINAL,
        *,
        max_abs_value: float,
        max_episode_cycles: int = 1,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        scenarios: ScenarioFields | None = None,
    ) -> None:
        if not sensor_names:
            raise ValueError("at least one sensor")
        if not machine_ids:
            raise ValueError("at least one machine")
        self.sensors = len(sensor_names)
        self.machines = len(machine_ids)
        self.format = message_format
        self._ids: UInt8Array = (
            np.array([m.encode("ascii") for m in machine_ids], dtype="S8")
            .view(np.uint8)
            .reshape(self.machines, 8)
        )
        if not math.isfinite(max_abs_value) or abs(max_abs_value) > EXACT_MAX_ABS:
            raise ValueError(
                f"readings up to {max_abs_value:g} in magnitude cannot be written with 6 exact "
                f"decimals (the limit is {EXACT_MAX_ABS:.6f})"
            )
        self._max_micros = round(abs(max_abs_value) * MICROS)
        self._number = WordNumberWriter(int_digits_for(max_abs_value) // 3)
        self._rows = min(chunk_rows, self.machines)

        self._scenario_fields: _ScenarioRegions | None = None
        t = Template()
        t.const(b'{"machine_id":"')
        self._id_at = t.field(8)
        t.const(b'","timestamp":"')
        self._ts_at = t.field(29)
        t.const(b'","readings":{"readings":{')
        t.align(8)
        keys = [
            (b"," if j else b"") + orjson.dumps(name) + b":" for j, name in enumerate(sensor_names)
        ]
        key_width = _ceil8(max(len(k) for k in keys))
        segment = key_width + self._number.width
        block_chars = np.zeros((self.sensors, segment), dtype=np.uint8)
        block_keep = np.zeros((self.sensors, segment), dtype=np.bool_)
        # keys end where their number starts, so that key and number are one run of kept bytes
        for j, key in enumerate(keys):
            block_chars[j, key_width - len(key) : key_width] = np.frombuffer(key, dtype=np.uint8)
            block_keep[j, key_width - len(key) : key_width] = True
        self._block_at = t.block(block_chars, block_keep)
        self._segment_words = segment // 8
        self._key_words = key_width // 8
        t.const(b'},"has_failure":')
        self._flag_at = t.field(5)
        t.const(b"}")
        if message_format is MessageFormat.EXTENDED:
            t.const(b',"seq":')
            self._seq_at = t.field(21)
            t.const(b',"failure":')
            self._null_at = t.region(b"null", 4)
            self._object_at = t.const(b'{"type":')
            types = [orjson.dumps(name) for name in failure_types] or [b'""']
            type_width = max(len(x) for x in types)
            self._type_chars = np.full((len(types), type_width), ord(" "), dtype=np.uint8)
            self._type_keep = np.zeros((len(types), type_width), dtype=np.bool_)
            for i, data in enumerate(types):
                self._type_chars[i, : len(data)] = np.frombuffer(data, dtype=np.uint8)
                self._type_keep[i, : len(data)] = True
            self._type_at = t.field(type_width)
            t.const(b',"progress":')
            progress, self._progress_width = number_template(3, decimals=True)
            self._progress_at = t.region(progress, self._progress_width)
            t.const(b',"cycle":')
            self._cycle_width = 3 * -(-len(str(max(1, max_episode_cycles))) // 3)
            self._cycle_at = t.field(self._cycle_width)
            self._object_end = t.const(b"}") + 1
            if scenarios is not None:
                self._scenario_fields = _ScenarioRegions(t, scenarios.quality_labels)
        t.const(b"}")
        t.align(8)
        self.width = t.width
        self._chars, self._keep = t.build(self._rows)
        if message_format is MessageFormat.EXTENDED:
            self._object_keep = self._keep[0, self._object_at : self._object_end].copy()
        self._flag_chars = np.array([list(b"false"), list(b"true ")], dtype=np.uint8)
        self._flag_keep = np.array([[True] * 5, [True] * 4 + [False]])

    def encode(self, result: CycleResult, timestamp: str, count: int | None = None) -> list[bytes]:
        """The bodies of the first ``count`` machines (all by default) of a cycle."""
        total = self.machines if count is None else count
        ts = timestamp.encode("ascii")
        if len(ts) != 29:
            raise ValueError(f"timestamp must look like 2026-11-29T12:34:56.789+00:00: {timestamp}")
        micros = result.micros
        if micros.size:
            # A NaN or an overflow becomes INT64_MIN in micro-units, which would index the digit
            # tables out of range: refuse any value outside the clip bounds instead.
            low, high = int(micros.min()), int(micros.max())
            if low < -self._max_micros or high > self._max_micros:
                raise ValueError(
                    f"cycle {result.cycle}: a reading ({low if low < -self._max_micros else high} "
                    f"micro-units) lies outside the bounds +-{self._max_micros} (NaN or overflow "
                    "in the simulation)"
                )
        bodies: list[bytes] = []
        for start in range(0, total, self._rows):
            stop = min(start + self._rows, total)
            bodies.extend(self._encode_chunk(result, micros, ts, start, stop))
        return bodies

    def restamp(self, body: bytes, timestamp: str) -> bytes:
        """``body`` (one this encoder wrote) with another timestamp (a late record's)."""
        stamp = timestamp.encode("ascii")
        if len(stamp) != 29:
            raise ValueError(f"timestamp must look like 2026-11-29T12:34:56.789+00:00: {timestamp}")
        return body[: self._ts_at] + stamp + body[self._ts_at + 29 :]

    def _encode_chunk(
        self, result: CycleResult, micros: IntArray, ts: bytes, start: int, stop: int
    ) -> list[bytes]:
        n = stop - start
        chars = self._chars[:n]
        keep = self._keep[:n]
        chars[:, self._id_at : self._id_at + 8] = self._ids[start:stop]
        chars[:, self._ts_at : self._ts_at + 29] = np.frombuffer(ts, dtype=np.uint8)

        words = self.sensors * self._segment_words
        first = self._block_at // 8
        char_words = chars.view(np.uint64)[:, first : first + words]
        keep_words = keep.view(np.uint64)[:, first : first + words]
        shape = (n, self.sensors, self._segment_words)
        number = slice(self._key_words, None)
        self._number.write(
            char_words.reshape(shape)[:, :, number],
            keep_words.reshape(shape)[:, :, number],
            micros[start:stop],
        )

        flag = result.failing[start:stop].view(np.uint8)
        chars[:, self._flag_at : self._flag_at + 5] = self._flag_chars[flag]
        keep[:, self._flag_at : self._flag_at + 5] = self._flag_keep[flag]

        if self.format is MessageFormat.EXTENDED:
            self._encode_extended(chars, keep, result, start, stop)
            if self._scenario_fields:
                self._scenario_fields.write(chars, keep, result, start, stop)
        if result.labels is not None and result.labels.nulls is not None:
            self._write_nulls(chars, keep, result.labels.nulls[start:stop])

        flat = chars[keep]
        kept = keep.view(np.uint64)
        lengths = ((kept * np.uint64(0x0101010101010101)) >> np.uint64(56)).sum(axis=1)
        ends = np.cumsum(lengths).tolist()
        data = flat.tobytes()
        return [data[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]

    def _write_nulls(self, chars: UInt8Array, keep: BoolArray, nulls: BoolArray) -> None:
        """``null`` in place of the readings a dropout removed."""
        rows, sensors = np.nonzero(nulls)
        if rows.size == 0:
            return
        segment = self._segment_words * 8
        at = self._block_at + sensors * segment + self._key_words * 8
        for offset in range(self._number.width):
            chars[rows, at + offset] = b"null"[offset] if offset < 4 else ord(" ")
            keep[rows, at + offset] = offset < 4

    def _encode_extended(
        self, chars: UInt8Array, keep: BoolArray, result: CycleResult, start: int, stop: int
    ) -> None:
        seq_text = str(result.cycle).encode("ascii")
        seq = slice(self._seq_at, self._seq_at + 21)
        chars[:, seq] = ord(" ")
        chars[:, self._seq_at : self._seq_at + len(seq_text)] = np.frombuffer(seq_text, np.uint8)
        keep[:, seq] = False
        keep[:, self._seq_at : self._seq_at + len(seq_text)] = True

        failing = result.failing[start:stop]
        keep[:, self._null_at : self._null_at + 4] = ~failing[:, None]
        obj = slice(self._object_at, self._object_end)
        keep[:, obj] = self._object_keep
        ftype = result.failure_type[start:stop]
        width = self._type_chars.shape[1]
        chars[:, self._type_at : self._type_at + width] = self._type_chars[ftype]
        keep[:, self._type_at : self._type_at + width] = self._type_keep[ftype]
        progress_micros = np.rint(result.progress[start:stop] * MICROS).astype(np.int64)
        region = slice(self._progress_at, self._progress_at + self._progress_width)
        write_decimals(chars[:, region], keep[:, region], progress_micros, 3)
        region = slice(self._cycle_at, self._cycle_at + self._cycle_width)
        write_integers(chars[:, region], keep[:, region], result.episode_cycle[start:stop])
        keep[:, obj] &= failing[:, None]


@dataclass(frozen=True, slots=True)
class ScenarioFields:
    """The extended body of a simulation with scenarios ends with ``"health"`` (0..1),
    ``"rul_cycles"`` and ``"quality"`` (``<fault>:<sensors>``), each ``null`` where it does
    not apply."""

    quality_labels: tuple[str, ...]


class _ScenarioRegions:
    """The regions of the scenario fields in a row template, and their writing."""

    def __init__(self, t: Template, quality_labels: Sequence[str]) -> None:
        t.const(b',"health":')
        self._health_null = t.region(b"null", 4)
        text, self._health_width = number_template(3, decimals=True)
        self._health = t.region(text, self._health_width)
        t.const(b',"rul_cycles":')
        self._rul_null = t.region(b"null", 4)
        self._rul_width = 3 * -(-len(str(MAX_SCENARIO_CYCLES)) // 3)
        self._rul = t.field(self._rul_width)
        t.const(b',"quality":')
        self._quality_null = t.region(b"null", 4)
        labels = [orjson.dumps(label) for label in quality_labels] or [b'""']
        width = max(len(label) for label in labels)
        self._label_chars = np.full((len(labels), width), ord(" "), dtype=np.uint8)
        self._label_keep = np.zeros((len(labels), width), dtype=np.bool_)
        for i, data in enumerate(labels):
            self._label_chars[i, : len(data)] = np.frombuffer(data, dtype=np.uint8)
            self._label_keep[i, : len(data)] = True
        self._quality = t.field(width)

    def write(
        self, chars: UInt8Array, keep: BoolArray, result: CycleResult, start: int, stop: int
    ) -> None:
        n = stop - start
        labels = result.labels
        if labels is None:
            health = np.full(n, np.nan)
            rul = np.full(n, -1, dtype=np.int64)
            quality = np.full(n, -1, dtype=np.int64)
        else:
            health = labels.health[start:stop]
            rul = labels.rul_cycles[start:stop]
            quality = labels.quality[start:stop]
        known = ~np.isnan(health)
        keep[:, self._health_null : self._health_null + 4] = ~known[:, None]
        region = slice(self._health, self._health + self._health_width)
        micros = np.rint(np.where(known, health, 0.0) * MICROS).astype(np.int64)
        write_decimals(chars[:, region], keep[:, region], micros, 3)
        keep[:, self._health + 4] = True  # the point (the rows' masks are reused)
        keep[:, region] &= known[:, None]
        has_rul = rul >= 0
        keep[:, self._rul_null : self._rul_null + 4] = ~has_rul[:, None]
        region = slice(self._rul, self._rul + self._rul_width)
        write_integers(chars[:, region], keep[:, region], np.maximum(rul, 0))
        keep[:, region] &= has_rul[:, None]
        faulty = quality >= 0
        keep[:, self._quality_null : self._quality_null + 4] = ~faulty[:, None]
        width = self._label_chars.shape[1]
        index = np.maximum(quality, 0)
        chars[:, self._quality : self._quality + width] = self._label_chars[index]
        keep[:, self._quality : self._quality + width] = self._label_keep[index] & faulty[:, None]

"""Which columns of a reference table are sensors, the label, the time and the group.

The settings ``SENSOR_COLUMNS``, ``LABEL_COLUMN``, ``NORMAL_LABELS``, ``TIME_COLUMN`` and
``GROUP_COLUMN`` (docs/simulation.md, "Reference data") in one value, parsed from their text.
Label values are compared after :func:`normalise_label`, so ``0``, ``0.0`` and `` 0 `` are one
value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

DEFAULT_LABEL_COLUMN: Final = "Label"


def normalise_label(value: str) -> str:
    """Blank stays blank; a number that is a whole number loses its ``.0``.

    >>> [normalise_label(v) for v in ["", " 1.0 ", "3", "bearing_wear", "2.5", "True"]]
    ['', '1', '3', 'bearing_wear', '2.5', 'True']
    """
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isfinite(number) and number.is_integer():
        return str(int(number))
    return text


def split_list(text: str | None) -> tuple[str, ...]:
    """The items of a comma-separated list, stripped, blanks dropped.

    >>> split_list(" a, b ,,c ")
    ('a', 'b', 'c')
    """
    if text is None:
        return ()
    return tuple(item.strip() for item in text.split(",") if item.strip())


@dataclass(frozen=True, slots=True)
class ReferenceColumns:
    """The roles of a reference table's columns (``None``/empty: the default rule)."""

    sensors: tuple[str, ...] = ()
    """Empty: the ``Sensor <n>`` columns if any, else every numeric column but the others."""
    label: str = DEFAULT_LABEL_COLUMN
    label_required: bool = False
    """The label column was named by the user: a table without it is refused."""
    normal_labels: frozenset[str] = frozenset()
    """Normalised label values that mean normal; a blank label always does."""
    time: str | None = None
    group: str | None = None

    @classmethod
    def parse(
        cls,
        *,
        sensors: str | None = None,
        label: str = DEFAULT_LABEL_COLUMN,
        label_set: bool = False,
        normal_labels: str = "",
        time: str | None = None,
        group: str | None = None,
    ) -> ReferenceColumns:
        """From the settings' text: comma-separated lists, names stripped."""
        return cls(
            sensors=split_list(sensors),
            label=label.strip(),
            label_required=label_set,
            normal_labels=frozenset(normalise_label(v) for v in split_list(normal_labels)),
            time=time.strip() if time else None,
            group=group.strip() if group else None,
        )

    def is_normal(self, label: str) -> bool:
        """A normalised label value means a normal row."""
        return label == "" or label in self.normal_labels

    @property
    def roles(self) -> dict[str, str]:
        """Column name -> the setting that gave it its non-sensor role."""
        named = {self.label: "LABEL_COLUMN"}
        if self.time is not None:
            named[self.time] = "TIME_COLUMN"
        if self.group is not None:
            named[self.group] = "GROUP_COLUMN"
        return named

    def settings_text(self) -> dict[str, str]:
        """The non-default settings, by variable (for fingerprints and reports)."""
        text: dict[str, str] = {}
        if self.sensors:
            text["SENSOR_COLUMNS"] = ",".join(self.sensors)
        if self.label != DEFAULT_LABEL_COLUMN:
            text["LABEL_COLUMN"] = self.label
        if self.normal_labels:
            text["NORMAL_LABELS"] = ",".join(sorted(self.normal_labels))
        if self.time is not None:
            text["TIME_COLUMN"] = self.time
        if self.group is not None:
            text["GROUP_COLUMN"] = self.group
        return text

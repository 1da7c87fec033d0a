"""The sensor and failure model of the simulation: its constants and pure rules.

These are the documented behaviours of the system sensorsim grew out of, written once so the
engine, the docs and the tests share them:

* each cycle a sensor's underlying value takes a random step ``N(0, DRIFT_FACTOR * std)``, then
  moves ``MEAN_REVERSION`` of the way back to the learned mean, then is clipped to its bounds;
* the bounds are the learned range widened outwards by ``BOUND_FACTOR`` (``[1.2*min, 1.2*max]``
  in the original, which only widens a range that straddles zero; here each end moves away from
  zero by 20 % of its own magnitude, which is the same thing for such a range and still a
  widening for a strictly positive one such as a temperature);
* a failure episode starts with a fixed probability on a cycle that follows a healthy reading,
  lasts a whole number of cycles drawn uniformly from ``[min_cycles, max_cycles]``, keeps one
  failure type, and blends the readings linearly towards the type's signature over
  ``ramp_cycles`` cycles.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class SimulationModel(StrEnum):
    """How healthy readings are generated (docs: README, "Simulation models")."""

    LEARNED = "learned"
    """The reference's marginals and rank dependence, a persistent process in time."""
    ORIGINAL = "original"
    """The seed system's mean-reverting walk, byte for byte."""


DEFAULT_PERSISTENCE = 0.95
"""Per-cycle autocorrelation of the learned model's latent process (the original's 5 %
mean reversion)."""

MAX_REGIMES = 24
"""The most operating regimes the learned model fits (or SIMULATION_REGIMES may ask for)."""

ORIGINAL_FAILURE_PROBABILITY = 0.05
"""The seed system's per-cycle start chance of a failure episode (the original model's default:
with 30-60-cycle episodes, about 69 % of readings are failing)."""

DRIFT_FACTOR = 0.1
"""Standard deviation of a sensor's random step, as a fraction of its learned std."""

MEAN_REVERSION = 0.05
"""Fraction of the distance to the learned mean recovered every cycle."""

BOUND_FACTOR = 1.2
"""How far the bounds sit from zero, relative to the learned minimum and maximum."""

DECIMALS = 6
"""Readings are rounded to this many decimals on the wire."""

MICROS = 10**DECIMALS
"""Readings travel as integer millionths between the engine and the encoder."""


def widened_bounds(minimum: float, maximum: float) -> tuple[float, float]:
    """The clip bounds of a sensor whose learned range is ``[minimum, maximum]``.

    >>> widened_bounds(-1.0, 1.0)
    (-1.2, 1.2)
    >>> widened_bounds(60.0, 90.0)
    (48.0, 108.0)
    """
    if minimum > maximum:
        raise ValueError(f"minimum {minimum} is above maximum {maximum}")
    spread = BOUND_FACTOR - 1.0
    return minimum - spread * abs(minimum), maximum + spread * abs(maximum)


@dataclass(frozen=True, slots=True)
class FailureModel:
    """When failure episodes start, how long they last and how fast they set in.

    ``probability``: chance per cycle that a healthy machine starts an episode (0..1).
    ``min_cycles``/``max_cycles``: inclusive range of an episode's length in cycles.
    ``ramp_cycles``: cycles over which the readings blend linearly into the failure signature
    (0 = at once).
    """

    probability: float = ORIGINAL_FAILURE_PROBABILITY
    min_cycles: int = 30
    max_cycles: int = 60
    ramp_cycles: int = 10

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"failure probability must be in [0, 1], got {self.probability}")
        if self.min_cycles < 1:
            raise ValueError(f"failure min cycles must be >= 1, got {self.min_cycles}")
        if self.max_cycles < self.min_cycles:
            raise ValueError(
                f"failure max cycles ({self.max_cycles}) must be >= min cycles ({self.min_cycles})"
            )
        if self.ramp_cycles < 0:
            raise ValueError(f"failure ramp cycles must be >= 0, got {self.ramp_cycles}")

    def progress(self, episode_cycle: int) -> float:
        """Blend weight of the failure signature on the ``episode_cycle``-th failing reading
        (1-based): ``min(1, episode_cycle / ramp_cycles)``.

        >>> FailureModel(ramp_cycles=10).progress(3)
        0.3
        >>> FailureModel(ramp_cycles=0).progress(1)
        1.0
        """
        if episode_cycle < 1:
            raise ValueError(f"episode cycles count from 1, got {episode_cycle}")
        if self.ramp_cycles == 0:
            return 1.0
        return min(1.0, episode_cycle / self.ramp_cycles)

    def duration_from_uniform(self, u: float) -> int:
        """Map a uniform draw in [0, 1) to an episode length in [min_cycles, max_cycles]."""
        span = self.max_cycles - self.min_cycles + 1
        return self.min_cycles + min(span - 1, int(u * span))

    @property
    def mean_episode_cycles(self) -> float:
        return (self.min_cycles + self.max_cycles) / 2.0

    def failing_share(self) -> float:
        """Expected long-run share of failing readings.

        After an episode a machine is healthy for one reading, then starts a new episode with
        probability ``p`` each cycle: healthy spells last ``1/p`` cycles on average, episodes
        ``(min + max) / 2``.

        >>> round(FailureModel().failing_share(), 3)
        0.692
        >>> FailureModel(probability=0).failing_share()
        0.0
        """
        if self.probability == 0:
            return 0.0
        episode = self.mean_episode_cycles
        return episode / (episode + 1.0 / self.probability)

    def probability_for_share(self, share: float) -> float:
        """The ``probability`` that gives a long-run failing ``share`` (0 <= share < 1) with
        this model's episode lengths.

        >>> round(FailureModel().probability_for_share(0.05), 5)
        0.00117
        """
        if not 0.0 <= share < 1.0:
            raise ValueError(f"share must be in [0, 1), got {share}")
        return min(1.0, share / (self.mean_episode_cycles * (1.0 - share)))

    def with_share(self, share: float) -> FailureModel:
        """This model with the start ``probability`` that gives a long-run failing ``share``.

        >>> round(FailureModel().with_share(0.0625).failing_share(), 6)
        0.0625
        """
        return replace(self, probability=self.probability_for_share(share))

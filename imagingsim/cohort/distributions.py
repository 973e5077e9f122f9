"""The distributions a cohort's ``[vary]`` table may draw a scenario field from.

Each is a validated table (``distribution = "..."`` picks the kind) with a ``draw(rng)`` of one
value and ``probes()``: values spanning its support, which the cohort loader validates in the
base scenario so that a distribution able to produce an invalid value is refused before any
subject is simulated.

References
----------
The truncated normal is drawn by inversion, x = mu + sd Phi^-1(u), u uniform on
[Phi(a), Phi(b)]: exact, one uniform per value (Devroye, Non-Uniform Random Variate
Generation, Springer 1986, section II.2).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator
from scipy import special

from imagingsim.scenario import SpecModel

#: The unbounded normal and lognormal are probed this many standard deviations out: a value
#: further out has probability below 1e-15 per draw.
PROBE_SDS = 8.0

Finite = Annotated[float, Field(allow_inf_nan=False)]


def _clip(value: float, low: float | None, high: float | None) -> float:
    """``value`` within [low, high]; an absent bound does not clip."""
    if low is not None:
        value = max(value, low)
    if high is not None:
        value = min(value, high)
    return value


class Uniform(SpecModel):
    """Uniform on [low, high]."""

    distribution: Literal["uniform"]
    low: Finite
    high: Finite

    @model_validator(mode="after")
    def _ordered(self):
        if not self.low < self.high:
            raise ValueError(f"low must be below high, got low {self.low!r}, high {self.high!r}")
        return self

    def draw(self, rng: np.random.Generator) -> float:
        return float(self.low + (self.high - self.low) * rng.random())

    def probes(self) -> list[Any]:
        return [self.low, self.high]


class Normal(SpecModel):
    """Normal with ``mean`` and ``sd``, optionally truncated to [low, high] (either may be absent)."""

    distribution: Literal["normal"]
    mean: Finite
    sd: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    low: Finite | None = None
    high: Finite | None = None

    @model_validator(mode="after")
    def _window(self):
        lo, hi = self._bounds()
        if not lo < hi:
            raise ValueError(f"low must be below high, got low {self.low!r}, high {self.high!r}")
        if special.ndtr(hi) - special.ndtr(lo) < 1e-6:
            raise ValueError("the truncation window holds less than 1e-6 of the distribution")
        return self

    def _bounds(self) -> tuple[float, float]:
        """The truncation window in standard deviations from the mean."""
        lo = -math.inf if self.low is None else (self.low - self.mean) / self.sd
        hi = math.inf if self.high is None else (self.high - self.mean) / self.sd
        return lo, hi

    def draw(self, rng: np.random.Generator) -> float:
        lo, hi = self._bounds()
        u = special.ndtr(lo) + (special.ndtr(hi) - special.ndtr(lo)) * rng.random()
        # inversion rounding may step a hair outside the window
        return _clip(self.mean + self.sd * float(special.ndtri(u)), self.low, self.high)

    def probes(self) -> list[Any]:
        low = self.low if self.low is not None else self.mean - PROBE_SDS * self.sd
        high = self.high if self.high is not None else self.mean + PROBE_SDS * self.sd
        return [low, high]


class LogNormal(SpecModel):
    """Lognormal: ``log(x)`` normal with mean ``log(median)`` and sd ``sd_log``, optionally
    truncated to [low, high] (drawn by inversion in log space, like :class:`Normal`)."""

    distribution: Literal["lognormal"]
    median: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    sd_log: Annotated[float, Field(gt=0.0, le=5.0, allow_inf_nan=False)]
    low: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None
    high: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None

    def _log_normal(self) -> Normal:
        """The distribution of ``log(x)``."""
        return Normal(
            distribution="normal", mean=math.log(self.median), sd=self.sd_log,
            low=None if self.low is None else math.log(self.low),
            high=None if self.high is None else math.log(self.high),
        )

    @model_validator(mode="after")
    def _window(self):
        self._log_normal()  # the same checks as a truncated normal, in log space
        return self

    def draw(self, rng: np.random.Generator) -> float:
        return _clip(math.exp(self._log_normal().draw(rng)), self.low, self.high)  # exp rounding, as above

    def probes(self) -> list[Any]:
        return [math.exp(v) for v in self._log_normal().probes()]


class Choice(SpecModel):
    """One of ``values`` (numbers, strings, booleans), with optional ``weights`` (default equal)."""

    distribution: Literal["choice"]
    values: Annotated[list[Any], Field(min_length=1, max_length=1000)]
    weights: list[Annotated[float, Field(gt=0.0, allow_inf_nan=False)]] | None = None

    @model_validator(mode="after")
    def _weights_match(self):
        if self.weights is not None and len(self.weights) != len(self.values):
            raise ValueError(f"weights has {len(self.weights)} entries for {len(self.values)} values")
        return self

    def probabilities(self) -> list[float]:
        weights = self.weights or [1.0] * len(self.values)
        total = math.fsum(weights)
        return [w / total for w in weights]

    def draw(self, rng: np.random.Generator) -> Any:
        cumulative = np.cumsum(self.probabilities())
        index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
        return self.values[min(index, len(self.values) - 1)]

    def probes(self) -> list[Any]:
        return list(self.values)


class Constant(SpecModel):
    """Always ``value``."""

    distribution: Literal["constant"]
    value: Any

    def draw(self, rng: np.random.Generator) -> Any:
        rng.random()  # one draw like the others, so every kind consumes its stream alike
        return self.value

    def probes(self) -> list[Any]:
        return [self.value]


Distribution = Annotated[Uniform | Normal | LogNormal | Choice | Constant, Field(discriminator="distribution")]

__all__ = ["PROBE_SDS", "Choice", "Constant", "Distribution", "LogNormal", "Normal", "Uniform"]

"""Leaf parameter types of a search space: Float, Int, Categorical, Fixed.

Pure value objects.  Each maps a value to and from the unit interval [0, 1] (``encode`` /
``decode``), samples with an injected ``numpy.random.Generator`` and lists grid points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from .. import validate
from ..errors import ConfigError


def _check_number(name: str, key: str, value: Any) -> float:
    return validate.number(value, f"{name}: '{key}'", kind="a finite number")


class Param:
    """Base class of one search dimension.  ``name`` is its dotted path inside the space."""

    name: str = ""

    def sample(self, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def encode(self, value: Any) -> float:
        """Map a value to [0, 1] (categoricals: the index's bin centre)."""
        raise NotImplementedError

    def decode(self, u: float) -> Any:
        """Map u in [0, 1] back to a valid value (rounded to step / int / category)."""
        raise NotImplementedError

    def grid(self, degree: Optional[int] = None) -> list[Any]:
        """Grid points: ``degree`` points for numeric ranges (or every ``step``), all categories."""
        raise NotImplementedError

    def contains(self, value: Any) -> bool:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass
class Float(Param):
    """A real number in [low, high]; ``log`` scale needs low > 0; ``step`` quantises."""

    low: float
    high: float
    log: bool = False
    step: Optional[float] = None
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        where = self.name or "Float"
        self.low = _check_number(where, "low", self.low)
        self.high = _check_number(where, "high", self.high)
        if self.low > self.high:
            raise ConfigError(f"{where}: low must be <= high, got low={self.low!r} > high={self.high!r}")
        if self.log and self.low <= 0:
            raise ConfigError(f"{where}: log scale needs low > 0, got low={self.low!r}")
        if self.step is not None:
            self.step = _check_number(where, "step", self.step)
            if self.step <= 0:
                raise ConfigError(f"{where}: step must be > 0, got step={self.step!r}")
            if self.log:
                raise ConfigError(f"{where}: step and log=true cannot be combined (step={self.step!r})")

    def quantise(self, x: float) -> float:
        if self.step is not None:  # rounded so that 0.1 * 9 prints as 0.9, not 0.8999999999999999
            x = round(self.low + round((x - self.low) / self.step) * self.step, 12)
        return float(min(max(x, self.low), self.high))

    def sample(self, rng: np.random.Generator) -> float:
        return self.decode(float(rng.random()))

    def encode(self, value: Any) -> float:
        if self.high == self.low:
            return 0.5
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (float(value) - self.low) / (self.high - self.low)

    def decode(self, u: float) -> float:
        u = min(max(float(u), 0.0), 1.0)
        if u in (0.0, 1.0):
            x = self.low if u == 0.0 else self.high
        elif self.log:
            x = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            x = self.low + u * (self.high - self.low)
        return self.quantise(x)

    def grid(self, degree: Optional[int] = None) -> list[Any]:
        if self.step is not None and degree is None:
            n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
            return [self.quantise(self.low + i * self.step) for i in range(n)]
        degree = 5 if degree is None else degree
        if degree == 1:
            return [self.decode(0.5)]
        return _unique([self.decode(i / (degree - 1)) for i in range(degree)])

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and self.low <= value <= self.high

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "float", "low": self.low, "high": self.high}
        if self.log:
            d["log"] = True
        if self.step is not None:
            d["step"] = self.step
        return d


@dataclass
class Int(Param):
    """An integer in [low, high] (inclusive); ``log`` scale needs low >= 1; ``step`` >= 1."""

    low: int
    high: int
    log: bool = False
    step: int = 1
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        where = self.name or "Int"
        for key in ("low", "high", "step"):
            v = getattr(self, key)
            setattr(self, key, validate.integer(v, f"{where}: '{key}'", whole_floats=True))
        if self.low > self.high:
            raise ConfigError(f"{where}: low must be <= high, got low={self.low!r} > high={self.high!r}")
        if self.log and self.low < 1:
            raise ConfigError(f"{where}: log scale needs low >= 1, got low={self.low!r}")
        if self.step < 1:
            raise ConfigError(f"{where}: step must be >= 1, got step={self.step!r}")
        if self.log and self.step != 1:
            raise ConfigError(f"{where}: step and log=true cannot be combined (step={self.step!r})")

    def quantise(self, x: float) -> int:
        k = round((x - self.low) / self.step)
        v = self.low + k * self.step
        while v > self.high:
            v -= self.step
        return int(max(v, self.low))

    def sample(self, rng: np.random.Generator) -> int:
        return self.decode(float(rng.random()))

    def encode(self, value: Any) -> float:
        if self.high == self.low:
            return 0.5
        if self.log:
            lo, hi = math.log(self.low - 0.5), math.log(self.high + 0.5)
            return (math.log(value) - lo) / (hi - lo)
        return (float(value) - self.low + 0.5) / (self.high - self.low + 1)

    def decode(self, u: float) -> int:
        u = min(max(float(u), 0.0), 1.0)
        if self.log:
            lo, hi = math.log(self.low - 0.5), math.log(self.high + 0.5)
            x = math.exp(lo + u * (hi - lo))
        else:
            x = self.low - 0.5 + u * (self.high - self.low + 1)
        return self.quantise(min(max(x, self.low), self.high))

    def grid(self, degree: Optional[int] = None) -> list[Any]:
        values = list(range(self.low, self.high + 1, self.step))
        if degree is None or degree >= len(values):
            return values
        if degree == 1:
            return [values[len(values) // 2]]
        if self.log:
            pts = np.geomspace(self.low, self.high, degree)
        else:
            pts = np.linspace(self.low, self.high, degree)
        return _unique([self.quantise(float(p)) for p in pts])

    def contains(self, value: Any) -> bool:
        return bool(
            isinstance(value, (int, np.integer))
            and self.low <= value <= self.high
            and (value - self.low) % self.step == 0
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "int", "low": self.low, "high": self.high}
        if self.log:
            d["log"] = True
        if self.step != 1:
            d["step"] = self.step
        return d


@dataclass
class Categorical(Param):
    """One of a fixed list of choices (strings, numbers or booleans)."""

    choices: Sequence[Any]
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        where = self.name or "Categorical"
        if isinstance(self.choices, (str, bytes)) or not isinstance(self.choices, Sequence) or not self.choices:
            raise ConfigError(f"{where}: choices must be a non-empty list, got {self.choices!r}")
        self.choices = list(self.choices)
        for c in self.choices:
            if not isinstance(c, (str, int, float, bool)) or c is None:
                raise ConfigError(f"{where}: choices must be strings, numbers or booleans, got {c!r}")
        if len(set(map(repr, self.choices))) != len(self.choices):
            raise ConfigError(f"{where}: choices must be distinct, got {self.choices!r}")

    def index(self, value: Any) -> int:
        for i, c in enumerate(self.choices):
            if c == value and type(c) is type(value) or repr(c) == repr(value):
                return i
        raise ValueError(f"{value!r} is not one of {self.choices!r}")

    def sample(self, rng: np.random.Generator) -> Any:
        return self.choices[int(rng.integers(len(self.choices)))]

    def encode(self, value: Any) -> float:
        return (self.index(value) + 0.5) / len(self.choices)

    def decode(self, u: float) -> Any:
        i = min(int(min(max(float(u), 0.0), 1.0) * len(self.choices)), len(self.choices) - 1)
        return self.choices[i]

    def grid(self, degree: Optional[int] = None) -> list[Any]:
        return list(self.choices)

    def contains(self, value: Any) -> bool:
        try:
            self.index(value)
            return True
        except ValueError:
            return False

    def to_dict(self) -> dict[str, Any]:
        return {"type": "categorical", "choices": list(self.choices)}


@dataclass
class Fixed(Param):
    """A constant passed to the objective but never searched."""

    value: Any
    name: str = field(default="", compare=False)

    def sample(self, rng: np.random.Generator) -> Any:
        return self.value

    def encode(self, value: Any) -> float:
        return 0.5

    def decode(self, u: float) -> Any:
        return self.value

    def grid(self, degree: Optional[int] = None) -> list[Any]:
        return [self.value]

    def contains(self, value: Any) -> bool:
        return bool(value == self.value)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "fixed", "value": self.value}


def _unique(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if not out or all(v != o for o in out):
            out.append(v)
    return out

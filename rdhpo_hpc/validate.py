"""Checks of user-given values: what counts as a number, an integer or a flag, and one message shape.

Every option that a user writes (YAML config, ``rd.optimize`` arguments, optimizer and scheduler
options, search-space bounds, fault plans, built-in model settings) is checked here, when the
object that takes it is built, before any trial runs.  A bad value raises :class:`ConfigError`
with one message that names the option and quotes the value: ``WHAT must be KIND RANGE, got V``.

``True``/``False`` are never numbers (``isinstance(True, int)`` is true in Python, and a YAML
``yes`` would silently become 1); NaN and infinities are never numbers either.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Literal, Optional, overload

from .errors import ConfigError

__all__ = ["is_real", "is_integer", "number", "integer", "flag", "describe_range"]


def is_real(v: Any) -> bool:
    """A finite real number (Python or NumPy), not a bool."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def is_integer(v: Any, whole_floats: bool = False) -> bool:
    """An integer (Python or NumPy), not a bool; with ``whole_floats`` also a float such as 64.0."""
    if isinstance(v, bool):
        return False
    if isinstance(v, numbers.Integral):
        return True
    return whole_floats and is_real(v) and float(v).is_integer()


def describe_range(lo: float = -math.inf, hi: float = math.inf, lo_open: bool = False, hi_open: bool = False) -> str:
    """``'>= 0'``, ``'> 1'``, ``'<= 1'``, ``'in [0, 1]'``, ``'in (0, 1]'`` or ``''`` (no bound)."""
    if lo == -math.inf and hi == math.inf:
        return ""
    if hi == math.inf:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if lo == -math.inf:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def _fail(what: str, kind: str, rng: str, v: Any, allow_none: bool, note: str) -> ConfigError:
    bound = f" {rng}" if rng else ""
    return ConfigError(f"{what} must be {kind}{bound}{' or null' if allow_none else ''}{note}, got {v!r}")


def _within(f: float, lo: float, hi: float, lo_open: bool, hi_open: bool) -> bool:
    return (f > lo if lo_open else f >= lo) and (f < hi if hi_open else f <= hi)


@overload
def number(
    v: Any,
    what: str,
    lo: float = ...,
    hi: float = ...,
    *,
    lo_open: bool = ...,
    hi_open: bool = ...,
    allow_none: Literal[False] = ...,
    kind: str = ...,
    note: str = ...,
) -> float: ...
@overload
def number(
    v: Any,
    what: str,
    lo: float = ...,
    hi: float = ...,
    *,
    lo_open: bool = ...,
    hi_open: bool = ...,
    allow_none: bool = ...,
    kind: str = ...,
    note: str = ...,
) -> Optional[float]: ...
def number(
    v: Any,
    what: str,
    lo: float = -math.inf,
    hi: float = math.inf,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    allow_none: bool = False,
    kind: str = "a number",
    note: str = "",
) -> Optional[float]:
    """``v`` as a float in the interval, else ConfigError naming ``what`` (e.g. ``"'t_fail'"``).

    ``kind`` words the value in the message ("a number of seconds"); ``note`` is appended to the
    range ("; see eta").  ``None`` passes (and is returned) only with ``allow_none``."""
    if v is None and allow_none:
        return None
    if not is_real(v) or not _within(float(v), lo, hi, lo_open, hi_open):
        raise _fail(what, kind, describe_range(lo, hi, lo_open, hi_open), v, allow_none, note)
    return float(v)


@overload
def integer(
    v: Any,
    what: str,
    lo: float = ...,
    hi: float = ...,
    *,
    allow_none: Literal[False] = ...,
    whole_floats: bool = ...,
    note: str = ...,
) -> int: ...
@overload
def integer(
    v: Any,
    what: str,
    lo: float = ...,
    hi: float = ...,
    *,
    allow_none: bool = ...,
    whole_floats: bool = ...,
    note: str = ...,
) -> Optional[int]: ...
def integer(
    v: Any,
    what: str,
    lo: float = -math.inf,
    hi: float = math.inf,
    *,
    allow_none: bool = False,
    whole_floats: bool = False,
    note: str = "",
) -> Optional[int]:
    """``v`` as an int in ``[lo, hi]``, else ConfigError naming ``what``; ``whole_floats`` accepts 64.0."""
    if v is None and allow_none:
        return None
    if not is_integer(v, whole_floats) or not _within(float(v), lo, hi, False, False):
        raise _fail(what, "an integer", describe_range(lo, hi), v, allow_none, note)
    return int(v)


def flag(v: Any, what: str) -> bool:
    """``v`` if it is ``True`` or ``False`` (not 0/1, not "yes"), else ConfigError naming ``what``."""
    if not isinstance(v, bool):
        raise ConfigError(f"{what} must be true or false, got {v!r}")
    return v

"""Reading one typed hyper-parameter from a trial config, with errors that quote key and value.

Used by models.py and builtin.py (no torch import here).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

from ..errors import ConfigError


def get_int(cfg: Mapping[str, Any], key: str, default: int, lo: int = 1, hi: Optional[int] = None) -> int:
    """``cfg[key]`` as an int in ``[lo, hi]`` (floats that are whole numbers, e.g. 64.0, accepted)."""
    v = cfg.get(key, default)
    try:
        f = float(v)
        ok = not isinstance(v, bool) and math.isfinite(f) and f == int(f)
    except (TypeError, ValueError):
        ok = False
    if not ok or int(f) < lo or (hi is not None and int(f) > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ConfigError(f"{key}: got {v!r}; allowed: an integer {rng}")
    return int(f)


def get_float(
    cfg: Mapping[str, Any],
    key: str,
    default: float,
    lo: float = 0.0,
    hi: float = math.inf,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """``cfg[key]`` as a finite float in the interval (bounds inclusive unless ``*_open``)."""
    v = cfg.get(key, default)
    try:
        f = float(v)
        ok = not isinstance(v, bool) and math.isfinite(f)
    except (TypeError, ValueError):
        ok = False
    if ok:
        ok = (f > lo if lo_open else f >= lo) and (f < hi if hi_open else f <= hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ConfigError(f"{key}: got {v!r}; allowed: a finite number in {rng}")
    return f


def get_choice(cfg: Mapping[str, Any], key: str, default: str, allowed: Sequence[str]) -> str:
    """``cfg[key]`` as one of ``allowed`` (case-insensitive)."""
    v = cfg.get(key, default)
    s = str(v).lower() if isinstance(v, str) else v
    if s not in allowed:
        raise ConfigError(f"{key}: got {v!r}; allowed: {', '.join(allowed)}")
    return s

"""Reading one typed hyper-parameter from a trial config, with errors that quote key and value.

Used by models.py and builtin.py (no torch import here).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

from .. import validate
from ..errors import ConfigError


def get_int(cfg: Mapping[str, Any], key: str, default: int, lo: int = 1, hi: Optional[int] = None) -> int:
    """``cfg[key]`` as an int in ``[lo, hi]`` (floats that are whole numbers, e.g. 64.0, accepted)."""
    return validate.integer(cfg.get(key, default), key, lo, math.inf if hi is None else hi, whole_floats=True)


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
    return validate.number(cfg.get(key, default), key, lo, hi, lo_open=lo_open, hi_open=hi_open, kind="a finite number")


def get_choice(cfg: Mapping[str, Any], key: str, default: str, allowed: Sequence[str]) -> str:
    """``cfg[key]`` as one of ``allowed`` (case-insensitive)."""
    v = cfg.get(key, default)
    s = str(v).lower() if isinstance(v, str) else v
    if s not in allowed:
        raise ConfigError(f"{key}: got {v!r}; allowed: {', '.join(allowed)}")
    return s

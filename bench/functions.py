"""Test functions for the optimizer benches: Branin, Hartmann-6 and a multi-fidelity noisy variant.

Each entry of FUNCTIONS is ``(space, f, optimum)`` where ``f(config, budget=None, rng=None)`` is
the value to minimise; ``budget`` in (0, 1] (None = 1) lowers fidelity (a smooth bias that
shrinks as the budget grows), ``rng`` adds observation noise for the noisy variant.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from rdhpo_hpc.space import Float, Space

BRANIN_MIN = 0.397887
HARTMANN6_MIN = -3.32237

_A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]],
    dtype=float,
)
_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ],
    dtype=float,
)
_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def branin(cfg: dict, budget: Optional[float] = None, rng: Any = None) -> float:
    x1, x2 = cfg["x1"], cfg["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def hartmann6_x(x: np.ndarray, alpha: np.ndarray = _ALPHA) -> float:
    return float(-np.sum(alpha * np.exp(-np.sum(_A * (x - _P) ** 2, axis=1))))


def hartmann6(cfg: dict, budget: Optional[float] = None, rng: Any = None) -> float:
    return hartmann6_x(np.array([cfg[f"x{i}"] for i in range(6)]))


def hartmann6_mf_noisy(cfg: dict, budget: Optional[float] = None, rng: Any = None) -> float:
    """Hartmann-6 seen at fidelity ``budget``: the weights drift away from the true ones as the
    budget shrinks (multi-fidelity benchmark of Kandasamy et al. 2017, delta = 0.1), plus
    Gaussian noise of sd 0.05 when ``rng`` is given."""
    b = 1.0 if budget is None else float(budget)
    alpha = _ALPHA - 0.1 * (1.0 - b) * np.array([1.0, -1.0, 1.0, -1.0]) * 3
    v = hartmann6_x(np.array([cfg[f"x{i}"] for i in range(6)]), alpha)
    if rng is not None:
        v += 0.05 * float(rng.normal())
    return v


FUNCTIONS = {
    "branin": (Space(x1=Float(-5.0, 10.0), x2=Float(0.0, 15.0)), branin, BRANIN_MIN),
    "hartmann6": (Space({f"x{i}": Float(0.0, 1.0) for i in range(6)}), hartmann6, HARTMANN6_MIN),
    "hartmann6_mf_noisy": (Space({f"x{i}": Float(0.0, 1.0) for i in range(6)}), hartmann6_mf_noisy, HARTMANN6_MIN),
}

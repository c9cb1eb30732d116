"""Multi-fidelity benchmark families for ``bench.mf_goal``: analytic, published definitions only.

Each entry of :data:`FAMILIES` is a :class:`Family`: a space, ``f(config, z)`` (the noise-free
value to minimise at fidelity ``z`` in (0, 1], 1 = the real objective) and a noise sd (0 =
noise-free; else Gaussian noise of that sd is added to every observation by the bench).

* ``branin_mf`` — Branin with the fidelity-dependent coefficients of Kandasamy et al. 2017 (BOCA):
  ``b(z) = 5.1/(4 pi^2) - 0.01 (1 - z)``, ``c(z) = 5/pi - 0.1 (1 - z)``, ``t(z) = 1/(8 pi) + 0.05 (1 - z)``.
* ``hartmann3_mf``, ``hartmann6_mf`` — Hartmann-3 / -6 with ``alpha(z) = alpha - 0.1 (1 - z) delta``,
  ``delta = (1, -1, 1, -1)`` scaled by 3 (Kandasamy et al. 2017 use 0.1; x3 makes the low
  fidelities mislead, as in bench/functions.py's ``hartmann6_mf_noisy``).
* ``borehole_mf`` — the 8-D borehole water flow (Morris et al. 1993, maximised here: we minimise its
  negative) with Xiong et al. 2013's low fidelity, linearly interpolated ``z f_H + (1 - z) f_L``.
* ``currin_mf`` — Currin et al. 1988's exponential function (2-D, maximised: minimise its negative)
  with Xiong et al. 2013's low fidelity (the average over four shifted points), interpolated.
* ``park_mf`` — Park 1991's 4-D function with Xiong et al. 2013's low fidelity, interpolated.
* ``lcurve`` — learning curves of the pow-3 form that fits LCBench's curves (Domhan et al. 2015;
  Zimmer et al. 2021): ``y(x, z) = y_inf(x) + a(x) z^(-c(x))`` over 5 mixed dims (a log-scale
  learning rate, an integer width, a categorical, two floats), where configurations that learn
  fast do not end best, so the ranking changes across fidelities.
* ``conditional`` — a conditional space: a choice of three "models" with their own sub-spaces
  (Hartmann-3, Branin rescaled, a 1-D quadratic) plus a shared integer and a shared categorical,
  with a pow-3 fidelity bias.
* noisy variants (``*_noisy``): the same with Gaussian observation noise of about 10% of the gap
  between the function's 5% quantile over the space and its minimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from rdhpo_hpc.space import Categorical, Choice, Float, Int, Space


@dataclass(frozen=True)
class Family:
    space: Space
    f: Callable[[dict, float], float]
    noise: float = 0.0


_A6 = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]],
    dtype=float,
)
_P6 = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_A3 = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_P3 = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]])
_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_DELTA = 0.3 * np.array([1.0, -1.0, 1.0, -1.0])


def _hartmann(x: np.ndarray, z: float, A: np.ndarray, P: np.ndarray) -> float:
    alpha = _ALPHA - (1.0 - z) * _DELTA
    return float(-np.sum(alpha * np.exp(-np.sum(A * (x - P) ** 2, axis=1))))


def _branin(x1: float, x2: float, z: float) -> float:
    b = 5.1 / (4 * math.pi**2) - 0.01 * (1 - z)
    c = 5 / math.pi - 0.1 * (1 - z)
    t = 1 / (8 * math.pi) + 0.05 * (1 - z)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def _borehole(c: dict, low: bool) -> float:
    rw, r, tu, hu, tl, hl, L, kw = (c[k] for k in ("rw", "r", "Tu", "Hu", "Tl", "Hl", "L", "Kw"))
    lr = math.log(r / rw)
    if low:
        return 5 * tu * (hu - hl) / (lr * (1.5 + 2 * L * tu / (lr * rw**2 * kw) + tu / tl))
    return 2 * math.pi * tu * (hu - hl) / (lr * (1 + 2 * L * tu / (lr * rw**2 * kw) + tu / tl))


def _currin(x1: float, x2: float) -> float:
    x2 = max(x2, 1e-9)
    return (
        (1 - math.exp(-1 / (2 * x2)))
        * (2300 * x1**3 + 1900 * x1**2 + 2092 * x1 + 60)
        / (100 * x1**3 + 500 * x1**2 + 4 * x1 + 20)
    )


def _currin_low(x1: float, x2: float) -> float:
    d, lo = 0.05, max(0.0, x2 - 0.05)
    return 0.25 * (_currin(x1 + d, x2 + d) + _currin(x1 + d, lo) + _currin(x1 - d, x2 + d) + _currin(x1 - d, lo))


def _park(x: list[float], low: bool) -> float:
    x1, x2, x3, x4 = x
    x1 = max(x1, 1e-9)
    high = x1 / 2 * (math.sqrt(1 + (x2 + x3**2) * x4 / x1**2) - 1) + (x1 + 3 * x4) * math.exp(1 + math.sin(x3))
    if not low:
        return high
    return (1 + math.sin(x1) / 10) * high - 2 * x1 + x2**2 + x3**2 + 0.5


def _lerp(z: float, hi: float, lo: float) -> float:
    return z * hi + (1 - z) * lo


def _lcurve(c: dict, z: float) -> float:
    """pow-3 learning curve: final loss y_inf, speed c; fast learners (high lr) end worse."""
    u = (math.log10(c["lr"]) + 4) / 4  # lr 1e-4..1 -> 0..1
    w = math.log2(c["width"]) / 9  # width 1..512 -> 0..1
    opt = {"sgd": 0.08, "adam": 0.0, "rmsprop": 0.04}[c["optimizer"]]
    y_inf = 0.1 + 0.6 * (u - 0.55) ** 2 + 0.25 * (w - 0.7) ** 2 + 0.3 * (c["dropout"] - 0.3) ** 2 * (1 + w)
    y_inf += 0.15 * (c["momentum"] - 0.9) ** 2 + opt + 0.2 * (u - 0.55) * (c["momentum"] - 0.5) ** 2
    speed = 0.3 + 1.5 * u + 0.3 * c["momentum"] - 0.4 * w * (1 - u)
    amp = 0.5 + 0.4 * w
    return y_inf + amp * (z ** (-max(speed, 0.05)) - 1) / 27 ** max(speed, 0.05)


def _conditional(c: dict, z: float) -> float:
    m = c["model"]
    shared = 0.02 * (math.log2(c["units"]) - 5) ** 2 + {"a": 0.0, "b": 0.05, "c": 0.15}[c["act"]]
    if m == "h3":
        core = 1 + _hartmann(np.array([c["h0"], c["h1"], c["h2"]]), 1.0, _A3, _P3) / 3.86278  # min 0
        bias = 0.4 * (c["h0"] - 0.8) ** 2
    elif m == "br":
        core = 0.05 + (_branin(c["b0"], c["b1"], 1.0) - 0.397887) / 60
        bias = 0.1 * abs(c["b0"] - 2.5) / 7.5
    else:
        core = 0.3 + (c["q"] - 0.5) ** 2
        bias = 0.0
    return core + shared + (1 - z) * (0.3 + bias)


_U01 = {f"x{i}": Float(0.0, 1.0) for i in range(6)}
_BRANIN_SPACE = Space(x1=Float(-5.0, 10.0), x2=Float(0.0, 15.0))
_BOREHOLE_SPACE = Space(
    rw=Float(0.05, 0.15),
    r=Float(100.0, 50000.0),
    Tu=Float(63070.0, 115600.0),
    Hu=Float(990.0, 1110.0),
    Tl=Float(63.1, 116.0),
    Hl=Float(700.0, 820.0),
    L=Float(1120.0, 1680.0),
    Kw=Float(9855.0, 12045.0),
)
_LC_SPACE = Space(
    lr=Float(1e-4, 1.0, log=True),
    width=Int(1, 512, log=True),
    optimizer=Categorical(["sgd", "adam", "rmsprop"]),
    dropout=Float(0.0, 0.8),
    momentum=Float(0.0, 0.99),
)
_COND_SPACE = Space(
    model=Choice(
        {
            "h3": Space(h0=Float(0.0, 1.0), h1=Float(0.0, 1.0), h2=Float(0.0, 1.0)),
            "br": Space(b0=Float(-5.0, 10.0), b1=Float(0.0, 15.0)),
            "qd": Space(q=Float(0.0, 1.0)),
        }
    ),
    units=Int(4, 256, log=True),
    act=Categorical(["a", "b", "c"]),
)


def _xs(c: dict, n: int) -> list[float]:
    return [c[f"x{i}"] for i in range(n)]


def _h6(c: dict, z: float) -> float:
    return _hartmann(np.array([c[f"x{i}"] for i in range(6)]), z, _A6, _P6)


def _h3(c: dict, z: float) -> float:
    return _hartmann(np.array([c[f"x{i}"] for i in range(3)]), z, _A3, _P3)


_FN: dict[str, tuple[Space, Callable[[dict, float], float], float]] = {
    # name: (space, f, noise sd of the noisy variant: about 10% of the gap between the 5% quantile of f
    # over the space and its minimum, i.e. of the range where the search is decided)
    "branin_mf": (_BRANIN_SPACE, lambda c, z: _branin(c["x1"], c["x2"], z), 0.3),
    "hartmann3_mf": (Space({f"x{i}": Float(0.0, 1.0) for i in range(3)}), _h3, 0.1),
    "hartmann6_mf": (Space(_U01), _h6, 0.05),
    "borehole_mf": (
        _BOREHOLE_SPACE,
        lambda c, z: -_lerp(z, _borehole(c, False), _borehole(c, True)),
        5.0,
    ),
    "currin_mf": (
        Space(x1=Float(0.0, 1.0), x2=Float(0.0, 1.0)),
        lambda c, z: -_lerp(z, _currin(c["x1"], c["x2"]), _currin_low(c["x1"], c["x2"])),
        0.2,
    ),
    "park_mf": (
        Space({f"x{i}": Float(0.0, 1.0) for i in range(4)}),
        lambda c, z: _lerp(z, _park(_xs(c, 4), False), _park(_xs(c, 4), True)),
        0.2,
    ),
    "lcurve": (_LC_SPACE, _lcurve, 0.01),
    "conditional": (_COND_SPACE, _conditional, 0.02),
}

FAMILIES: dict[str, Family] = {}
for _name, (_space, _f, _sd) in _FN.items():
    FAMILIES[_name] = Family(_space, _f)
    FAMILIES[_name + "_noisy"] = Family(_space, _f, _sd)


def evaluate(family: Family, config: dict[str, Any], z: float, rng: Any = None) -> float:
    """The observation at fidelity ``z`` (noise added when ``rng`` is given and the family is noisy)."""
    v = family.f(config, z)
    if rng is not None and family.noise:
        v += family.noise * float(rng.normal())
    return v

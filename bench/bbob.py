"""Held-out single-fidelity test functions from the BBOB/COCO suite (Hansen et al. 2009, "Real-
parameter black-box optimization benchmarking 2009: noiseless functions definitions", INRIA
RR-6829), for ``python -m bench.quality --part heldout``.

Each entry of ``BBOB`` builds ``(space, f, optimum)`` for a dimension and an instance: the
optimum ``x_opt`` is drawn uniformly in [-4, 4]^D and the rotations R, Q as random orthogonal
matrices from a generator seeded by (function, instance); f_opt = 0.  Domain [-5, 5]^D.
Checked against RR-6829 (T_osz, T_asy, Lambda^10, the conditioning and the formulas below); the
deviations from COCO's own instances: its f8 draws x_opt in [-3, 3] (0.75 x), and its random
numbers (x_opt, R, Q, f_opt) come from its own generator, so instance k here is not COCO's k.

* ``f2``  separable ellipsoid, conditioning 1e6 (ill-conditioned, axis-aligned);
* ``f8``  Rosenbrock (a curved valley);
* ``f10`` rotated ellipsoid, conditioning 1e6 (ill-conditioned, not axis-aligned);
* ``f12`` bent cigar (one direction 1e6 times flatter than the others, rotated);
* ``f15`` rotated Rastrigin (multimodal, ~10^D local optima).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import numpy as np

from rdhpo_hpc.space import Float, Space


def _t_osz(x: np.ndarray) -> np.ndarray:
    xh = np.where(x != 0, np.log(np.abs(x) + (x == 0)), 0.0)
    c1, c2 = np.where(x > 0, 10.0, 5.5), np.where(x > 0, 7.9, 3.1)
    return _arr(np.sign(x) * np.exp(xh + 0.049 * (np.sin(c1 * xh) + np.sin(c2 * xh))))


def _t_asy(x: np.ndarray, beta: float) -> np.ndarray:
    d = len(x)
    e = 1.0 + beta * np.arange(d) / max(1, d - 1) * np.sqrt(np.maximum(x, 0.0))
    return _arr(np.where(x > 0, np.abs(x) ** e, x))


def _arr(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=float)


def _rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return _arr(q * np.sign(np.diag(r)))


def make(fid: int, dim: int, instance: int) -> tuple[Space, Callable[..., float], float]:
    """BBOB function ``fid`` in ``dim`` dimensions, instance ``instance``: (space, f, 0.0)."""
    rng = np.random.default_rng([fid, dim, instance])
    xopt = rng.uniform(-4.0, 4.0, dim)
    R, Q = _rotation(rng, dim), _rotation(rng, dim)
    i = np.arange(dim)
    ell = 10.0 ** (6.0 * i / max(1, dim - 1))
    lam10 = 10.0 ** (0.5 * i / max(1, dim - 1))

    def value(x: np.ndarray) -> float:
        if fid == 2:
            z = _t_osz(x - xopt)
            return float(ell @ (z * z))
        if fid == 8:
            z = max(1.0, math.sqrt(dim) / 8.0) * (x - xopt) + 1.0
            return float(np.sum(100.0 * (z[:-1] ** 2 - z[1:]) ** 2 + (z[:-1] - 1.0) ** 2))
        if fid == 10:
            z = _t_osz(R @ (x - xopt))
            return float(ell @ (z * z))
        if fid == 12:
            z = R @ _t_asy(R @ (x - xopt), 0.5)
            return float(z[0] ** 2 + 1e6 * np.sum(z[1:] ** 2))
        if fid == 15:
            z = R @ (lam10 * (Q @ _t_asy(_t_osz(R @ (x - xopt)), 0.2)))
            return float(10.0 * (dim - np.sum(np.cos(2 * math.pi * z))) + z @ z)
        raise ValueError(f"BBOB function f{fid} is not implemented here")

    space = Space(**{f"x{k}": Float(-5.0, 5.0) for k in range(dim)})

    def f(cfg: dict, budget: Optional[float] = None, rng: Any = None) -> float:
        return value(np.array([cfg[f"x{k}"] for k in range(dim)], dtype=float))

    return space, f, 0.0


BBOB = {"f2 ellipsoid": 2, "f8 rosenbrock": 8, "f10 rotated ellipsoid": 10, "f12 bent cigar": 12, "f15 rastrigin": 15}

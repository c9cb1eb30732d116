"""A small, fast Gaussian process on numpy/scipy for the ``bayes`` optimizer (``backend: fast``).

Matern 5/2 kernel with one length-scale per feature (ARD), a signal variance and a noise
variance, and a constant mean (``fit_mean``, default on) estimated by generalised least squares
for the current kernel, m = 1'K^-1 y / 1'K^-1 1, i.e. profiled out of the likelihood.
With ``warp`` (``bayes``' ``output_warp``) the standardised targets go through a Yeo-Johnson
power transform (``fit_warp`` / ``apply_warp``) before the fit, as in HEBO (Cowen-Rivers et al.
2022); strictly increasing, so the order of the losses is kept.
Hyper-parameters maximise the log marginal likelihood plus log priors (analytic gradient,
L-BFGS-B, bounded iterations and restarts).  Everything is deterministic given the inputs and the
``numpy.random.Generator`` handed in: no wall-clock budgets (replay on resume relies on it).

Cost bounds (n observations, p features, m candidates):

* ``fit``      — at most ``restarts * maxiter`` likelihood evaluations, each O(n^3 + p n^2), on at
  most ``max_fit_points`` points (a deterministic subset: the best half and the most recent half);
* ``condition`` — one Cholesky of the (n + pending) kernel matrix, O(n^3), hyper-parameters fixed;
* ``predict``  — O(m n (p + n)).

``active_set`` picks the points a GP is conditioned on once a study has more than the cap
(subset of data: the best, the most recent and a space-filling rest), so every cost above is
bounded by the cap, not by the number of observations.
"""

from __future__ import annotations

import math
from typing import Any, Optional, cast

import numpy as np
from scipy.linalg.lapack import dtrtri
from scipy.optimize import minimize
from scipy.spatial import cKDTree

_SQ5 = math.sqrt(5.0)
_LOG_LS = (math.log(0.01), math.log(20.0))  # length-scale bounds on unit-cube features
_LOG_SF = (math.log(0.05), math.log(1000.0))  # signal variance bounds (standardised targets)
_LOG_SN = (math.log(1e-6), math.log(1.0))  # noise variance bounds
_JITTER = 1e-8
_WARP_MAX = 2.0  # |Yeo-Johnson exponent| at most (5 was worse on the rotated ellipsoid)
_WARP_GRID = np.round(np.linspace(-_WARP_MAX, _WARP_MAX, 81), 10)  # exponents fit_warp tries


def _tri_inv(L: np.ndarray) -> np.ndarray:
    """Inverse of a lower-triangular matrix (LAPACK trtri)."""
    Linv, info = dtrtri(L, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"trtri failed (info={info})")
    return cast(np.ndarray, Linv)


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return cast(np.ndarray, np.maximum(d, 0.0))


def matern52_corr(r: np.ndarray) -> np.ndarray:
    """Matern 5/2 correlation at distances ``r`` in length-scale units."""
    return cast(np.ndarray, (1.0 + _SQ5 * r + (5.0 / 3.0) * r * r) * np.exp(-_SQ5 * r))


def matern52(a: np.ndarray, b: np.ndarray, ls: np.ndarray, sf: float) -> np.ndarray:
    r = np.sqrt(_sqdist(a / ls, b / ls))
    return cast(np.ndarray, sf * (1.0 + _SQ5 * r + (5.0 / 3.0) * r * r) * np.exp(-_SQ5 * r))


def lowest(y: np.ndarray, k: int) -> np.ndarray:
    """Indices (sorted) of the ``k`` smallest values of ``y``, ties to the lower index: the set
    ``np.argsort(y, kind="stable")[:k]``, found in O(n) (a partition, not a sort of all n)."""
    n = len(y)
    if k >= n:
        return np.arange(n)
    if k <= 0:
        return np.zeros(0, dtype=np.intp)
    thr = np.partition(y, k - 1)[k - 1]
    if np.isnan(thr):  # NaN sorts last: let the sort decide
        return np.sort(np.argsort(y, kind="stable")[:k])
    below = y < thr
    ties = np.flatnonzero(y == thr)[: k - int(np.count_nonzero(below))]
    below[ties] = True
    return np.flatnonzero(below)


def _best_and_recent(y: np.ndarray, cap: int) -> np.ndarray:
    """Mask of the rows ``active_set`` always keeps: the ``cap // 2`` lowest losses, then the
    ``cap // 4`` most recent of the others."""
    chosen = np.zeros(len(y), dtype=bool)
    chosen[lowest(y, cap // 2)] = True
    chosen[np.flatnonzero(~chosen)[::-1][: cap // 4]] = True
    return chosen


def active_set(F: np.ndarray, y: np.ndarray, cap: int, spread: Optional[np.ndarray] = None) -> np.ndarray:
    """Indices (sorted) of at most ``cap`` rows of (F, y) to condition a GP on; all rows when
    there are no more than ``cap``.  Called by ``bayes`` on every ask past the cap; a pure function
    of its inputs (deterministic, so replay and a cold cache give the same set).

    Subset of data (Rasmussen & Williams 2006, 8.3.3) chosen for optimisation rather than
    regression: the ``cap // 2`` lowest losses (where the acquisition is high; at large n they
    crowd around the optimum and give the model the local resolution of a trust region, as in
    TuRBO, Eriksson et al. 2019), the ``cap // 4`` most recent rows (so a bad point just evaluated
    is not forgotten and suggested again), and the rest by greedy farthest-point sampling in
    feature space (the global shape, so regions known to be bad stay known) — or, when given,
    the rows ``spread`` (``spread_set`` of a prefix of the rows: the caller's cache) instead.
    Ties in the loss break by row order (stable sort)."""
    n = len(y)
    if n <= cap:
        return np.arange(n)
    chosen = _best_and_recent(y, cap)
    if spread is not None:
        chosen[spread[: cap - int(chosen.sum())]] = True
        return cast(np.ndarray, np.flatnonzero(chosen))
    d = cKDTree(F[chosen]).query(F)[0]
    d[chosen] = -1.0
    for _ in range(cap - int(chosen.sum())):
        j = int(np.argmax(d))
        chosen[j] = True
        diff = F - F[j]
        d = np.minimum(d, np.sqrt(np.einsum("ij,ij->i", diff, diff)))  # chosen rows stay < 0
        d[j] = -1.0
    return cast(np.ndarray, np.flatnonzero(chosen))


def spread_set(F: np.ndarray, y: np.ndarray, cap: int) -> np.ndarray:
    """The rows ``active_set(F, y, cap)`` picks by farthest-point sampling (neither among the
    best nor the recent), sorted."""
    idx = active_set(F, y, cap)
    if len(idx) == len(y):
        return np.zeros(0, dtype=int)
    out: np.ndarray = idx[~_best_and_recent(y, cap)[idx]]
    return out


def fit_warp(z: np.ndarray) -> Optional[float]:
    """Yeo-Johnson exponent for standardised targets ``z``: the maximum-likelihood one on the
    grid ``_WARP_GRID`` (-2..2 step 0.05; one vectorised evaluation of the profile
    log-likelihood, about 0.1 ms; ties to the lower exponent), or None (no warp) when the
    targets are too few, not finite or all equal.  Called by ``GP.standardise`` when it sets
    its statistics."""
    if len(z) < 3 or not np.all(np.isfinite(z)) or float(np.ptp(z)) < 1e-12:
        return None
    with np.errstate(all="ignore"):
        w = apply_warp(z[None, :], _WARP_GRID[:, None])
        llf = -0.5 * len(z) * np.log(np.var(w, axis=1)) + (_WARP_GRID - 1.0) * float(
            np.sum(np.sign(z) * np.log1p(np.abs(z)))
        )
    llf[~np.isfinite(llf)] = -np.inf
    return float(_WARP_GRID[int(np.argmax(llf))]) if np.isfinite(llf).any() else None


def apply_warp(z: np.ndarray, lam: Any) -> np.ndarray:
    """The Yeo-Johnson transform (Yeo & Johnson 2000) with exponent ``lam`` (a number, or an
    array broadcast against ``z``): strictly increasing on the real line, the identity at 1."""
    z, lam = np.broadcast_arrays(np.asarray(z, dtype=float), np.asarray(lam, dtype=float))
    pos = z >= 0
    with np.errstate(all="ignore"):
        lp = np.log1p(np.where(pos, z, 0.0))
        ln = np.log1p(np.where(pos, 0.0, -z))
        wp = np.where(np.abs(lam) < 1e-12, lp, np.expm1(lam * lp) / np.where(lam == 0, 1.0, lam))
        m = 2.0 - lam
        wn = np.where(np.abs(m) < 1e-12, -ln, -np.expm1(m * ln) / np.where(m == 0, 1.0, m))
    out: np.ndarray = np.where(pos, wp, wn)
    return out


class GP:
    """GP on standardised targets with a constant mean ``m`` (GLS estimate, or 0 when
    ``fit_mean`` is off).  ``theta`` = [log ls_1..p, log sf, log sn]."""

    def __init__(self, n_features: int, fit_mean: bool = True, warp: bool = False) -> None:
        self.p = n_features
        self.fit_mean = fit_mean
        self.warp = warp
        self.lam: Optional[float] = None  # Yeo-Johnson exponent of the output warp (None: off)
        self.w_mean, self.w_std = 0.0, 1.0
        self.m = 0.0
        self.theta = np.concatenate([np.full(n_features, math.log(0.5)), [0.0, math.log(1e-3)]])
        self.X = np.zeros((0, n_features))
        self.y = np.zeros(0)
        self.y_mean, self.y_std = 0.0, 1.0

    # -- hyper-parameters ----------------------------------------------------------------------
    @staticmethod
    def _clip_mean(m: float, y: np.ndarray) -> float:
        """The GLS weights may be negative: keep the mean within the observed range."""
        if not len(y) or not math.isfinite(m):
            return 0.0
        return min(max(m, float(np.min(y))), float(np.max(y)))

    def _nll(self, theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        p = self.p
        ls, sf, sn = np.exp(theta[:p]), math.exp(theta[p]), math.exp(theta[p + 1])
        n = len(y)
        diff2 = (X[:, None, :] - X[None, :, :]) ** 2 / (ls * ls)  # n x n x p
        r = np.sqrt(diff2.sum(-1))
        e = np.exp(-_SQ5 * r)
        K0 = (1.0 + _SQ5 * r + (5.0 / 3.0) * r * r) * e  # unit-variance kernel
        K = sf * K0 + (sn + _JITTER) * np.eye(n)
        try:
            L = np.linalg.cholesky(K)
        except np.linalg.LinAlgError:
            return 1e10, np.zeros_like(theta)
        Linv = _tri_inv(L)
        Kinv = Linv.T @ Linv
        if self.fit_mean:  # constant mean profiled out (GLS): at its optimum, so the gradient
            #                     w.r.t. theta is the one at a fixed mean (envelope theorem)
            k1 = Kinv.sum(0)
            y = y - self._clip_mean(float(k1 @ y) / float(k1.sum()), y)
        alpha = Kinv @ y
        nll = 0.5 * y @ alpha + np.log(np.diag(L)).sum() + 0.5 * n * math.log(2 * math.pi)
        W = np.outer(alpha, alpha) - Kinv  # dNLL/dK = -W/2
        # dK/dlog ls_d = sf * 5/3 (1 + sqrt5 r) exp(-sqrt5 r) * diff2_d
        base = sf * (5.0 / 3.0) * (1.0 + _SQ5 * r) * e
        g_ls = -0.5 * ((W * base).reshape(-1) @ diff2.reshape(-1, p))
        g_sf = -0.5 * np.sum(W * (sf * K0))
        g_sn = -0.5 * np.trace(W) * sn
        # priors (negative log densities): length-scales 0.1 (l^2 + 1/l^2) keeps them near the
        # unit cube's scale; signal variance Gamma(2, 1); noise Gamma(1.1, 30) — a GP that may
        # not explain everything exactly stays willing to explore
        l2 = ls * ls
        prior = 0.1 * np.sum(l2 + 1.0 / l2) + (sf - math.log(sf)) + (30.0 * sn - 0.1 * math.log(sn))
        grad = np.concatenate([g_ls + 0.2 * (l2 - 1.0 / l2), [g_sf + sf - 1.0, g_sn + 30.0 * sn - 0.1]])
        return float(nll + prior), grad

    def fit(
        self,
        X: np.ndarray,
        y_raw: np.ndarray,
        rng: np.random.Generator,
        restarts: int = 2,
        maxiter: int = 30,
        max_fit_points: int = 250,
    ) -> None:
        """Fit hyper-parameters (warm-started from the last fit); call ``condition`` next."""
        y = self.standardise(y_raw, set_stats=True)
        if len(y) > max_fit_points:  # deterministic subset: best half + most recent half
            order = np.argsort(y, kind="stable")
            keep = set(order[: max_fit_points // 2].tolist())
            for i in range(len(y) - 1, -1, -1):
                if len(keep) >= max_fit_points:
                    break
                keep.add(i)
            idx = np.array(sorted(keep))
            Xf, yf = X[idx], y[idx]
        else:
            Xf, yf = X, y
        bounds = [_LOG_LS] * self.p + [_LOG_SF, _LOG_SN]
        starts = [self.theta.copy()]
        for _ in range(max(0, restarts - 1)):
            t = np.concatenate(
                [
                    rng.uniform(math.log(0.05), math.log(2.0), self.p),
                    [rng.uniform(-1.0, 1.0)],
                    [rng.uniform(math.log(1e-5), math.log(1e-1))],
                ]
            )
            starts.append(t)
        best_f, best_t = math.inf, self.theta
        for t0 in starts:
            t0 = np.clip(t0, [b[0] for b in bounds], [b[1] for b in bounds])
            try:
                res = minimize(
                    self._nll,
                    t0,
                    args=(Xf, yf),
                    jac=True,
                    method="L-BFGS-B",
                    bounds=bounds,
                    options={"maxiter": maxiter},
                )
                f, t = float(res.fun), res.x
            except (ValueError, np.linalg.LinAlgError):
                continue
            if np.isfinite(f) and f < best_f:
                best_f, best_t = f, t
        self.theta = np.asarray(best_t, dtype=float)

    # -- posterior -----------------------------------------------------------------------------
    def standardise(self, y_raw: np.ndarray, set_stats: bool = False) -> np.ndarray:
        """Targets in the GP's scale: standardised and, with ``warp``, through the Yeo-Johnson
        output warp fitted on the ``set_stats`` call (``fit_warp``) and standardised again.  The
        warp is a strictly increasing function of the raw target, so the order of the losses
        (and which is best) is kept; it is a function of the targets of the last ``set_stats``
        call only (replay recomputes it from the history)."""
        y_raw = np.asarray(y_raw, dtype=float)
        if set_stats:
            self.y_mean = float(np.mean(y_raw)) if len(y_raw) else 0.0
            sd = float(np.std(y_raw)) if len(y_raw) > 1 else 1.0
            self.y_std = sd if sd > 1e-12 else 1.0
            self.lam = fit_warp((y_raw - self.y_mean) / self.y_std) if self.warp else None
            if self.lam is not None:
                w = apply_warp((y_raw - self.y_mean) / self.y_std, self.lam)
                sd = float(np.std(w))
                self.w_mean, self.w_std = float(np.mean(w)), (sd if sd > 1e-12 else 1.0)
        z = (y_raw - self.y_mean) / self.y_std
        if self.lam is None:
            return z
        return (apply_warp(z, self.lam) - self.w_mean) / self.w_std

    def condition(self, X: np.ndarray, y_raw: np.ndarray) -> None:
        """Condition on (X, y) with the current hyper-parameters (targets in the raw scale)."""
        p = self.p
        self.ls, self.sf, self.sn = np.exp(self.theta[:p]), math.exp(self.theta[p]), math.exp(self.theta[p + 1])
        self.X = np.asarray(X, dtype=float)
        self.y = self.standardise(y_raw)
        K = matern52(self.X, self.X, self.ls, self.sf) + (self.sn + _JITTER) * np.eye(len(self.X))
        jitter = _JITTER
        while True:
            try:
                L = np.linalg.cholesky(K)
                break
            except np.linalg.LinAlgError:
                jitter *= 10
                K[np.diag_indices_from(K)] += jitter
                if jitter > 1e-2:
                    raise
        self.Linv = _tri_inv(L)
        if self.fit_mean:
            v = self.Linv.sum(1)  # Linv @ 1
            self.m = self._clip_mean(float(v @ (self.Linv @ self.y)) / max(float(v @ v), 1e-300), self.y)
        self.alpha = self.Linv.T @ (self.Linv @ (self.y - self.m))

    def predict(self, Xs: np.ndarray, std: bool = True) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """Posterior mean and std at ``Xs``, in the standardised target scale."""
        Ks = matern52(np.asarray(Xs, dtype=float), self.X, self.ls, self.sf)
        mu = self.m + Ks @ self.alpha
        if not std:
            return mu, None
        V = Ks @ self.Linv.T
        var = self.sf - np.einsum("ij,ij->i", V, V)
        return mu, np.sqrt(np.maximum(var, 1e-12))

    def predict_grad(self, Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Mean, std and their gradients (m x p) w.r.t. the inputs, standardised scale."""
        Xs = np.asarray(Xs, dtype=float)
        inv_l2 = 1.0 / (self.ls * self.ls)
        diff = Xs[:, None, :] - self.X[None, :, :]  # m x n x p
        r = np.sqrt(np.maximum((diff * diff * inv_l2).sum(-1), 0.0))  # m x n
        e = np.exp(-_SQ5 * r)
        Ks = self.sf * (1.0 + _SQ5 * r + (5.0 / 3.0) * r * r) * e
        dK = (-(5.0 / 3.0) * self.sf * (1.0 + _SQ5 * r) * e)[:, :, None] * diff * inv_l2  # m x n x p
        mu = self.m + Ks @ self.alpha
        dmu = np.einsum("mnp,n->mp", dK, self.alpha)
        V = Ks @ self.Linv.T
        var = self.sf - np.einsum("ij,ij->i", V, V)
        sd = np.sqrt(np.maximum(var, 1e-12))
        w = V @ self.Linv  # = Kinv k, m x n
        dvar = -2.0 * np.einsum("mnp,mn->mp", dK, w)
        dsd = dvar / (2.0 * sd[:, None])
        return mu, sd, dmu, dsd

    def frozen(self) -> Any:
        """``predict`` (mean and std, standardised scale) of the GP as conditioned now, unaffected
        by later fits and conditionings; called by ``bayes`` once per wave epoch."""
        X, ls, sf, m, alpha, Linv = self.X, self.ls, self.sf, self.m, self.alpha, self.Linv

        def predict(Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            Ks = matern52(np.asarray(Xs, dtype=float), X, ls, sf)
            V = Ks @ Linv.T
            var = sf - np.einsum("ij,ij->i", V, V)
            return m + Ks @ alpha, np.sqrt(np.maximum(var, 1e-12))

        return predict

    def to_std(self, y_raw: float) -> float:
        return float(self.standardise(np.array([float(y_raw)]))[0])

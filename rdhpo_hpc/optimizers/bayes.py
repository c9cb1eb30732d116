"""Bayesian optimization over mixed and conditional spaces (``optimizer: bayes``).

The ONLY module that imports scikit-optimize (lazily, for ``backend: skopt``).

Method
------
*Encoding.*  A config is mapped by ``space.encode`` to the unit cube (one coordinate per dim:
log floats/ints on the log scale, ints and categories at their bin centres); inactive dims of a
conditional space are imputed with 0.5.  The surrogate's features are derived from that vector:
numeric dims keep their (step/int-snapped) coordinate, or 0.5 when inactive; a categorical dim
becomes a one-hot block, all zeros when inactive.  Configs on different branches therefore
differ in the branch one-hot and agree on the dims they do not have, so the GP shares what it
learnt about shared dims and keeps branches apart through the choice itself.  ``Fixed`` dims
carry no feature.

*Surrogate.*  ``surrogate: gp`` (default) is a Matern 5/2 ARD GP (``gp.py``) on standardised
losses with a constant mean fitted with the kernel (generalised least squares, profiled out of
the marginal likelihood): where the GP knows nothing it predicts the level of the bulk of the
observations rather than their average, so (e.g.) the corners of the cube, whose variance is
highest, stop looking promising by default; ``forest`` / ``extra_trees`` are scikit-learn
ensembles (mean and spread of the trees), cheaper than a GP for long studies.

*Acquisition.*  ``acq: ei`` (expected improvement, computed as log-EI so it never underflows),
``lcb`` (lower confidence bound, ``kappa``) or ``hedge`` (GP-Hedge over EI, LCB and PI,
Hoffman et al. 2011).  Maximised over ``n_candidates`` random points of the cube plus local
perturbations of the best observations, three shrinking local rounds around the best
candidates and (GP) ``_N_LOCAL`` = 10 L-BFGS-B local searches with the GP's analytic gradient,
one per start (the best candidate so far, the best-scoring pool candidates at least 0.05 apart,
the best observation), in length-scale units, each run to convergence (projected gradient
< 0.01) or 200 iterations; they move the numeric dims only (categoricals and branch fixed).

*Many observations* (``max_points``, default 256).  Past the cap the GP is conditioned on an
active set of the told trials (``gp.active_set``: the best half, the most recent quarter, the
rest space-filling; subset of data, with the local resolution of a trust region around the
best), so an ask costs the same at 10,000 observations as at 256.

*Asynchronous workers.*  Pending trials are added to the surrogate as fake observations at the
``liar`` value (mean / min / max of the observed losses: constant liar, Ginsbourger et al. 2010),
so concurrent asks spread out; a suggestion equal to an observed or pending config is skipped.
With more than ``max_liars`` (default 32) pending trials — a coordinator filling hundreds of
idle workers — an ask is a *wave ask*: the GP of the last *epoch* (``wave_epoch``: the told
trials rounded down to about 1.5%) and its log-EI over a fixed pool of candidates are computed
once, and each ask picks the best pool candidate after a local penalty log(1 - k(r)^2) for the
kernel correlation k to the nearest pending trial or trial told since the epoch (Gonzalez et
al. 2016): one distance row per new trial, a few milliseconds per ask with 1,000 pending.
FAILED trials (value None) are added at the worst observed loss, so a crashing region is not
suggested again and again; they leave no pending entry.

*Cost bound per ask* (rank 0 stays responsive; no wall-clock budget, so replay is exact):
hyper-parameters are refitted only every ``refit_every`` told trials (auto: every trial up to 50,
then every n/25), with at most 2 L-BFGS-B starts (1 past 100 trials, warm-started) x 30
iterations on at most 250 points; other
asks only re-condition the GP (one Cholesky of m + pending points, m = min(n, ``max_points``),
pending <= ``max_liars``) and score about ``n_candidates + 650`` candidates, plus at most about
10 x 400 single-point gradient evaluations in the local searches (typically 10 x 10-15):
O((m + pending)^3 + (n_candidates + 650 + 4000) * m * (m + features)) plus O(n) to find the
active set after a tell.  A wave ask: O(pool x features) per trial new since the last ask, and
one model per epoch (O(m^3 + pool * m^2)).
Measured on 2 cores: see docs/optimizers.md.

*Determinism.*  All randomness comes from the optimizer's seeded generator, consumed in ask
order (the wave pool from a generator seeded by (seed, epoch)), so the same seed and the same
ask/tell sequence give the same suggestions.  The caches (encodings, active set, wave model)
are functions of the history and the GP's hyper-parameters: dropping them changes nothing.
"""

from __future__ import annotations

import math
from typing import Any, Optional, cast

import numpy as np
from scipy.special import erfcx, log_ndtr, ndtr

from .. import validate
from ..errors import ConfigError
from ..space import Categorical, Fixed, Float, Int, Space
from .base import Optimizer
from .blas import one_blas_thread
from .gp import GP, active_set, matern52_corr, spread_set

_CHOICES = {
    "acq": ("ei", "lcb", "hedge"),
    "initial_design": ("lhs", "random"),
    "surrogate": ("gp", "forest", "extra_trees"),
    "backend": ("fast", "skopt"),
    "liar": ("mean", "min", "max"),
}


_SQ2, _SQ_HALF_PI = math.sqrt(2.0), math.sqrt(math.pi / 2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_N_LOCAL = 10  # local searches of the acquisition per ask (GP surrogate)
_N_LOCAL_PENDING = 3  # ... while other suggestions are pending (parallel workers: asks come in
# waves and must stay cheap; the liars spread them out anyway)
_WAVE_RANDOM = 2  # random candidates of the wave pool, in units of n_candidates
_START_SEP = 0.05  # their starts are at least this far apart (L-inf, unit cube)
_LOCAL_ITERS = 200  # L-BFGS-B iterations per local search, at most (and 2x that many evaluations)
_PGTOL = 1e-2  # ... until the projected gradient (length-scale units) is below this


class Features:
    """Vectorised unit-cube -> surrogate features for a (conditional) space."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.dims = space.dims
        key_index = {d.key: i for i, d in enumerate(self.dims)}
        self.cols = 0
        #: (kind, dim index, param, [(parent dim, choice index)], first feature column or None)
        self.plan: list[tuple[str, int, Any, list[tuple[int, int]], Optional[int]]] = []
        for i, d in enumerate(self.dims):
            p = d.param
            # a branch hangs under a choice: its parent is a Categorical
            when = [(key_index[k], cast(Categorical, self.dims[key_index[k]].param).index(v)) for k, v in d.when]
            if isinstance(p, Fixed):
                self.plan.append(("fixed", i, p, when, None))
            elif isinstance(p, Categorical):
                self.plan.append(("cat", i, p, when, self.cols))
                self.cols += len(p.choices)
            else:
                self.plan.append(("num", i, p, when, self.cols))
                self.cols += 1
        self.n_search = sum(1 for t in self.plan if t[0] != "fixed")

    @staticmethod
    def _cat_index(u: np.ndarray, k: int) -> np.ndarray:
        return cast(np.ndarray, np.minimum((np.clip(u, 0.0, 1.0) * k).astype(int), k - 1))

    @staticmethod
    def _snap(p: Any, u: np.ndarray) -> np.ndarray:
        u = np.clip(u, 0.0, 1.0)
        if p.high == p.low:
            return np.full_like(u, 0.5)
        if isinstance(p, Int):
            if p.log:
                lo, hi = math.log(p.low - 0.5), math.log(p.high + 0.5)
                x = np.exp(lo + u * (hi - lo))
            else:
                x = p.low - 0.5 + u * (p.high - p.low + 1)
            x = np.clip(x, p.low, p.high)
            v = p.low + np.round((x - p.low) / p.step) * p.step
            v = np.clip(v, p.low, p.low + ((p.high - p.low) // p.step) * p.step)
            if p.log:
                return (np.log(v) - lo) / (hi - lo)
            return (v - p.low + 0.5) / (p.high - p.low + 1)
        if isinstance(p, Float) and p.step is not None:
            x = p.low + u * (p.high - p.low)
            v = np.clip(p.low + np.round((x - p.low) / p.step) * p.step, p.low, p.high)
            return (v - p.low) / (p.high - p.low)
        return u

    def active(self, U: np.ndarray) -> np.ndarray:
        """n x D mask of the dims active at each unit-cube point."""
        U = np.atleast_2d(np.asarray(U, dtype=float))
        n = len(U)
        A = np.ones((n, len(self.dims)), dtype=bool)
        idx: dict[int, np.ndarray] = {}
        for kind, i, p, when, _col in self.plan:
            for j, v in when:
                A[:, i] &= idx[j] == v
            if kind == "cat":
                idx[i] = np.where(A[:, i], self._cat_index(U[:, i], len(p.choices)), -1)
        return A

    def __call__(self, U: np.ndarray) -> np.ndarray:
        U = np.atleast_2d(np.asarray(U, dtype=float))
        n = len(U)
        F = np.zeros((n, self.cols))
        idx: dict[int, np.ndarray] = {}
        for kind, i, p, when, col in self.plan:
            active = np.ones(n, dtype=bool)
            for j, v in when:
                active &= idx[j] == v
            if kind == "cat":
                k = len(p.choices)
                ci = self._cat_index(U[:, i], k)
                idx[i] = np.where(active, ci, -1)
                F[np.arange(n)[active], col + ci[active]] = 1.0
            elif kind == "num":
                F[:, col] = np.where(active, self._snap(p, U[:, i]), 0.5)
        return F


def _logpdf(z: np.ndarray) -> np.ndarray:
    """log of the standard normal density (scipy.special, not scipy.stats: the local searches
    call these on single points, where scipy.stats' per-call overhead dominated)."""
    return cast(np.ndarray, -0.5 * z * z - _LOG_SQRT_2PI)


def _log_h(z: np.ndarray) -> np.ndarray:
    """log(z * Phi(z) + phi(z)), stable for very negative z (EI = sd * h((best - mu) / sd)).
    Its derivative is Phi(z) / h(z)."""
    out = np.empty_like(z)
    hi = z > -6.0
    zh = z[hi]
    out[hi] = np.log(np.maximum(zh * ndtr(zh) + np.exp(_logpdf(zh)), 1e-300))
    mid = ~hi & (z > -1e3)  # h = phi(z) (1 + z Phi(z) / phi(z)), the Mills ratio via erfcx
    zm = z[mid]
    out[mid] = _logpdf(zm) + np.log(1.0 + zm * _SQ_HALF_PI * erfcx(-zm / _SQ2))
    zl = z[z <= -1e3]  # asymptotic: h(z) ~ phi(z) / z^2 * (1 - 3 / z^2)
    out[z <= -1e3] = _logpdf(zl) - 2.0 * np.log(-zl) + np.log1p(-3.0 / zl**2)
    return out


class BayesOptimizer(Optimizer):
    """GP (or tree) Bayesian optimization; see the module docstring for the method."""

    prefetch = True
    name = "bayes"
    options = {
        "acq": "ei",
        "n_initial": None,
        "initial_design": "random",
        "surrogate": "gp",
        "backend": "fast",
        "liar": "mean",
        "kappa": 1.96,
        "xi": 0.0,
        "n_candidates": 1000,
        "refit_every": None,
        "max_points": 256,
        "max_liars": 32,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = self.opts
        for key, allowed in _CHOICES.items():
            if o[key] not in allowed:
                raise ConfigError(f"optimizer 'bayes': option {key!r} must be one of {list(allowed)}, got {o[key]!r}")
        for key, lo in (
            ("n_initial", 1),
            ("n_candidates", 10),
            ("refit_every", 1),
            ("max_points", 16),
            ("max_liars", 0),
        ):
            validate.integer(o[key], f"optimizer 'bayes': option {key!r}", lo, allow_none=True)
        for key in ("kappa", "xi"):
            validate.number(o[key], f"optimizer 'bayes': option {key!r}", 0)
        self.features = Features(self.space)
        self.n_initial = o["n_initial"] if o["n_initial"] is not None else max(10, 2 * self.features.n_search)
        self._design: Optional[np.ndarray] = None
        self._n_asked = 0
        self._gp: Optional[GP] = None
        self._fit_n = -1
        self._gains = np.zeros(3)
        self._prev_props: Optional[np.ndarray] = None
        # told trials as arrays, appended as history grows (a pure function of the history)
        self._told_U = np.zeros((0, len(self.space.dims)))
        self._told_F = np.zeros((0, self.features.cols))
        self._told_v = np.zeros(0)  # losses, NaN when FAILED
        self._told_last = -1  # trial id of the last of them
        self._active: tuple[int, np.ndarray] = (-1, np.zeros(0, dtype=int))  # (n told, active_set)
        self._spread: tuple[int, np.ndarray] = (-1, np.zeros(0, dtype=int))  # (epoch, spread_set)
        self._wave: Optional[dict[str, Any]] = None  # _wave_model's cache
        self._penc: dict[int, np.ndarray] = {}  # encodings of the pending trials, by trial id
        if o["backend"] == "skopt":
            self._skopt_dims()  # import (and fail) early, with a clear message

    # -- data ----------------------------------------------------------------------------------
    def _told(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(U, features, losses) of the told trials, FAILED ones at the worst finite loss (left out
        while no trial has a finite value).  Only trials told since the last call are encoded."""
        n0 = len(self._told_v)
        if n0 > len(self.history) or (n0 and self.history[n0 - 1][0] != self._told_last):
            n0 = 0  # history replaced (not by tell): start again
            self._told_U, self._told_F, self._told_v = self._told_U[:0], self._told_F[:0], self._told_v[:0]
        new = self.history[n0:]
        if new:
            Un = np.array([self.space.encode(t[1]) for t in new], dtype=float).reshape(-1, len(self.space.dims))
            self._told_U = np.vstack([self._told_U, Un])
            self._told_F = np.vstack([self._told_F, self.features(Un)])
            vn = np.array([np.nan if t[3] is None else self.loss(t[3]) for t in new], dtype=float)
            self._told_v = np.concatenate([self._told_v, vn])
            self._told_last = self.history[-1][0]
        v = self._told_v.copy()
        ok = ~np.isnan(v)
        if not ok.any():
            return self._told_U[:0], self._told_F[:0], v[:0]
        v[~ok] = np.max(v[ok])
        return self._told_U, self._told_F, v

    def _liars(self, pending_U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(U, values) of the pending trials as the surrogate sees them: observations at the
        ``liar`` value (constant liar); none before a finite loss is known."""
        finite = self._told_v[~np.isnan(self._told_v)]
        Ul = pending_U
        if not len(finite) or not len(Ul):
            return pending_U[:0], np.zeros(0)
        lie = {"mean": float(np.mean(finite)), "min": float(np.min(finite)), "max": float(np.max(finite))}
        return Ul, np.full(len(Ul), lie[self.opts["liar"]])

    def _pending_U(self) -> np.ndarray:
        """U of the pending trials in ask order (encodings cached by trial id)."""
        cache = self._penc
        for tid in [t for t in cache if t not in self.pending]:
            del cache[tid]
        rows = []
        for tid, params in self.pending.items():
            u = cache.get(tid)
            if u is None:
                u = cache[tid] = np.asarray(self.space.encode(params), dtype=float)
            rows.append(u)
        return np.array(rows, dtype=float).reshape(-1, len(self.space.dims))

    # -- snapshots (optimizers/base.py): what asks change besides the RNG -------------------------
    snapshot_every = 1  # asks are slow: a resume re-runs none
    ask_state = ("_n_asked", "_fit_n", "_gains", "_prev_props")

    def state(self) -> dict[str, Any]:
        """Base state + the initial design while it is still used + the GP's hyper-parameters
        (what a refit starts from); the rest is the history or caches of it."""
        return {
            **super().state(),
            "_design": self._design if self._n_asked < self.n_initial else None,
            "gp_theta": None if self._gp is None else self._gp.theta,
        }

    def set_state(self, values: dict[str, Any]) -> None:
        values = dict(values)
        theta = values.pop("gp_theta")
        super().set_state(values)
        if theta is None:
            self._gp = None
        else:
            self._gp = GP(self.features.cols)
            self._gp.theta = np.asarray(theta, dtype=float)

    def _data(self) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
        """(U of told + liars, losses of told + liar values, number told, U of the liars)."""
        U_t, _, y_t = self._told()
        Ul, lies = self._liars(self._pending_U())
        return np.vstack([U_t, Ul]), np.concatenate([y_t, lies]), len(y_t), Ul

    # -- suggest -------------------------------------------------------------------------------
    def _suggest(self, trial_id: int) -> Optional[dict[str, Any]]:
        with one_blas_thread():
            return self._suggest_inner()

    def _suggest_inner(self) -> Optional[dict[str, Any]]:
        self._n_asked += 1
        if self._n_asked <= self.n_initial and len(self.history) < self.n_initial:
            return self.space.decode(self._initial_point(self._n_asked - 1))
        self._told()
        if int(np.count_nonzero(~np.isnan(self._told_v))) < 2:
            return self.space.sample(self.rng)
        if self.opts["backend"] == "skopt":
            return self._suggest_skopt()
        if self.opts["surrogate"] != "gp":
            U, y, n_told, _ = self._data()
            X = self.features(U)
            u = self._maximise(self._tree_model(X, y), U[:n_told], y[:n_told], X)
            return self.space.decode(u)
        U_t, F_t, y_t = self._told()
        Up = self._pending_U()
        Fp = self.features(Up)
        if len(Up) > self.opts["max_liars"]:
            return self.space.decode(self._wave_suggest(U_t, F_t, y_t, Fp))
        idx = self._active_set(F_t, y_t)
        _, lies = self._liars(Up)
        X = np.vstack([F_t[idx], Fp[: len(lies)]])
        predict = self._gp_model(X, np.concatenate([y_t[idx], lies]), len(idx), n_seen=len(y_t))
        u = self._maximise(predict, U_t[idx], y_t[idx], np.vstack([F_t, Fp]))
        return self.space.decode(u)

    def _active_set(self, F: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The told rows the GP is conditioned on (``gp.active_set``, at most ``max_points``):
        the best and the recent of all ``n`` told trials, the space-filling rest those of the
        first ``wave_epoch(n)`` (recomputed once per epoch: the O(n) farthest-point search is
        most of the cost of an ask at 10,000 observations)."""
        n, cap = len(y), self.opts["max_points"]
        if self._active[0] != n:
            m = self.wave_epoch(n)
            if self._spread[0] != m:
                self._spread = (m, spread_set(F[:m], self._prefix_losses(m), cap))
            self._active = (n, active_set(F, y, cap, spread=self._spread[1]))
        return self._active[1]

    def _prefix_losses(self, m: int) -> np.ndarray:
        """Losses of the first ``m`` told trials, FAILED ones at the worst finite loss among
        them (so that what is built on a prefix depends on the prefix only)."""
        v: np.ndarray = self._told_v[:m].copy()
        ok = ~np.isnan(v)
        v[~ok] = np.max(v[ok]) if ok.any() else 0.0
        return v

    # -- many pending trials: a frozen model and local penalties ---------------------------------
    @staticmethod
    def wave_epoch(n_told: int) -> int:
        """The number of told trials the wave model is built on: ``n_told`` rounded down to a
        multiple of the largest power of two <= n_told / 64 (the model is rebuilt after about
        1.5% more trials, e.g. every 128 at 10,000)."""
        step = 1 << max(0, (max(1, n_told // 64)).bit_length() - 1)
        return (n_told // step) * step

    def _wave_model(self, U_t: np.ndarray, F_t: np.ndarray, y_t: np.ndarray) -> dict[str, Any]:
        """The GP on the active set of the first ``wave_epoch(n)`` told trials and its posterior
        over a fixed pool of candidates: ``_WAVE_RANDOM * n_candidates`` random points plus
        perturbations of the 20 best observations.  The pool is drawn from a generator seeded
        by (seed, epoch), so the model is a function of the history and the GP's hyper-parameters
        (the cache only saves time); it is built once per epoch, not per ask."""
        n_b = self.wave_epoch(len(y_t))
        w = self._wave
        if w is not None and w["n"] == n_b and self._gp is not None and w["theta"] == self._gp.theta.tobytes():
            return w
        y_b = self._prefix_losses(n_b)
        idx = active_set(F_t[:n_b], y_b, self.opts["max_points"])
        self._gp_model(F_t[idx], y_b[idx], len(idx), n_seen=n_b)
        gp = cast(GP, self._gp)
        prng = np.random.default_rng([self.seed, n_b])
        U_a, y_a = U_t[idx], y_b[idx]
        top = U_a[np.argsort(y_a, kind="stable")[:20]]
        pool = [prng.random((_WAVE_RANDOM * self.opts["n_candidates"], U_t.shape[1]))]
        pool += [self._perturb(np.repeat(top, 40, axis=0), sc, prng) for sc in (0.1, 0.03, 0.01)]
        C = np.vstack(pool)
        F = self.features(C)
        mu, sd = gp.predict(F)
        from scipy.spatial import cKDTree

        fresh = np.asarray(cKDTree(F_t[:n_b]).query(F, p=np.inf)[0]) > 1e-9  # not a told trial
        finite = self._told_v[:n_b][~np.isnan(self._told_v[:n_b])]  # the liar: finite values only
        liar = self.opts["liar"]
        lie = float(np.mean(finite)) if liar == "mean" else float(np.min(finite) if liar == "min" else np.max(finite))
        self._wave = {
            "n": n_b,
            "theta": gp.theta.tobytes(),  # a refit since (by a sequential ask) rebuilds the model
            "C": C[fresh],
            "G": F[fresh] / gp.ls,  # pool features in length-scale units
            "mu": mu[fresh],
            "sd": cast(np.ndarray, sd)[fresh],
            "best": gp.to_std(float(np.min(y_a))),
            "lie": gp.to_std(float(lie)),
            "predict": gp.frozen(),  # the epoch's posterior, for the trials that join
            "ls": gp.ls.copy(),
            # per pool point: squared distance (length-scale units) to the nearest of the trials
            # that joined (pending or told since the epoch), and that trial's id, mean and sd
            # (ties: the lower id, so the order of joining does not matter)
            "d2": np.full(int(fresh.sum()), np.inf),
            "near": np.full(int(fresh.sum()), -1, dtype=np.int64),
            "mu_j": np.zeros(int(fresh.sum())),
            "sd_j": np.ones(int(fresh.sum())),
            "ids": set(),
        }
        return self._wave

    def _wave_suggest(self, U_t: np.ndarray, F_t: np.ndarray, y_t: np.ndarray, Fp: np.ndarray) -> np.ndarray:
        """An ask while more than ``max_liars`` trials are pending (a coordinator filling many
        idle workers at once): the pool candidate with the best EI (whatever ``acq`` is) under
        the wave model updated for the *nearest* trial j that joined since the epoch (pending,
        or told since): as if j alone had been observed at the liar value, with the kernel's
        correlation k between candidate and j standing in for the posterior one,
        mu' = mu + k sd / sd_j (lie - mu_j) and sd' = sd sqrt(1 - k^2) — a constant liar over
        the nearest pending point only, i.e. a local penalty (Gonzalez et al. 2016) whose
        radius is the kernel's.  Cost per ask: the distances of the pool to the trials that
        joined since the last ask, O(pool x features) each, and one EI over the pool."""
        w = self._wave_model(U_t, F_t, y_t)
        n_b = w["n"]
        near = [(t[0], F_t[n_b + i]) for i, t in enumerate(self.history[n_b:])]
        near += list(zip(self.pending, Fp))
        new = [(tid, f) for tid, f in near if tid not in w["ids"]]
        if len(near) - len(new) != len(w["ids"]):  # a trial left the set (not by tell): start again
            m = len(w["C"])
            w["ids"], w["d2"], w["near"] = set(), np.full(m, np.inf), np.full(m, -1, dtype=np.int64)
            new = near
        if new:
            mu_n, sd_n = w["predict"](np.array([f for _, f in new]))
            for (tid, f), mj, sj in zip(new, mu_n, sd_n):
                diff = w["G"] - f / w["ls"]
                d2 = np.einsum("ij,ij->i", diff, diff)
                upd = (d2 < w["d2"]) | ((d2 == w["d2"]) & (tid < w["near"]))
                w["d2"][upd], w["near"][upd], w["mu_j"][upd], w["sd_j"][upd] = d2[upd], tid, mj, sj
                w["ids"].add(tid)
        k = np.where(w["near"] >= 0, matern52_corr(np.sqrt(w["d2"])), 0.0)
        mu = w["mu"] + k * w["sd"] / np.maximum(w["sd_j"], 1e-9) * (w["lie"] - w["mu_j"])
        sd = w["sd"] * np.sqrt(np.maximum(1.0 - k * k, 1e-12))
        s = self._scores("ei", mu, sd, w["best"])
        s[w["d2"] < 1e-12] = -np.inf  # a trial that joined itself
        return self._pick(w["C"], s, np.vstack([F_t[n_b:], Fp]))  # the pool has no told[:n_b]

    def _initial_point(self, k: int) -> np.ndarray:
        D = len(self.space.dims)
        if self._design is None:
            n = self.n_initial
            if self.opts["initial_design"] == "lhs":
                self._design = np.empty((n, D))
                for j in range(D):
                    self._design[:, j] = (self.rng.permutation(n) + self.rng.random(n)) / n
            else:
                self._design = self.rng.random((n, D))
        return cast(np.ndarray, self._design[k])

    def _refit_due(self, n_told: int) -> bool:
        every = self.opts["refit_every"] or (1 if n_told <= 50 else max(1, n_told // 25))
        return self._fit_n < 0 or n_told - self._fit_n >= every

    def _gp_model(self, X: np.ndarray, y: np.ndarray, n_told: int, n_seen: Optional[int] = None) -> Any:
        """The GP conditioned on (X, y), whose first ``n_told`` rows are told trials (the rest
        liars); hyper-parameters refitted when due after ``n_seen`` (default ``n_told``) told trials."""
        if self._gp is None:
            self._gp = GP(X.shape[1])
        gp = self._gp
        n_seen = n_told if n_seen is None else n_seen
        if self._refit_due(n_seen):
            gp.fit(X[:n_told], y[:n_told], self.rng, restarts=2 if n_seen <= 100 else 1)
            self._fit_n = n_seen
        # standardise on the told values, condition on told + pending (liars)
        gp.standardise(y[:n_told], set_stats=True)
        gp.condition(X, y)

        def predict(F: np.ndarray) -> tuple[np.ndarray, Optional[np.ndarray]]:
            return gp.predict(F)

        predict.to_std = gp.to_std  # type: ignore[attr-defined]
        return predict

    def _tree_model(self, X: np.ndarray, y: np.ndarray) -> Any:
        from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

        cls = RandomForestRegressor if self.opts["surrogate"] == "forest" else ExtraTreesRegressor
        mu_y = float(np.mean(y))
        sd_y = float(np.std(y)) or 1.0
        model = cls(n_estimators=32, min_samples_leaf=3, n_jobs=1, random_state=int(self.rng.integers(2**31 - 1)))
        model.fit(X, (y - mu_y) / sd_y)

        def predict(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            F32 = np.ascontiguousarray(F, dtype=np.float32)  # skip sklearn's per-call validation
            P = np.stack([t.tree_.predict(F32).reshape(len(F32), -1)[:, 0] for t in model.estimators_])
            return P.mean(0), np.maximum(P.std(0), 1e-3)

        predict.to_std = lambda v: (float(v) - mu_y) / sd_y  # type: ignore[attr-defined]
        return predict

    def _scores(self, acq: str, mu: np.ndarray, sd: np.ndarray, best: float) -> np.ndarray:
        if acq == "lcb":
            return cast(np.ndarray, -(mu - self.opts["kappa"] * sd))
        z = (best - mu - self.opts["xi"]) / sd
        if acq == "pi":
            return cast(np.ndarray, log_ndtr(z))
        return cast(np.ndarray, np.log(sd) + _log_h(z))  # log EI: ranks like EI, no underflow far from the best

    def _maximise(self, predict: Any, U_told: np.ndarray, y_told: np.ndarray, X_all: np.ndarray) -> np.ndarray:
        rng, D = self.rng, U_told.shape[1]
        best = predict.to_std(float(np.min(y_told)))
        acqs = ["ei", "lcb", "pi"] if self.opts["acq"] == "hedge" else [self.opts["acq"]]
        # candidate pool: random points + perturbations of the 5 best observations
        top = U_told[np.argsort(y_told, kind="stable")[:5]]
        pool = [rng.random((self.opts["n_candidates"], D))]
        pool.append(self._perturb(np.repeat(top, 40, axis=0), 0.1))
        C = np.vstack(pool)
        mu, sd = predict(self.features(C))
        proposals = []
        for acq in acqs:
            s = self._scores(acq, mu, sd, best)
            Cb, sb = C, s
            for scale in (0.05, 0.01, 0.002):  # shrinking local rounds around the 5 best
                head = Cb[np.argsort(-sb, kind="stable")[:5]]
                L = np.vstack([head, self._perturb(np.repeat(head, 30, axis=0), scale)])
                m2, s2 = predict(self.features(L))
                Cb, sb = np.vstack([Cb, L]), np.concatenate([sb, self._scores(acq, m2, s2, best)])
            if self._gp is not None and self.opts["surrogate"] == "gp":
                L = self._local_search(acq, self._local_starts(C, s, Cb, sb, U_told, y_told), best)
                m2, s2 = predict(self.features(L))
                Cb, sb = np.vstack([Cb, L]), np.concatenate([sb, self._scores(acq, m2, s2, best)])
            proposals.append(self._pick(Cb, sb, X_all))
        if len(acqs) == 1:
            return proposals[0]
        P = np.array(proposals)
        if self._prev_props is not None:  # GP-Hedge: reward each arm by its last proposal
            self._gains -= predict(self.features(self._prev_props))[0]
        self._prev_props = P
        g = self._gains - self._gains.max()
        prob = np.exp(g) / np.exp(g).sum()
        return cast(np.ndarray, P[int(rng.choice(len(P), p=prob))])

    def _acq_grad(self, acq: str, F: np.ndarray, best: float) -> tuple[np.ndarray, np.ndarray]:
        assert self._gp is not None  # local searches run on a fitted GP only
        mu, sd, dmu, dsd = self._gp.predict_grad(F)
        if acq == "lcb":
            k = self.opts["kappa"]
            return -(mu - k * sd), -(dmu - k * dsd)
        z = (best - mu - self.opts["xi"]) / sd
        dz = (-dmu - z[:, None] * dsd) / sd[:, None]
        if acq == "pi":
            lc = log_ndtr(z)
            return lc, np.exp(_logpdf(z) - lc)[:, None] * dz
        lh = _log_h(z)
        return np.log(sd) + lh, dsd / sd[:, None] + np.exp(log_ndtr(z) - lh)[:, None] * dz

    def _local_starts(
        self, C: np.ndarray, s: np.ndarray, Cb: np.ndarray, sb: np.ndarray, U_told: np.ndarray, y_told: np.ndarray
    ) -> np.ndarray:
        """Starts of the local searches: the best candidate found so far, then the best-scoring
        pool candidates at least ``_START_SEP`` apart (L-inf, unit cube), then the best observed
        configuration (``_N_LOCAL`` in all, ``_N_LOCAL_PENDING`` while suggestions are pending)."""
        n_local = _N_LOCAL_PENDING if self.pending else _N_LOCAL
        chosen = [Cb[int(np.argmax(sb))]]
        for j in np.argsort(-s, kind="stable"):
            if len(chosen) >= n_local - 1:
                break
            if np.min(np.abs(np.array(chosen) - C[j]).max(axis=1)) > _START_SEP:
                chosen.append(C[j])
        chosen.append(U_told[int(np.argmin(y_told))])
        return np.array(chosen)

    def _local_search(self, acq: str, starts: np.ndarray, best: float) -> np.ndarray:
        """L-BFGS-B on the acquisition from each start, over the numeric features of the dims
        active there (categoricals and branch held fixed), in coordinates scaled by the GP's
        length-scales (x / l: equal curvature in every direction), each start to convergence
        (projected gradient < ``_PGTOL``) or ``_LOCAL_ITERS`` iterations.  Returns the points
        reached, in the unit cube."""
        from scipy.optimize import minimize

        cols = np.array([t[4] for t in self.features.plan if t[0] == "num"], dtype=int)
        dims = [t[1] for t in self.features.plan if t[0] == "num"]
        if len(cols) == 0:
            return starts
        F0 = self.features(starts)
        active = self.features.active(starts)[:, dims]  # m x q
        assert self._gp is not None
        ls_all = self._gp.ls
        out: np.ndarray = starts.copy()
        for k in range(len(starts)):
            free = active[k]
            if not free.any():
                continue
            c, ls = cols[free], ls_all[cols[free]]
            row = F0[k : k + 1].copy()

            # minimize() calls fun only within this iteration: the loop variables are the current ones
            def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
                row[0, c] = z * ls  # noqa: B023
                a, g = self._acq_grad(acq, row, best)  # noqa: B023
                return -float(a[0]), -g[0, c] * ls  # noqa: B023

            try:
                res = minimize(
                    fun,
                    row[0, c] / ls,
                    jac=True,
                    method="L-BFGS-B",
                    bounds=list(zip(np.zeros(len(c)), 1.0 / ls)),
                    options={"maxiter": _LOCAL_ITERS, "maxfun": 2 * _LOCAL_ITERS, "gtol": _PGTOL},
                )
                z = np.clip(res.x * ls, 0.0, 1.0)
            except (ValueError, FloatingPointError, np.linalg.LinAlgError):
                continue
            if not np.all(np.isfinite(z)):
                continue
            for j, i in enumerate(np.array(dims)[free]):
                out[k, i] = z[j]
        return out

    def _perturb(self, U: np.ndarray, scale: float, rng: Optional[np.random.Generator] = None) -> np.ndarray:
        rng = self.rng if rng is None else rng
        out = U + rng.normal(0.0, scale, U.shape)
        flip = rng.random(U.shape) < 0.1  # occasionally re-draw a coordinate (categoricals)
        out[flip] = rng.random(int(flip.sum()))
        return np.clip(out, 0.0, 1.0)

    def _pick(self, C: np.ndarray, s: np.ndarray, X_all: np.ndarray) -> np.ndarray:
        """Best-scoring candidate whose features differ from every told or pending point (by more
        than 1e-9, L-inf), looked for among the best 50, then, nearest-neighbour queries being
        cheap, among all; a random point when every candidate is taken."""
        order = np.argsort(-s, kind="stable")
        if len(X_all) == 0:
            return cast(np.ndarray, C[order[0]])
        F = self.features(C[order[:50]])
        for j, f in enumerate(F):
            if np.min(np.abs(X_all - f).max(axis=1)) > 1e-9:
                return cast(np.ndarray, C[order[j]])
        from scipy.spatial import cKDTree

        d = cKDTree(X_all).query(self.features(C[order[50:]]), p=np.inf)[0]
        free = np.flatnonzero(np.asarray(d) > 1e-9)
        if len(free):
            return cast(np.ndarray, C[order[50 + int(free[0])]])
        return cast(np.ndarray, self.rng.random(C.shape[1]))

    # -- skopt backend ---------------------------------------------------------------------------
    def _skopt_dims(self) -> list[Any]:
        try:
            from skopt.space import Categorical as SkCat
            from skopt.space import Real
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigError(
                "optimizer 'bayes': backend 'skopt' needs scikit-optimize (pip install scikit-optimize)"
            ) from exc
        dims = []
        for i, d in enumerate(self.space.dims):
            p = d.param
            if isinstance(p, Fixed):
                continue
            if isinstance(p, Categorical):
                dims.append(SkCat([str(j) for j in range(len(p.choices))], name=f"d{i}"))
            else:
                dims.append(Real(0.0, 1.0, name=f"d{i}"))
        return dims

    def _to_skopt(self, u: np.ndarray) -> list[Any]:
        out: list[Any] = []
        for i, d in enumerate(self.space.dims):
            p = d.param
            if isinstance(p, Fixed):
                continue
            if isinstance(p, Categorical):
                out.append(str(int(Features._cat_index(np.array([u[i]]), len(p.choices))[0])))
            else:
                out.append(float(Features._snap(p, np.array([u[i]]))[0]))
        return out

    def _from_skopt(self, x: list[Any]) -> np.ndarray:
        u = np.full(len(self.space.dims), 0.5)
        it = iter(x)
        for i, d in enumerate(self.space.dims):
            p = d.param
            if isinstance(p, Fixed):
                continue
            v = next(it)
            u[i] = (int(v) + 0.5) / len(p.choices) if isinstance(p, Categorical) else float(v)
        return u

    def _suggest_skopt(self) -> dict[str, Any]:
        from skopt import Optimizer as SkOptimizer

        U, y, _, _ = self._data()
        base = {"gp": "GP", "forest": "RF", "extra_trees": "ET"}[self.opts["surrogate"]]
        acq = {"ei": "EI", "lcb": "LCB", "hedge": "gp_hedge"}[self.opts["acq"]]
        opt = SkOptimizer(
            self._skopt_dims(),
            base_estimator=base,
            n_initial_points=1,
            acq_func=acq,
            acq_optimizer="sampling",
            acq_func_kwargs={"xi": self.opts["xi"], "kappa": self.opts["kappa"]},
            acq_optimizer_kwargs={"n_points": self.opts["n_candidates"]},
            random_state=int(self.rng.integers(2**31 - 1)),
        )
        opt.tell([self._to_skopt(u) for u in U], [float(v) for v in y])
        return self.space.decode(self._from_skopt(opt.ask()))

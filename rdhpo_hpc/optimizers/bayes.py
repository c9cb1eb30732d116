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
losses, warped (``output_warp: yeo-johnson``, default) by a Yeo-Johnson power transform whose
exponent is fitted by maximum likelihood to the told losses on every ask (as HEBO does,
Cowen-Rivers et al. 2022: heavy-tailed losses such as ill-conditioned ones become near-Gaussian
and the region of the best gets the resolution; strictly increasing, so the best stays best),
with a constant mean fitted with the kernel (generalised least squares, profiled out of
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
trials rounded down by 3-6%, up to 12-25% with many workers) and its log-EI over a fixed pool of candidates are computed
once, and each ask picks the best pool candidate after a local penalty log(1 - k(r)^2) for the
kernel correlation k to the nearest pending trial or trial told since the epoch (Gonzalez et
al. 2016): one distance row per new trial, well under a millisecond per ask whatever the number
pending (10,000 workers: 10,000 pending and ~1,000 asks/s).
FAILED trials (value None) are added at the worst observed loss, so a crashing region is not
suggested again and again; they leave no pending entry.

*Cost bound per ask* (rank 0 stays responsive; no wall-clock budget, so replay is exact):
hyper-parameters are refitted only every ``refit_every`` told trials (auto: every trial up to 50,
then every n/25), with at most 2 L-BFGS-B starts (1 past 100 trials, warm-started) x 30
iterations on at most 250 points; other
asks only re-condition the GP (one Cholesky of m + pending points, m = min(n, ``max_points``),
pending <= ``max_liars``) and score about ``n_candidates + 650`` candidates, plus at most about
10 x 400 single-point gradient evaluations in the local searches (typically 10 x 10-15):
O((m + pending)^3 + (n_candidates + 650 + 4000) * m * (m + features)) plus O(n) with a small
constant (a partition of the losses for the best half of the active set, one feature column
scanned per pick).  A wave ask: O(pool x features) per trial new since the last ask, nothing in
the number told (the told trials' arrays grow in place: ``_Rows``), and one model per epoch
(O(n log n + m^3 + pool * m^2) plus a k-d tree over the pending, O(pool log pending)), epochs
being O(n) tells apart: CPU per trial flat in n (issue 16 item 4; measured in docs/bench.md).
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
    "output_warp": ("yeo-johnson", "none"),
}


_SQ2, _SQ_HALF_PI = math.sqrt(2.0), math.sqrt(math.pi / 2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_N_LOCAL = 10  # local searches of the acquisition per ask (GP surrogate)
_N_LOCAL_PENDING = 3  # ... while other suggestions are pending (parallel workers: asks come in
# waves and must stay cheap; the liars spread them out anyway)
_WAVE_RANDOM = 2  # random candidates of the wave pool, in units of n_candidates
_WAVE_PER = 16  # the wave model is rebuilt after 1/32..1/16 more tells, or asks (_wave_base)
_START_SEP = 0.05  # their starts are at least this far apart (L-inf, unit cube)
_LOCAL_ITERS = 200  # L-BFGS-B iterations per local search, at most (and 2x that many evaluations)
_PGTOL = 1e-2  # ... until the projected gradient (length-scale units) is below this


def _d2(GT: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Squared distances between the columns of ``GT`` (features x points) and ``g`` (one
    point, or features x points: pairwise by column), summed feature by feature in order:
    elementwise arithmetic only, so a pair gets the same bits in any batch."""
    acc = (GT[0] - g[0]) ** 2
    for c in range(1, len(GT)):
        acc += (GT[c] - g[c]) ** 2
    return cast(np.ndarray, acc)


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


class _Rows:
    """A float array that grows at the end: capacity doubling, so appending k rows costs O(k)
    amortised instead of a copy of all rows (``np.vstack``); rows never change once appended
    unless written through ``view``."""

    def __init__(self, cols: Optional[int] = None) -> None:
        self.buf = np.zeros((16,) if cols is None else (16, cols))
        self.n = 0

    def append(self, rows: np.ndarray) -> None:
        k = len(rows)
        if self.n + k > len(self.buf):
            buf = np.zeros((max(2 * len(self.buf), self.n + k),) + self.buf.shape[1:])
            buf[: self.n] = self.buf[: self.n]
            self.buf = buf
        self.buf[self.n : self.n + k] = rows
        self.n += k

    def view(self) -> np.ndarray:
        """The rows so far (a view of the buffer)."""
        return self.buf[: self.n]


def _far(X: np.ndarray, f: np.ndarray, col: int, tol: float = 1e-9) -> bool:
    """True when every row of ``X`` differs from ``f`` by more than ``tol`` in some feature
    (``np.abs(X - f).max(axis=1) > tol`` for all rows), looking at all features only for the
    rows within ``tol`` in feature ``col``: O(n) over one column, not all."""
    near = np.flatnonzero(np.abs(X[:, col] - f[col]) <= tol)
    return not len(near) or bool(np.min(np.abs(X[near] - f).max(axis=1)) > tol)


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
        "output_warp": "yeo-johnson",
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
        self._reset_told()
        self._active: tuple[int, np.ndarray] = (-1, np.zeros(0, dtype=int))  # (n told, active_set)
        self._spread: tuple[int, np.ndarray] = (-1, np.zeros(0, dtype=int))  # (epoch, spread_set)
        self._wave: Optional[dict[str, Any]] = None  # _wave_model's cache
        self._penc: dict[int, np.ndarray] = {}  # encodings of the pending trials, by trial id
        self._joining: list[int] = []  # trials asked or enqueued since the last ask (a hint) ...
        self._hint: list[int] = []  # ... as of this ask
        if o["backend"] == "skopt":
            self._skopt_dims()  # import (and fail) early, with a clear message

    # -- data ----------------------------------------------------------------------------------
    def _reset_told(self) -> None:
        """Forget the arrays of told trials (at start, and when the history was replaced)."""
        self._t_U = _Rows(len(self.space.dims))  # encodings
        self._t_F = _Rows(self.features.cols)  # features
        self._t_v = _Rows()  # losses, NaN when FAILED
        self._t_y = _Rows()  # losses, FAILED at the worst finite one (-inf while none is known)
        self._t_failed: list[int] = []  # rows of the FAILED ones
        self._t_max = -math.inf  # the worst finite loss
        self._n_finite = 0
        self._told_last = -1  # trial id of the last of them

    @property
    def _told_v(self) -> np.ndarray:
        """Losses of the told trials in tell order, NaN when FAILED."""
        return self._t_v.view()

    def _told(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(U, features, losses) of the told trials, FAILED ones at the worst finite loss (left out
        while no trial has a finite value): views, valid until the next call.  Only trials told
        since the last call are encoded, appended in amortised O(1) per trial (``_Rows``); a new
        worst loss re-fills the FAILED rows only, so a call costs O(new trials) (+ O(FAILED)
        when the worst loss changed), not O(told)."""
        n0 = self._t_v.n
        if n0 > len(self.history) or (n0 and self.history[n0 - 1][0] != self._told_last):
            n0 = 0  # history replaced (not by tell): start again
            self._reset_told()
        new = self.history[n0:]
        if new:
            Un = np.array([self.space.encode(t[1]) for t in new], dtype=float).reshape(-1, len(self.space.dims))
            self._t_U.append(Un)
            self._t_F.append(self.features(Un))
            vn = np.array([np.nan if t[3] is None else self.loss(t[3]) for t in new], dtype=float)
            self._t_v.append(vn)
            ok = ~np.isnan(vn)
            if ok.any() and float(np.max(vn[ok])) > self._t_max:
                self._t_max = float(np.max(vn[ok]))
                self._t_y.view()[self._t_failed] = self._t_max
            self._t_failed.extend((n0 + np.flatnonzero(~ok)).tolist())
            self._t_y.append(np.where(ok, vn, self._t_max))
            self._n_finite += int(np.count_nonzero(ok))
            self._told_last = self.history[-1][0]
        if not self._n_finite:
            return self._t_U.view()[:0], self._t_F.view()[:0], self._t_y.view()[:0]
        return self._t_U.view(), self._t_F.view(), self._t_y.view()

    def _liars(self, pending_U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(U, values) of the pending trials as the surrogate sees them: observations at the
        ``liar`` value (constant liar); none before a finite loss is known."""
        Ul = pending_U
        if not self._n_finite or not len(Ul):
            return pending_U[:0], np.zeros(0)
        finite = self._told_v[~np.isnan(self._told_v)]
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
            self._gp = GP(self.features.cols, warp=self.opts["output_warp"] == "yeo-johnson")
            self._gp.theta = np.asarray(theta, dtype=float)

    def _data(self) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
        """(U of told + liars, losses of told + liar values, number told, U of the liars)."""
        U_t, _, y_t = self._told()
        Ul, lies = self._liars(self._pending_U())
        return np.vstack([U_t, Ul]), np.concatenate([y_t, lies]), len(y_t), Ul

    # -- suggest -------------------------------------------------------------------------------
    def _suggest(self, trial_id: int) -> Optional[dict[str, Any]]:
        # the trials asked (pending once answered) or enqueued since the last ask
        self._hint, self._joining = self._joining, [trial_id]
        if self._wave_is_current():  # a cheap wave ask: no linear algebra worth limiting
            return self._suggest_inner()
        with one_blas_thread():
            return self._suggest_inner()

    def _wave_is_current(self) -> bool:
        """True when this ask will be a wave ask on the cached wave model (no rebuild)."""
        w, n = self._wave, len(self.history)
        return (
            w is not None
            and len(self.pending) > self.opts["max_liars"]
            and self._n_asked >= self.n_initial
            and w["n"] == self._wave_base(n, self._n_asked + 1)
        )

    def enqueued(self, trial_id: int, params: dict[str, Any]) -> None:
        super().enqueued(trial_id, params)
        self._joining.append(trial_id)

    def _suggest_inner(self) -> Optional[dict[str, Any]]:
        self._n_asked += 1
        if self._n_asked <= self.n_initial and len(self.history) < self.n_initial:
            return self.space.decode(self._initial_point(self._n_asked - 1))
        self._told()
        if self._n_finite < 2:
            return self.space.sample(self.rng)
        if self.opts["backend"] == "skopt":
            return self._suggest_skopt()
        if self.opts["surrogate"] != "gp":
            U, y, n_told, _ = self._data()
            X = self.features(U)
            u = self._maximise(self._tree_model(X, y), U[:n_told], y[:n_told], [X])
            return self.space.decode(u)
        U_t, F_t, y_t = self._told()
        if len(self.pending) > self.opts["max_liars"]:
            return self.space.decode(self._wave_suggest(U_t, F_t, y_t))
        Up = self._pending_U()
        Fp = self.features(Up)
        idx = self._active_set(F_t, y_t)
        _, lies = self._liars(Up)
        X = np.vstack([F_t[idx], Fp[: len(lies)]])
        predict = self._gp_model(X, np.concatenate([y_t[idx], lies]), len(idx), n_seen=len(y_t))
        u = self._maximise(predict, U_t[idx], y_t[idx], [F_t, Fp])
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
    def wave_epoch(n_told: int, per: int = 64) -> int:
        """``n_told`` rounded down to a multiple of the largest power of two <= n_told / ``per``:
        the space-filling part of the active set is recomputed after about 1.5% more told
        trials (``per`` 64, e.g. every 128 at 10,000)."""
        return BayesOptimizer._round_down(n_told, n_told // per)

    @staticmethod
    def _round_down(n: int, at_most: int) -> int:
        """``n`` rounded down to a multiple of the largest power of two <= max(1, ``at_most``)."""
        step = 1 << max(0, (max(1, at_most)).bit_length() - 1)
        return (n // step) * step

    @staticmethod
    def _wave_base(n_told: int, n_asked: int) -> int:
        """The told trials a wave model is built on: ``n_told`` rounded down to a multiple of the
        largest power of two <= min(max(n_told, n_asked), 4 n_told) / 16.  Asks, not only tells:
        with P workers about n + P are asked, so with many workers the model is rebuilt after
        1/8..1/4 more tells rather than 1/32..1/16 (each model costs a k-d tree over the P
        pending and the pool's posterior); both counts only grow, so the epoch never flips back
        and forth."""
        return BayesOptimizer._round_down(n_told, min(max(n_told, n_asked), 4 * n_told) // _WAVE_PER)

    def _wave_model(self, U_t: np.ndarray, F_t: np.ndarray, y_t: np.ndarray) -> dict[str, Any]:
        """The GP on the active set of the first ``_wave_base`` told trials and its
        posterior over a fixed pool of candidates: ``_WAVE_RANDOM * n_candidates`` random points
        plus perturbations of the 20 best observations.  The pool is drawn from a generator
        seeded by (seed, epoch), so the model is a function of the history and the GP's
        hyper-parameters (the cache only saves time); it is built once per epoch, not per ask."""
        n_b = self._wave_base(len(y_t), self._n_asked)
        w = self._wave
        if w is not None and w["n"] == n_b and self._gp is not None and w["theta"] == self._gp.theta.tobytes():
            return w
        y_b = self._prefix_losses(n_b)
        idx = active_set(F_t[:n_b], y_b, self.opts["max_points"])
        self._gp_model(F_t[idx], y_b[idx], len(idx), n_seen=n_b, wave=True)
        gp = cast(GP, self._gp)
        prng = np.random.default_rng([self.seed, n_b])
        U_a, y_a = U_t[idx], y_b[idx]
        top = U_a[np.argsort(y_a, kind="stable")[:20]]
        pool = [prng.random((_WAVE_RANDOM * self.opts["n_candidates"], U_t.shape[1]))]
        pool += [self._perturb(np.repeat(top, 40, axis=0), sc, prng) for sc in (0.1, 0.03, 0.01)]
        C = np.vstack(pool)
        F = self.features(C)
        from scipy.spatial import cKDTree

        fresh = np.asarray(cKDTree(F_t[:n_b]).query(F, p=np.inf)[0]) > 1e-9  # not a told trial
        C, F = C[fresh], F[fresh]
        mu, sd = gp.predict(F)
        finite = self._told_v[:n_b][~np.isnan(self._told_v[:n_b])]  # the liar: finite values only
        liar = self.opts["liar"]
        lie = float(np.mean(finite)) if liar == "mean" else float(np.min(finite) if liar == "min" else np.max(finite))
        best = gp.to_std(float(np.min(y_a)))
        m = len(C)
        self._penc = {tid: u for tid, u in self._penc.items() if tid in self.pending}
        self._wave = {
            "n": n_b,
            "theta": gp.theta.tobytes(),  # a refit since (by a sequential ask) rebuilds the model
            "C": C,
            "GT": np.ascontiguousarray((F / gp.ls).T),  # pool features in length-scale units, by column
            "mu": mu,
            "sd": cast(np.ndarray, sd),
            "best": best,
            "lie": gp.to_std(float(lie)),
            "predict": gp.frozen(),  # the epoch's posterior, for the trials that join
            "ls": gp.ls.copy(),
            # per pool point: squared distance (length-scale units) to the nearest of the trials
            # that joined (pending or told since the epoch), and that trial's id, mean and sd
            # (ties: the lower id, so the order of joining does not matter), and its score
            "d2": np.full(m, np.inf),
            "near": np.full(m, -1, dtype=np.int64),
            "mu_j": np.zeros(m),
            "sd_j": np.ones(m),
            "s": self._scores("ei", mu, cast(np.ndarray, sd), best),
            "ids": set(),
            "seen": n_b,  # history[:seen] has been looked at
        }
        return self._wave

    def _wave_joined(self, w: dict[str, Any], F_t: np.ndarray) -> tuple[list[int], np.ndarray]:
        """(ids, features) of the trials that joined the penalised set (told since the epoch, or
        pending) since the last ask: those told since then, the trials asked and enqueued since the
        last ask (``_hint``), checked by count; when the count is off (a replay, a trial that left
        pending without a tell) the whole set is looked at, O(pending), and when a trial left
        the set its state is rebuilt from scratch."""
        ids, n_b = w["ids"], w["n"]
        tids: list[int] = []
        rows: list[np.ndarray] = []
        for i in range(w["seen"], len(self.history)):
            tid = self.history[i][0]
            if tid not in ids:
                tids.append(tid)
                rows.append(F_t[i])
        w["seen"] = len(self.history)
        ptids = [t for t in dict.fromkeys(self._hint) if t in self.pending and t not in ids]
        if len(ids) + len(tids) + len(ptids) != len(self.history) - n_b + len(self.pending):
            joined = {h[0] for h in self.history[n_b:]} | self.pending.keys()
            if not ids <= joined:  # a trial left the set (not by tell): start again
                m = len(w["C"])
                ids = w["ids"] = set()
                w["d2"], w["near"] = np.full(m, np.inf), np.full(m, -1, dtype=np.int64)
                w["s"] = self._scores("ei", w["mu"], w["sd"], w["best"])
            tids, rows = [], []
            for i in range(n_b, len(self.history)):
                if self.history[i][0] not in ids:
                    tids.append(self.history[i][0])
                    rows.append(F_t[i])
            ptids = [t for t in self.pending if t not in ids]
        if ptids:
            rows.extend(self.features(np.array([self._encoded(t) for t in ptids])))
        return tids + ptids, np.array(rows, dtype=float).reshape(-1, F_t.shape[1])

    def _encoded(self, tid: int) -> np.ndarray:
        """The unit-cube encoding of pending trial ``tid`` (cached by id)."""
        u = self._penc.get(tid)
        if u is None:
            u = self._penc[tid] = np.asarray(self.space.encode(self.pending[tid]), dtype=float)
        return u

    def _wave_join(self, w: dict[str, Any], tids: list[int], F: np.ndarray) -> None:
        """Make trials ``tids`` (features ``F``) candidates for the nearest joined trial of every
        pool point and re-score the pool points whose nearest changed.  The squared distances
        are computed by ``_d2`` (the same arithmetic whichever way the pair is found: a scan of
        the pool for a few trials, a k-d tree for many), the minimum kept with ties to the lower
        id: the result depends on the set of joined trials only, not on the order they joined."""
        if not tids:
            return
        GT, ids = w["GT"], np.asarray(tids, dtype=np.int64)
        g = F / w["ls"]
        if len(tids) <= 8:
            best_d2, best_id = np.full(GT.shape[1], np.inf), np.full(GT.shape[1], -1, np.int64)
            best_row = np.zeros(GT.shape[1], dtype=np.int64)
            for r, tid in enumerate(tids):
                d2 = _d2(GT, g[r])
                upd = (d2 < best_d2) | ((d2 == best_d2) & (tid < best_id))
                best_d2[upd], best_id[upd], best_row[upd] = d2[upd], tid, r
        else:
            best_d2, best_id, best_row = self._nearest_by_tree(GT, g, ids)
        upd = (best_d2 < w["d2"]) | ((best_d2 == w["d2"]) & (best_id < w["near"]))
        w["ids"].update(tids)
        if not upd.any():
            return
        rows = np.unique(best_row[upd])
        mu_n, sd_n = w["predict"](F[rows])
        at = np.searchsorted(rows, best_row[upd])
        w["d2"][upd], w["near"][upd] = best_d2[upd], best_id[upd]
        w["mu_j"][upd], w["sd_j"][upd] = mu_n[at], sd_n[at]
        d2 = w["d2"][upd]
        k = matern52_corr(np.sqrt(d2))
        mu = w["mu"][upd] + k * w["sd"][upd] / np.maximum(w["sd_j"][upd], 1e-9) * (w["lie"] - w["mu_j"][upd])
        sd = w["sd"][upd] * np.sqrt(np.maximum(1.0 - k * k, 1e-12))
        s = self._scores("ei", mu, sd, w["best"])
        s[d2 < 1e-12] = -np.inf  # a trial that joined itself
        w["s"][upd] = s

    @staticmethod
    def _nearest_by_tree(GT: np.ndarray, g: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per pool point (columns of ``GT``): the smallest ``_d2`` to the rows of ``g``, the id
        of that row (ties: the lower id) and its index; a k-d tree finds the nearest row and
        every row within a relative 1e-9 of it (rounding of the tree's distances), ``_d2``
        decides among them."""
        from scipy.spatial import cKDTree

        G = GT.T
        tree = cKDTree(g)
        k = min(2, len(g))
        dist, nn = tree.query(G, k=k)
        dist, nn = dist.reshape(len(G), k), nn.reshape(len(G), k)
        row = nn[:, 0].astype(np.int64)
        d2 = _d2(GT, g[row].T)
        if k == 2:
            for i in np.flatnonzero(dist[:, 1] <= dist[:, 0] * (1 + 1e-9) + 1e-12):
                cand = np.array(tree.query_ball_point(G[i], dist[i, 0] * (1 + 1e-9) + 1e-12), dtype=np.int64)
                cd2 = _d2(GT[:, i : i + 1], g[cand].T)
                order = np.lexsort((ids[cand], cd2))
                row[i], d2[i] = cand[order[0]], cd2[order[0]]
        return d2, ids[row], row

    def _wave_suggest(self, U_t: np.ndarray, F_t: np.ndarray, y_t: np.ndarray) -> np.ndarray:
        """An ask while more than ``max_liars`` trials are pending (a coordinator filling many
        idle workers at once): the pool candidate with the best EI (whatever ``acq`` is) under
        the wave model updated for the *nearest* trial j that joined since the epoch (pending,
        or told since): as if j alone had been observed at the liar value, with the kernel's
        correlation k between candidate and j standing in for the posterior one,
        mu' = mu + k sd / sd_j (lie - mu_j) and sd' = sd sqrt(1 - k^2) — a constant liar over
        the nearest pending point only, i.e. a local penalty (Gonzalez et al. 2016) whose
        radius is the kernel's.  Cost per ask, independent of the number pending: the
        distances of the pool to the trials that joined since the last ask, O(pool x
        features) each, the scores of the pool points they are nearest to, and an argmax;
        per epoch a k-d tree over the joined trials, O(pool log(pending))."""
        w = self._wave_model(U_t, F_t, y_t)
        tids, F = self._wave_joined(w, F_t)
        self._wave_join(w, tids, F)
        j = int(np.argmax(w["s"]))
        if not np.isfinite(w["s"][j]):  # every pool point taken
            return cast(np.ndarray, self.rng.random(U_t.shape[1]))
        return cast(np.ndarray, w["C"][j])

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

    def _refit_due(self, n_told: int, wave: bool = False) -> bool:
        """Auto (``refit_every`` None): after every told trial up to 50, then after n/25 more, and
        for a wave model past 1,000 told trials or 1,000 asks ahead of the tells (many workers:
        hyper-parameters move little per batch, and a fit costs a few hundred wave asks) after
        n/4 more."""
        big = wave and (n_told > 1000 or self._n_asked - n_told > 1000)
        every = self.opts["refit_every"] or (1 if n_told <= 50 and not big else max(1, n_told // (4 if big else 25)))
        return self._fit_n < 0 or n_told - self._fit_n >= every

    def _gp_model(
        self, X: np.ndarray, y: np.ndarray, n_told: int, n_seen: Optional[int] = None, wave: bool = False
    ) -> Any:
        """The GP conditioned on (X, y), whose first ``n_told`` rows are told trials (the rest
        liars); hyper-parameters refitted when due after ``n_seen`` (default ``n_told``) told trials."""
        if self._gp is None:
            self._gp = GP(X.shape[1], warp=self.opts["output_warp"] == "yeo-johnson")
        gp = self._gp
        n_seen = n_told if n_seen is None else n_seen
        if self._refit_due(n_seen, wave):
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

    def _maximise(self, predict: Any, U_told: np.ndarray, y_told: np.ndarray, taken: list[np.ndarray]) -> np.ndarray:
        """The acquisition's best point (unit cube) that is not among the told or pending ones
        (the features of ``taken``, in blocks: see ``_pick``)."""
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
            proposals.append(self._pick(Cb, sb, taken))
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

    def _pick(self, C: np.ndarray, s: np.ndarray, taken: list[np.ndarray]) -> np.ndarray:
        """Best-scoring candidate whose features differ from every told or pending point (the
        rows of the blocks ``taken``) by more than 1e-9 (L-inf), looked for among the best 50,
        then, nearest-neighbour queries being cheap, among all; a random point when every
        candidate is taken."""
        order = np.argsort(-s, kind="stable")
        taken = [X for X in taken if len(X)]
        if not taken:
            return cast(np.ndarray, C[order[0]])
        F = self.features(C[order[:50]])
        # filter on the first numeric feature (few told points share its value), then compare all
        col = next((t[4] for t in self.features.plan if t[0] == "num" and t[4] is not None), 0)
        for j, f in enumerate(F):
            if all(_far(X, f, col) for X in taken):
                return cast(np.ndarray, C[order[j]])
        from scipy.spatial import cKDTree

        X_all = np.vstack(taken)
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

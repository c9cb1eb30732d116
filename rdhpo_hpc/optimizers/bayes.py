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

*Asynchronous workers.*  Pending trials are added to the surrogate as fake observations at the
``liar`` value (mean / min / max of the observed losses: constant liar, Ginsbourger et al. 2010),
so concurrent asks spread out; a suggestion equal to an observed or pending config is skipped.
FAILED trials (value None) are added at the worst observed loss, so a crashing region is not
suggested again and again; they leave no pending entry.

*Cost bound per ask* (rank 0 stays responsive; no wall-clock budget, so replay is exact):
hyper-parameters are refitted only every ``refit_every`` told trials (auto: every trial up to 50,
then every n/25), with at most 2 L-BFGS-B starts (1 past 100 trials, warm-started) x 30
iterations on at most 250 points; other
asks only re-condition the GP (one Cholesky of n + pending points) and score about
``n_candidates + 650`` candidates, plus at most about 10 x 400 single-point gradient evaluations in
the local searches (typically 10 x 10-15):
O((n + pending)^3 + (n_candidates + 650 + 4000) * n * (n + features)).
Measured on 2 cores: see docs/optimizers.md.

*Determinism.*  All randomness comes from the optimizer's seeded generator, consumed in ask
order, so the same seed and the same ask/tell sequence give the same suggestions.
"""

from __future__ import annotations

import math
from typing import Any, Optional, cast

import numpy as np
from scipy.special import erfcx
from scipy.stats import norm

from ..errors import ConfigError
from ..space import Categorical, Fixed, Float, Int, Space
from .base import Optimizer
from .gp import GP

_CHOICES = {
    "acq": ("ei", "lcb", "hedge"),
    "initial_design": ("lhs", "random"),
    "surrogate": ("gp", "forest", "extra_trees"),
    "backend": ("fast", "skopt"),
    "liar": ("mean", "min", "max"),
}


_SQ2, _SQ_HALF_PI = math.sqrt(2.0), math.sqrt(math.pi / 2.0)
_N_LOCAL = 10  # local searches of the acquisition per ask (GP surrogate)
_N_LOCAL_PENDING = 3  # ... while other suggestions are pending (parallel workers: asks come in
# waves and must stay cheap; the liars spread them out anyway)
_START_SEP = 0.05  # their starts are at least this far apart (L-inf, unit cube)
_LOCAL_ITERS = 200  # L-BFGS-B iterations per local search, at most (and 2x that many evaluations)
_PGTOL = 1e-2  # ... until the projected gradient (length-scale units) is below this

_CONTROLLER: Any = None


def _one_blas_thread() -> Any:
    """Run the linear algebra on one BLAS thread: on a loaded node (workers training on every
    core) multi-threaded OpenBLAS spins and a 500 x 500 Cholesky went from 5 ms to 200 ms."""
    global _CONTROLLER
    if _CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController

            _CONTROLLER = ThreadpoolController()
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            _CONTROLLER = False
    if _CONTROLLER is False:
        import contextlib

        return contextlib.nullcontext()
    return _CONTROLLER.limit(limits=1)


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


def _log_h(z: np.ndarray) -> np.ndarray:
    """log(z * Phi(z) + phi(z)), stable for very negative z (EI = sd * h((best - mu) / sd)).
    Its derivative is Phi(z) / h(z)."""
    out = np.empty_like(z)
    hi = z > -6.0
    zh = z[hi]
    out[hi] = np.log(np.maximum(zh * norm.cdf(zh) + norm.pdf(zh), 1e-300))
    mid = ~hi & (z > -1e3)  # h = phi(z) (1 + z Phi(z) / phi(z)), the Mills ratio via erfcx
    zm = z[mid]
    out[mid] = norm.logpdf(zm) + np.log(1.0 + zm * _SQ_HALF_PI * erfcx(-zm / _SQ2))
    zl = z[z <= -1e3]  # asymptotic: h(z) ~ phi(z) / z^2 * (1 - 3 / z^2)
    out[z <= -1e3] = norm.logpdf(zl) - 2.0 * np.log(-zl) + np.log1p(-3.0 / zl**2)
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
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = self.opts
        for key, allowed in _CHOICES.items():
            if o[key] not in allowed:
                raise ConfigError(f"optimizer 'bayes': option {key!r} must be one of {list(allowed)}, got {o[key]!r}")
        for key, lo in (("n_initial", 1), ("n_candidates", 10), ("refit_every", 1)):
            v = o[key]
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < lo):
                raise ConfigError(f"optimizer 'bayes': option {key!r} must be an integer >= {lo}, got {v!r}")
        for key in ("kappa", "xi"):
            v = o[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"optimizer 'bayes': option {key!r} must be a number >= 0, got {v!r}")
        self.features = Features(self.space)
        self.n_initial = o["n_initial"] if o["n_initial"] is not None else max(10, 2 * self.features.n_search)
        self._design: Optional[np.ndarray] = None
        self._n_asked = 0
        self._gp: Optional[GP] = None
        self._fit_n = -1
        self._gains = np.zeros(3)
        self._prev_props: Optional[np.ndarray] = None
        self._enc: dict[int, np.ndarray] = {}  # encodings of told configs (by trial id)
        if o["backend"] == "skopt":
            self._skopt_dims()  # import (and fail) early, with a clear message

    # -- data ----------------------------------------------------------------------------------
    def _data(self) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
        """(U of told + pending, losses with liars/penalties, number told, U of pending)."""
        finite = [self.loss(v) for _, _, _, v in self.history if v is not None]
        worst = max(finite) if finite else None
        U, y = [], []
        for tid, params, _state, value in self.history:
            if value is not None or worst is not None:  # FAILED: penalised with the worst loss
                u = self._enc.get(tid)
                if u is None:
                    u = self._enc[tid] = self.space.encode(params)
                U.append(u)
                y.append(self.loss(value) if value is not None else worst)
        n_told = len(y)
        Up = [self.space.encode(p) for p in self.pending.values()]
        if Up and finite:
            lie = {"mean": float(np.mean(finite)), "min": min(finite), "max": worst}[self.opts["liar"]]
            U.extend(Up)
            y.extend([lie] * len(Up))
        D = len(self.space.dims)
        return (
            np.array(U, dtype=float).reshape(-1, D),
            np.array(y, dtype=float),
            n_told,
            np.array(Up, dtype=float).reshape(-1, D),
        )

    # -- suggest -------------------------------------------------------------------------------
    def _suggest(self, trial_id: int) -> Optional[dict[str, Any]]:
        with _one_blas_thread():
            return self._suggest_inner()

    def _suggest_inner(self) -> Optional[dict[str, Any]]:
        self._n_asked += 1
        if self._n_asked <= self.n_initial and len(self.history) < self.n_initial:
            return self.space.decode(self._initial_point(self._n_asked - 1))
        n_finite = sum(1 for h in self.history if h[3] is not None)
        if n_finite < 2:
            return self.space.sample(self.rng)
        if self.opts["backend"] == "skopt":
            return self._suggest_skopt()
        U, y, n_told, _ = self._data()
        X = self.features(U)
        if self.opts["surrogate"] == "gp":
            predict = self._gp_model(X, y, n_told)
        else:
            predict = self._tree_model(X, y)
        u = self._maximise(predict, U[:n_told], y[:n_told], X)
        return self.space.decode(u)

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

    def _gp_model(self, X: np.ndarray, y: np.ndarray, n_told: int) -> Any:
        if self._gp is None:
            self._gp = GP(X.shape[1])
        gp = self._gp
        if self._refit_due(n_told):
            gp.fit(X[:n_told], y[:n_told], self.rng, restarts=2 if n_told <= 100 else 1)
            self._fit_n = n_told
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
            return cast(np.ndarray, norm.logcdf(z))
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
            lc = norm.logcdf(z)
            return lc, np.exp(norm.logpdf(z) - lc)[:, None] * dz
        lh = _log_h(z)
        return np.log(sd) + lh, dsd / sd[:, None] + np.exp(norm.logcdf(z) - lh)[:, None] * dz

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

    def _perturb(self, U: np.ndarray, scale: float) -> np.ndarray:
        out = U + self.rng.normal(0.0, scale, U.shape)
        flip = self.rng.random(U.shape) < 0.1  # occasionally re-draw a coordinate (categoricals)
        out[flip] = self.rng.random(int(flip.sum()))
        return np.clip(out, 0.0, 1.0)

    def _pick(self, C: np.ndarray, s: np.ndarray, X_all: np.ndarray) -> np.ndarray:
        """Best-scoring candidate whose features differ from every told or pending point."""
        order = np.argsort(-s, kind="stable")
        F = self.features(C[order[:50]])
        for j, f in enumerate(F):
            if len(X_all) == 0 or np.min(np.abs(X_all - f).max(axis=1)) > 1e-9:
                return cast(np.ndarray, C[order[j]])
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

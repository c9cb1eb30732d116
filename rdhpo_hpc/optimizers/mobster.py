"""MOBSTER's sampler (Klein et al. 2020, "Model-based asynchronous hyperparameter and neural
architecture search"; Syne Tune's ``MOBSTER``): a GP over (config, budget) inside ASHA.

Used by the ``mobster`` strategy (ASHA, either mode); the scheduler passes every rung value to
:meth:`~rdhpo_hpc.optimizers.rungdata.BudgetObservations.observe_budget` as it is recorded.  ``ask``:

1. while fewer than ``min_points`` configurations have a value (default: features + 1, at least 5),
   or with probability ``random_fraction`` (default 0.2, as SMAC3's HPO facade interleaves random
   configurations; BOHB uses 1/3), a random config: a model that has settled on one basin (on
   MNIST-1D, 400 asks in a row inside the one-layer CNNs) still sees the rest of the space;
2. else one Matern-5/2 ARD GP (:mod:`.gp`, the one of ``bayes``) over the features of ``bayes``
   (unit cube, one-hot categoricals, inactive dims of a conditional space at 0.5 / zeros) plus one
   feature for the budget, ``log(b / b_min) / log(b_max / b_min)`` over the budgets seen, fitted to
   *every* rung value of every configuration (``model: joint``, MOBSTER's joint model: low budgets
   inform the high ones), or only to the values at the acquisition budget (``model: rung``);
3. the acquisition budget ``r_acq`` is, once some budget has ``min_points`` values, the largest
   budget any configuration has reached (``acq_budget: top``, the default with ``model: joint``:
   the joint GP's prediction there, so the model looks for configurations good at the end), or the
   largest budget with at least ``min_points`` values (``acq_budget: mobster``, MOBSTER's rule, the
   default with ``model: rung``).  MOBSTER's rule chases what is good after one epoch: on MNIST-1D
   its asks settle in one-layer CNNs that lead after 1 and 3 epochs and level off at 0.87-0.91
   (docs/schedulers.md, "MNIST-1D CNN at 20 full-budget trials").  Pending configurations
   without a value at ``r_acq`` enter as fantasies at the GP's mean (kriging believer), so asks
   made while others run spread out;
4. expected improvement at ``r_acq`` over the best posterior mean of the configurations observed
   there (``top``: of every configuration seen, predicted at ``r_acq``), maximised over
   ``n_candidates`` random points plus Gaussian perturbations of the best five of them; the best
   candidate is decoded through the space.

FAILED trials leave the model; diverged values (non-finite) enter at the worst finite loss; a GP
that cannot be factorised (degenerate data) gives a random config and a warning, never an error.
The GP sees at most ``max_points`` (default 200) values: budgets from the highest down, each whole
while it fits, the one that overflows giving its best half and its most recent half (Syne Tune
caps its data the same way).  Hyper-parameters are refitted when the observations grew by an
eighth since the last fit (one warm-started L-BFGS-B run on at most ``_FIT_POINTS`` points),
otherwise the GP is only re-conditioned: the cost per ask is one Cholesky of at most
``max_points`` + pending rows, O(max_points^3), and a prediction at about ``n_candidates`` + 200
candidates, whatever the length of the study, on one BLAS thread.  Deterministic given (seed, call
sequence): replay rebuilds the same model.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
from scipy.special import ndtr

from ..errors import ConfigError
from ..log import logger
from .bayes import Features
from .blas import one_blas_thread
from .gp import GP
from .rungdata import BudgetObservations

_FIT_POINTS = 150  # hyper-parameter fit on at most this many points (best half + most recent)
_N_PERTURB = 40  # perturbations of each of the best five observations at r_acq


class MobsterSampler(BudgetObservations):
    name = "mobster"
    options: dict[str, Any] = {
        "min_points": None,
        "random_fraction": 0.2,
        "n_candidates": 500,
        "model": "joint",
        "max_points": 200,
        "acq_budget": None,  # top with model joint, mobster with model rung
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = self.opts
        self.features = Features(self.space)
        if o["model"] not in ("joint", "rung"):
            raise ConfigError(f"optimizer 'mobster': 'model' must be 'joint' or 'rung', got {o['model']!r}")
        rf = o["random_fraction"]
        if isinstance(rf, bool) or not isinstance(rf, (int, float)) or not 0 <= rf <= 1:
            raise ConfigError(f"optimizer 'mobster': 'random_fraction' must be a number in [0, 1], got {rf!r}")
        nc = o["n_candidates"]
        if isinstance(nc, bool) or not isinstance(nc, int) or nc < 1:
            raise ConfigError(f"optimizer 'mobster': 'n_candidates' must be an integer >= 1, got {nc!r}")
        if o["acq_budget"] is None:
            o["acq_budget"] = "top" if o["model"] == "joint" else "mobster"
        if o["acq_budget"] not in ("mobster", "top"):
            raise ConfigError(
                f"optimizer 'mobster': 'acq_budget' must be 'mobster', 'top' or null, got {o['acq_budget']!r}"
            )
        if o["acq_budget"] == "top" and o["model"] == "rung":
            raise ConfigError("optimizer 'mobster': 'acq_budget: top' needs 'model: joint'")
        mx = o["max_points"]
        if isinstance(mx, bool) or not isinstance(mx, int) or mx < 10:
            raise ConfigError(f"optimizer 'mobster': 'max_points' must be an integer >= 10, got {mx!r}")
        mp = o["min_points"]
        if mp is None:
            mp = max(5, self.features.cols + 1)
        if isinstance(mp, bool) or not isinstance(mp, int) or mp < 2:
            raise ConfigError(f"optimizer 'mobster': 'min_points' must be an integer >= 2 or null, got {mp!r}")
        self.min_points = mp
        self._feat: dict[int, np.ndarray] = {}  # trial -> its GP features (without the budget)
        self._gp: Optional[GP] = None
        self._n_fit = 0
        self.acq_budget: Optional[float] = None  # the budget the last model-based ask used

    # -- the model -----------------------------------------------------------------------------
    def _suggest(self, trial_id: int) -> Optional[dict[str, Any]]:
        u = self.rng.random()  # always drawn: the RNG stream does not depend on the model's state
        self.acq_budget = None
        configs = {t for obs in self.by_budget.values() for t in obs}
        r_acq = max((b for b, obs in self.by_budget.items() if len(obs) >= self.min_points), default=None)
        if r_acq is not None and self.opts["acq_budget"] == "top":
            r_acq = max(self.by_budget)
        if r_acq is None or len(configs) < self.min_points or u < self.opts["random_fraction"]:
            return self.space.sample(self.rng)
        self.acq_budget = r_acq
        with one_blas_thread():
            try:
                return self._model_suggestion(r_acq)
            except (np.linalg.LinAlgError, ValueError) as exc:  # a degenerate GP: never stop the study
                logger.warning(f"[rdhpo] mobster: the GP failed ({exc}); trial {trial_id} gets a random config")
                self.acq_budget = None
                return self.space.sample(self.rng)

    def _model_suggestion(self, r_acq: float) -> dict[str, Any]:
        X, y, at_acq = self._data(r_acq)
        gp = self._fit(X, y)
        top = self.opts["acq_budget"] == "top"
        if top:  # every configuration seen, predicted at r_acq (few have a value there)
            roots = sorted({t for obs in self.by_budget.values() for t in obs})
            Xa = self._with_budget(np.array([self._features_of(t) for t in roots]), self._budget_feature(r_acq))
        else:
            Xa = X[at_acq]
        fantasies = self._pending_features(r_acq)
        if len(fantasies):
            mu_p, _ = gp.predict(fantasies, std=False)
            gp.condition(np.vstack([X, fantasies]), np.concatenate([y, mu_p * gp.y_std + gp.y_mean]))
        mu_obs, _ = gp.predict(Xa, std=False)
        best = float(np.min(mu_obs))
        if top:
            centres = [self._params_of(roots[i]) for i in np.argsort(mu_obs, kind="stable")[:5]]
        else:
            ranked = sorted(self.by_budget[r_acq].items(), key=lambda kv: (kv[1][1], kv[0]))[:5]
            centres = [params for _, (params, _loss) in ranked]
        U = self._candidates(centres)
        F = self._with_budget(self.features(U), self._budget_feature(r_acq))
        mu, sd = gp.predict(F)
        assert sd is not None
        z = (best - mu) / sd
        ei = sd * (z * ndtr(z) + np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))
        score = ei if float(np.max(ei)) > 1e-12 else -(mu - 2.0 * sd)
        return self.space.decode(U[int(np.argmax(score))])

    def _data(self, r_acq: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features (with the budget column), losses, and the mask of rows at ``r_acq``, on at most
        ``max_points`` rows (:meth:`_rows`)."""
        rows = self._rows(r_acq)
        finite = [loss for _, _, loss in rows if math.isfinite(loss)]
        worst = max(finite) if finite else 1.0
        F = np.array([self._features_of(t) for _, t, _ in rows])
        X = self._with_budget(F, np.array([self._budget_feature(b) for b, _, _ in rows]))
        y = np.array([loss if math.isfinite(loss) else worst for _, _, loss in rows])
        return X, y, np.array([b == r_acq for b, _, _ in rows])

    def _rows(self, r_acq: float) -> list[tuple[float, int, float]]:
        """(budget, trial, loss) rows the GP sees: budgets from the highest down (``model: rung``:
        ``r_acq`` only), each taken whole while it fits in ``max_points``; the budget that
        overflows gives its best half and its most recent half of what is left (deterministic)."""
        left, out = int(self.opts["max_points"]), []
        for b in sorted(self.by_budget, reverse=True):
            if left <= 0 or (self.opts["model"] == "rung" and b != r_acq):
                continue
            obs = sorted(self.by_budget[b].items())  # by trial id: creation order
            if len(obs) > left:
                best = sorted(range(len(obs)), key=lambda i: (obs[i][1][1], i))[: left // 2]
                keep = set(best)
                for i in range(len(obs) - 1, -1, -1):
                    if len(keep) >= left:
                        break
                    keep.add(i)
                obs = [obs[i] for i in sorted(keep)]
            out += [(b, t, loss) for t, (_, loss) in obs]
            left -= len(obs)
        return out

    def _params_of(self, trial_id: int) -> dict[str, Any]:
        return self.params_of.get(trial_id) or self.pending[trial_id]

    def _features_of(self, trial_id: int) -> np.ndarray:
        if trial_id not in self._feat:
            self._feat[trial_id] = self.features(self.space.encode(self._params_of(trial_id)))[0]
        return self._feat[trial_id]

    def _budget_feature(self, b: float) -> float:
        lo, hi = min(self.by_budget), max(self.by_budget)
        return 1.0 if hi <= lo else math.log(b / lo) / math.log(hi / lo)

    def _with_budget(self, F: np.ndarray, bf: Any) -> np.ndarray:
        if self.opts["model"] == "rung":
            return F
        col = np.broadcast_to(np.asarray(bf, dtype=float), (len(F),))[:, None]
        return np.hstack([F, col])

    def _fit(self, X: np.ndarray, y: np.ndarray) -> GP:
        if self._gp is None or self._gp.p != X.shape[1]:
            self._gp, self._n_fit = GP(X.shape[1]), 0
        gp = self._gp
        n = sum(len(obs) for obs in self.by_budget.values())  # grows even when the rows are capped
        if self._n_fit == 0 or n - self._n_fit >= max(1, self._n_fit // 8):
            gp.fit(X, y, self.rng, restarts=1 if self._n_fit else 2, maxiter=30, max_fit_points=_FIT_POINTS)
            self._n_fit = n
        else:
            gp.standardise(y, set_stats=True)
        gp.condition(X, y)
        return gp

    def _pending_features(self, r_acq: float) -> np.ndarray:
        seen = self.by_budget.get(r_acq, {})
        todo = [p for t, p in sorted(self.pending.items()) if t not in seen]
        if not todo:
            return np.empty((0, 0))
        U = np.array([self.space.encode(p) for p in todo])
        return self._with_budget(self.features(U), self._budget_feature(r_acq))

    def _candidates(self, centres: list[dict[str, Any]]) -> np.ndarray:
        """``n_candidates`` uniform points plus Gaussian perturbations of each of ``centres``."""
        d = len(self.space.dims)
        U = self.rng.random((int(self.opts["n_candidates"]), d))
        local = []
        for params in centres:
            u0 = self.space.encode(params)
            for scale in (0.03, 0.1):
                local.append(np.clip(u0 + scale * self.rng.standard_normal((_N_PERTURB // 2, d)), 0.0, 1.0))
        return np.vstack([U] + local) if local else U

"""BOHB's model-based sampler (Falkner, Klein & Hutter 2018), numpy only.

Used by the ``bohb`` strategy inside the Hyperband scheduler, which passes every rung value to
:meth:`BOHBSampler.observe_budget` as it is recorded.  ``ask``:

1. with probability ``random_fraction`` (default 0.1), or while no budget has
   ``2 * min_points_in_model`` observations (HpBandSter's threshold; default dims + 1), a random
   config (the prior);
2. else, on the *largest* budget with enough observations: sort them by loss (non-finite last);
   the best ``n_good = max(2, ceil(top_n_percent/100 * n))`` form the "good" set and all the others
   the "bad" set — disjoint, as in the paper (the good set keeps at least one point for the bad
   one and holds finite losses only).  Not HpBandSter's ``max(min_points_in_model, ...)`` good
   set: that one holds *half* of the points whenever the model has just moved up to a budget with
   ``2 * min_points_in_model`` values, which in a Hyperband study is most of the time, and a
   density ratio between two halves of the data is close to flat (docs/schedulers.md, "BOHB").
   Fit a product-kernel
   density to each — Gaussian on the [0, 1] encoding of numeric dims (normal-reference bandwidth
   ``1.06 sd n**-0.2``, floored at Optuna's multivariate-TPE bandwidth ``0.2 n**(-1/(d+4))`` and
   at ``min_bandwidth``), Aitchison–Aitken on categorical dims — and mix each with the prior
   (uniform on the encoding) at weight ``prior_weight / (n + prior_weight)``, as TPE does, so the
   ratio cannot blow up far from every observation;
3. draw ``num_samples`` (default 24) candidates from the good density with bandwidths times
   ``bandwidth_factor`` (default 1: the density itself) and return the one with the largest
   ``l(x) / g(x)`` — the TPE acquisition.

The paper's defaults (``random_fraction 1/3``, ``num_samples 64``, ``bandwidth_factor 3``, no prior
mixture, no bandwidth floor) remain available as options; on our benches they wasted most
candidates on points far from every observation (docs/schedulers.md, "BOHB").

Conditional spaces: a candidate is decoded through the space, so only its active branch is kept;
in the densities, a dimension inactive in an observation contributes a flat factor (1).
Deterministic given (seed, call sequence): replay rebuilds the same model.
"""

from __future__ import annotations

import math
from typing import Any, Optional, cast

import numpy as np

from .. import validate
from ..space.params import Categorical, Fixed
from .rungdata import BudgetObservations


_MIN_GOOD = 2  # the good set's smallest size: TPE's l(x) needs no more, its prior mixture keeps it sane


class BOHBSampler(BudgetObservations):
    name = "bohb"
    snapshot_every, ask_state = 10, ("model_budget",)  # asks: a density fit over the observations
    options: dict[str, Any] = {
        "top_n_percent": 15,
        "num_samples": 24,
        "random_fraction": 0.1,
        "bandwidth_factor": 1.0,
        "min_bandwidth": 1e-3,
        "min_points_in_model": None,
        "prior_weight": 1.0,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = self.opts
        _check(o["top_n_percent"], "top_n_percent", 1, 99)
        _check(o["num_samples"], "num_samples", 1, 1e6, integer=True)
        _check(o["random_fraction"], "random_fraction", 0, 1)
        _check(o["bandwidth_factor"], "bandwidth_factor", 1e-9, 1e6)
        _check(o["min_bandwidth"], "min_bandwidth", 1e-12, 1)
        _check(o["prior_weight"], "prior_weight", 0, 1e6)
        self.dims = [d for d in self.space.dims if not isinstance(d.param, Fixed)]
        self.is_cat = np.array([isinstance(d.param, Categorical) for d in self.dims], dtype=bool)
        self.n_cat = np.array([len(d.param.choices) if isinstance(d.param, Categorical) else 0 for d in self.dims])
        n_min = o["min_points_in_model"]
        if n_min is None:
            n_min = len(self.dims) + 1
        self.n_min = int(_check(n_min, "min_points_in_model", 1, 1e6, integer=True))
        self.model_budget: Optional[float] = None  # budget the last model-based ask used
        self._enc: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # trial -> (vector, active mask)

    # -- the model -----------------------------------------------------------------------------
    def _suggest(self, trial_id: int) -> Optional[dict[str, Any]]:
        u = self.rng.random()  # always drawn: the RNG stream does not depend on the model's state
        budget = self._model_budget()
        self.model_budget = None
        if budget is None or u < self.opts["random_fraction"]:
            return self.space.sample(self.rng)
        self.model_budget = budget
        good, bad = self._split(budget)
        gx, ga = np.array([o[0] for o in good]), np.array([o[1] for o in good])
        bx, ba = np.array([o[0] for o in bad]), np.array([o[1] for o in bad])
        g_bw, b_bw = self._bandwidths(gx, ga), self._bandwidths(bx, ba)
        cands = self._sample_candidates(gx, ga, g_bw * self.opts["bandwidth_factor"])
        score = self._log_density(cands, gx, ga, g_bw) - self._log_density(cands, bx, ba, b_bw)
        best = cands[int(np.argmax(score))]
        return self._decode(best)

    def _split(self, budget: float) -> tuple[list[Any], list[Any]]:
        """(good, bad) observations at ``budget``: disjoint, the good ones finite, bad non-empty."""
        obs = sorted(
            (self._encoded(t, p) + (loss,) for t, (p, loss) in sorted(self.by_budget[budget].items())),
            key=lambda o: o[2],  # non-finite last; ties: older trial first
        )
        n = len(obs)
        n_finite = sum(1 for o in obs if math.isfinite(o[2]))
        n_good = min(max(_MIN_GOOD, math.ceil(self.opts["top_n_percent"] * n / 100 - 1e-9)), max(1, n_finite), n - 1)
        return obs[:n_good], obs[n_good:]  # disjoint, as in the paper; the bad set is all the rest

    def _model_budget(self) -> Optional[float]:
        """The largest budget with ``2 * n_min`` observations (HpBandSter's threshold; ``n_min`` =
        dims + 1 by default): the bad density then holds well over ``n_min`` points."""
        enough = [b for b, obs in self.by_budget.items() if len(obs) >= 2 * self.n_min]
        return max(enough) if enough else None

    def _bandwidths(self, x: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Normal-reference bandwidth per dim (categoricals: Aitchison-Aitken lambda)."""
        n = max(len(x), 1)
        bw = np.empty(len(self.dims))
        for j in range(len(self.dims)):
            col = x[active[:, j], j] if active[:, j].any() else np.array([0.5])
            sd = float(np.std(col)) if len(col) > 1 else 0.5
            bw[j] = 1.06 * sd * n ** (-0.2)
        # floor: Optuna's multivariate TPE bandwidth 0.2 * n**(-1/(d+4)) of the [0, 1] range, so a
        # few clustered good points do not give a needle-thin density
        bw = np.maximum(bw, 0.2 * n ** (-1.0 / (len(self.dims) + 4)))
        bw = np.maximum(bw, self.opts["min_bandwidth"])
        cat_max = np.where(self.is_cat, (self.n_cat - 1) / np.maximum(self.n_cat, 1), np.inf)
        return cast(np.ndarray, np.minimum(bw, cat_max))

    def _sample_candidates(self, gx: np.ndarray, ga: np.ndarray, bw: np.ndarray) -> np.ndarray:
        k = int(self.opts["num_samples"])
        centres = self.rng.integers(len(gx), size=k)
        out = np.empty((k, len(self.dims)))
        for i, c in enumerate(centres):
            for j in range(len(self.dims)):
                mu = gx[c, j] if ga[c, j] else self.rng.random()
                if self.is_cat[j]:
                    K = int(self.n_cat[j])
                    lam = min(bw[j], (K - 1) / K)
                    idx = int(mu * K) if ga[c, j] else int(self.rng.integers(K))
                    if K > 1 and self.rng.random() < lam:
                        idx = int(self.rng.choice([i2 for i2 in range(K) if i2 != idx]))
                    out[i, j] = (min(idx, K - 1) + 0.5) / K
                else:
                    out[i, j] = _truncnorm(self.rng, mu, bw[j])
        return out

    def _log_density(self, cands: np.ndarray, x: np.ndarray, active: np.ndarray, bw: np.ndarray) -> np.ndarray:
        """log of the mean product kernel over the observations, for each candidate."""
        c_active = np.array([self._encode(self._decode(c))[1] for c in cands])
        logk = np.zeros((len(cands), len(x)))
        for j in range(len(self.dims)):
            both = c_active[:, j][:, None] & active[:, j][None, :]
            if self.is_cat[j]:
                K = int(self.n_cat[j])
                ci = np.floor(cands[:, j] * K).clip(0, K - 1)[:, None]
                oi = np.floor(x[:, j] * K).clip(0, K - 1)[None, :]
                lam = bw[j]
                kern = np.where(ci == oi, 1 - lam, lam / max(K - 1, 1))
                kern = np.log(np.maximum(kern, 1e-300))
            else:
                z = (cands[:, j][:, None] - x[:, j][None, :]) / bw[j]
                kern = -0.5 * z**2 - math.log(bw[j] * math.sqrt(2 * math.pi))
            logk += np.where(both, kern, 0.0)
        m = logk.max(axis=1, keepdims=True)
        out: np.ndarray = (m + np.log(np.exp(logk - m).mean(axis=1, keepdims=True)))[:, 0]
        w = float(self.opts["prior_weight"])
        if w > 0:  # mix in the prior (uniform on the encoding) with weight w / (n + w), as TPE does
            logp = -((c_active & self.is_cat[None, :]).astype(float) @ np.log(np.maximum(self.n_cat, 1)))
            n = len(x)
            out = np.logaddexp(out + math.log(n / (n + w)), logp + math.log(w / (n + w)))
        return out

    # -- encoding ------------------------------------------------------------------------------
    def _encoded(self, trial_id: int, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        if trial_id not in self._enc:
            self._enc[trial_id] = self._encode(params)
        return self._enc[trial_id]

    def _encode(self, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        active_keys = {d.key for d in self.space.active_dims(params)}
        x = np.array([d.param.encode(params[d.name]) if d.key in active_keys else 0.5 for d in self.dims])
        return x, np.array([d.key in active_keys for d in self.dims], dtype=bool)

    def _decode(self, vec: np.ndarray) -> dict[str, Any]:
        full = np.full(len(self.space.dims), 0.5)
        pos = {d.key: i for i, d in enumerate(self.space.dims)}
        for j, d in enumerate(self.dims):
            full[pos[d.key]] = vec[j]
        return self.space.decode(full)


def _truncnorm(rng: np.random.Generator, mu: float, sd: float) -> float:
    """A draw from N(mu, sd) truncated to [0, 1] (rejection, then clipping)."""
    for _ in range(20):
        v = rng.normal(mu, sd)
        if 0.0 <= v <= 1.0:
            return float(v)
    return float(min(max(mu, 0.0), 1.0))


def _check(v: Any, key: str, lo: float, hi: float, integer: bool = False) -> float:
    what = f"optimizer 'bohb': '{key}'"
    return float(validate.integer(v, what, lo, hi, whole_floats=True)) if integer else validate.number(v, what, lo, hi)

"""The output warp of the ``bayes`` GP (gp.fit_warp / apply_warp, GP.standardise)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import yeojohnson, yeojohnson_normmax

from rdhpo_hpc.errors import ConfigError
from rdhpo_hpc.optimizers import make_optimizer
from rdhpo_hpc.optimizers.gp import _WARP_MAX, GP, apply_warp, fit_warp
from rdhpo_hpc.space import Float, Space
from rdhpo_hpc.trial import TrialState


@pytest.mark.parametrize("lam", [-2.0, -0.5, 0.0, 0.7, 1.0, 2.0])
def test_warp_is_yeo_johnson_and_strictly_increasing(lam):
    z = np.linspace(-4.0, 6.0, 201)
    w = apply_warp(z, lam)
    assert np.allclose(w, yeojohnson(z, lam))
    assert np.all(np.diff(w) > 0)


def test_heavy_tailed_losses_are_compressed_and_the_best_stays_best():
    y = np.random.default_rng(0).lognormal(0.0, 3.0, 40)  # an ill-conditioned function's losses
    gp = GP(2, warp=True)
    s = gp.standardise(y, set_stats=True)
    assert gp.lam is not None and -_WARP_MAX <= gp.lam < 1.0
    assert np.argmin(s) == np.argmin(y) and np.all(np.argsort(s) == np.argsort(y))
    assert abs(np.mean(s)) < 1e-9 and abs(np.std(s) - 1.0) < 1e-9
    assert gp.to_std(float(np.min(y))) == pytest.approx(float(np.min(s)))
    assert gp.to_std(float(np.mean(y))) < gp.to_std(float(np.max(y)))  # a liar keeps its place
    plain = GP(2).standardise(y, set_stats=True)  # off: standardised only
    assert np.allclose(plain, (y - y.mean()) / y.std())


@pytest.mark.parametrize("sigma", [0.3, 1.0, 3.0])
def test_exponent_is_the_maximum_likelihood_one_within_a_grid_step_clipped(sigma):
    y = np.random.default_rng(1).lognormal(0.0, sigma, 60)
    z = (y - y.mean()) / y.std()
    mle = float(np.clip(yeojohnson_normmax(z), -_WARP_MAX, _WARP_MAX))
    assert fit_warp(z) == pytest.approx(mle, abs=0.026)


@pytest.mark.parametrize("y", [[1.0, 2.0], [3.0, 3.0, 3.0, 3.0], [0.0, np.inf, 1.0]])
def test_no_warp_on_too_few_equal_or_non_finite_targets(y):
    assert fit_warp(np.asarray(y, dtype=float)) is None


def test_option_is_checked_and_both_settings_replay_exactly():
    space = Space(x=Float(-5.0, 5.0), y=Float(-5.0, 5.0))
    with pytest.raises(ConfigError, match="box-cox"):
        make_optimizer("bayes", space, output_warp="box-cox")
    for warp in ("yeo-johnson", "none"):
        runs = []
        for _ in range(2):
            opt = make_optimizer("bayes", space, seed=3, n_initial=4, output_warp=warp, n_candidates=200)
            for t in range(10):
                c = opt.ask(t)
                opt.tell(t, TrialState.COMPLETE, c["x"] ** 2 + 1e4 * c["y"] ** 2)
            runs.append([h[1] for h in opt.history])
        assert runs[0] == runs[1]

"""The MOBSTER sampler's rules (rdhpo_hpc/optimizers/mobster.py) and that its model pays off.

The scheduler-side contract (determinism, replay, FAILED / LOST trials, both modes) runs in
tests/unit/test_scheduler_contract.py under the name ``asha+mobster``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from mf_toy import sequential_study

import rdhpo_hpc as rd
from rdhpo_hpc.errors import ConfigError
from rdhpo_hpc.optimizers.mobster import MobsterSampler
from rdhpo_hpc.schedulers.asha import ASHA
from rdhpo_hpc.strategy import make_strategy
from rdhpo_hpc.trial import TrialState

SPACE2 = rd.Space(x=rd.Float(0.0, 1.0), y=rd.Float(0.0, 1.0))


def quad(p: dict) -> float:
    return (p["x"] - 0.2) ** 2 + (p["y"] - 0.7) ** 2


def test_random_until_min_points_then_the_largest_budget_with_min_points() -> None:
    opt = MobsterSampler(SPACE2, seed=0, random_fraction=0.0, acq_budget="mobster")
    assert opt.min_points == 5  # max(5, features + 1): 2 features + budget
    for tid in range(4):
        opt.observe_budget(tid, 1, quad(opt.ask(tid)))
    opt.ask(4)
    assert opt.acq_budget is None  # 4 configurations: still the random design
    opt.observe_budget(4, 1, quad(opt.pending[4]))
    opt.ask(5)
    assert opt.acq_budget == 1
    for tid in range(4):
        opt.observe_budget(tid, 3, quad(opt.params_of[tid]))
    opt.ask(6)
    assert opt.acq_budget == 1  # 4 values at budget 3 are not enough
    opt.observe_budget(4, 3, 0.5)
    opt.ask(7)
    assert opt.acq_budget == 3  # the largest budget with min_points values


def test_model_suggestions_concentrate_on_the_good_region() -> None:
    opt = MobsterSampler(SPACE2, seed=1, random_fraction=0.0)  # one budget: top and mobster agree
    for tid in range(10):
        opt.observe_budget(tid, 1, quad(opt.ask(tid)))
    dists = []
    for tid in range(10, 25):
        p = opt.ask(tid)
        assert opt.acq_budget == 1
        opt.observe_budget(tid, 1, quad(p))
        dists.append(math.hypot(p["x"] - 0.2, p["y"] - 0.7))
    rand = [math.hypot(*(np.random.default_rng(s).random(2) - (0.2, 0.7))) for s in range(200)]
    assert np.median(dists[-8:]) < 0.25 * np.median(rand), dists


def test_failed_trial_leaves_the_model_and_nan_is_the_worst_value() -> None:
    opt = MobsterSampler(SPACE2, seed=0)
    for tid in range(6):
        opt.ask(tid)
        opt.observe_budget(tid, 1, math.nan if tid == 2 else float(tid))
    assert opt.by_budget[1][2][1] == math.inf
    X, y, at = opt._data(1.0)
    assert y.max() == 5.0 and len(y) == 6 and at.all()  # NaN enters at the worst finite loss
    opt.tell(3, TrialState.FAILED, None)
    assert 3 not in opt.by_budget[1]
    assert 3 not in opt.pending


def test_by_default_one_ask_in_five_after_the_random_design_is_random() -> None:
    opt = MobsterSampler(SPACE2, seed=2)
    for tid in range(5):
        opt.observe_budget(tid, 1, quad(opt.ask(tid)))
    model_asks = 0
    for tid in range(5, 205):
        p = opt.ask(tid)
        model_asks += opt.acq_budget is not None
        opt.observe_budget(tid, 1, quad(p))
    assert 140 <= model_asks <= 180, model_asks  # 200 asks, random with probability 0.2


def test_rung_model_uses_only_the_acquisition_budget() -> None:
    opt = MobsterSampler(SPACE2, seed=0, model="rung")
    for tid in range(6):
        p = opt.ask(tid)
        opt.observe_budget(tid, 1, quad(p))
        opt.observe_budget(tid, 3, quad(p))
    X, y, _ = opt._data(3.0)
    assert X.shape == (6, 2)  # no budget feature, only budget 3's values
    joint = MobsterSampler(SPACE2, seed=0)
    joint.by_budget, joint.params_of = opt.by_budget, opt.params_of
    X, y, at = joint._data(3.0)
    assert X.shape == (12, 3) and at.sum() == 6 and set(X[:, 2]) == {0.0, 1.0}


def test_top_acquisition_budget_is_the_largest_budget_seen() -> None:
    opt = MobsterSampler(SPACE2, seed=0, random_fraction=0.0)
    assert opt.opts["acq_budget"] == "top"  # the default with the joint model
    assert MobsterSampler(SPACE2, model="rung").opts["acq_budget"] == "mobster"
    for tid in range(5):
        opt.observe_budget(tid, 1, quad(opt.ask(tid)))
    opt.observe_budget(0, 3, quad(opt.params_of[0]))
    p = opt.ask(5)
    assert opt.acq_budget == 3  # one value at 3 is enough
    SPACE2.validate(p)
    rule = MobsterSampler(SPACE2, seed=0, random_fraction=0.0, acq_budget="mobster")
    rule.by_budget, rule.params_of = opt.by_budget, opt.params_of
    rule.ask(5)
    assert rule.acq_budget == 1  # MOBSTER's rule: the largest budget with min_points values


def crossing(p: dict, b: float) -> float:
    """Fast learners (x near 0.9) lead at budget 1; slow ones (x near 0.1) end best at budget 9."""
    w = math.log(b) / math.log(9)  # 0 at budget 1, 1 at budget 9
    return (1 - w) * (p["x"] - 0.9) ** 2 + w * (p["x"] - 0.1) ** 2 + 0.1 * (p["y"] - 0.5) ** 2


@pytest.mark.parametrize("rule, side", [("top", "slow"), ("mobster", "fast")])
def test_top_rule_looks_for_what_ends_best_when_the_ranking_crosses_over_budgets(rule: str, side: str) -> None:
    opt = MobsterSampler(SPACE2, seed=3, random_fraction=0.0, acq_budget=rule)
    rng = np.random.default_rng(0)
    for tid in range(20):  # 20 configurations at budget 1, 4 of them carried to 3 and 9
        p = opt.ask(tid)
        opt.observe_budget(tid, 1, crossing(p, 1))
        if tid % 5 == 0:
            for b in (3, 9):
                opt.observe_budget(tid, b, crossing(p, b) + 0.001 * rng.standard_normal())
    xs = []
    for tid in range(20, 30):
        xs.append(opt.ask(tid)["x"])
        opt.tell(tid, TrialState.FAILED, None)  # the ask only: nothing observed
    assert opt.acq_budget == (9 if rule == "top" else 1)
    median = float(np.median(xs))
    assert (median < 0.4) if side == "slow" else (median > 0.6), xs


def test_maximize_direction_turns_values_into_losses() -> None:
    opt = MobsterSampler(SPACE2, direction="maximize", seed=0)
    for tid in range(8):
        opt.observe_budget(tid, 1, -quad(opt.ask(tid)))
    best = min(opt.by_budget[1].values(), key=lambda pl: pl[1])[0]
    assert quad(best) == min(quad(p) for p, _ in opt.by_budget[1].values())


@pytest.mark.parametrize(
    "opts, bad",
    [
        ({"model": "both"}, "'both'"),
        ({"random_fraction": 1.5}, "1.5"),
        ({"n_candidates": 0}, "0"),
        ({"min_points": 1}, "1"),
        ({"min_points": True}, "True"),
        ({"acq_budget": "max"}, "'max'"),
        ({"acq_budget": "top", "model": "rung"}, "joint"),
        ({"acq_budget": 3}, "3"),
    ],
)
def test_bad_options_name_the_value(opts: dict, bad: str) -> None:
    with pytest.raises(ConfigError, match="mobster") as exc:
        MobsterSampler(SPACE2, **opts)
    assert bad in str(exc.value)


def test_strategy_is_asha_with_the_mobster_sampler() -> None:
    o, s = make_strategy("mobster", SPACE2, min_budget=1, max_budget=9, eta=3, n_candidates=50)
    assert isinstance(o, MobsterSampler) and isinstance(s, ASHA) and o.opts["n_candidates"] == 50


def _study(name: str, seed: int, units: int = 120) -> float:
    return sequential_study(name, seed, units)


@pytest.mark.timeout(60)
def test_mobster_beats_random_sampling_in_asha_at_equal_compute() -> None:
    # 120 units = 13 full evaluations; 5 seeds each
    asha = float(np.median([_study("asha", s) for s in range(5)]))
    mobster = float(np.median([_study("mobster", s) for s in range(5)]))
    assert mobster < 0.5 * asha, (mobster, asha)


def test_a_gp_that_cannot_be_factorised_gives_a_random_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from rdhpo_hpc.optimizers import gp

    opt = MobsterSampler(SPACE2, seed=0)
    for tid in range(6):
        opt.observe_budget(tid, 1, quad(opt.ask(tid)))

    def broken(self: object, X: object, y: object) -> None:
        raise np.linalg.LinAlgError("not positive definite")

    monkeypatch.setattr(gp.GP, "condition", broken)
    p = opt.ask(6)
    SPACE2.validate(p)
    assert opt.acq_budget is None and 6 in opt.pending

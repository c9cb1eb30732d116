"""A sequential one-worker multi-fidelity study on a 3-D quadratic with a fidelity bias (budgets
1..9): the toy on which the model-based samplers must beat random sampling (test_bohb, test_mobster)."""

from __future__ import annotations

import math

import rdhpo_hpc as rd
from rdhpo_hpc.strategy import make_strategy
from rdhpo_hpc.trial import TrialState


def toy(p: dict, step: int) -> float:
    """Minimum at (0.3, 0.6, 0.5); low budgets favour small ``a`` (the bias a model must see through)."""
    return (p["a"] - 0.3) ** 2 + (p["b"] - 0.6) ** 2 + (p["c"] - 0.5) ** 2 + 0.3 * (1 - step / 9) * p["a"]


def sequential_study(name: str, seed: int, units: int) -> float:
    """Run strategy ``name`` for ``units`` epochs; returns the best full-budget value."""
    space = rd.Space(a=rd.Float(0.0, 1.0), b=rd.Float(0.0, 1.0), c=rd.Float(0.0, 1.0))
    opt, sched = make_strategy(name, space, seed=seed, min_budget=1, max_budget=9, eta=3)
    spent, tid, best = 0, 0, math.inf
    while spent < units:
        sug = sched.next_trial(opt, tid)
        state, v = TrialState.COMPLETE, math.nan
        for s in range(1, int(sug.budget) + 1):
            v, spent = toy(sug.params, s), spent + 1
            if s == 9:
                best = min(best, v)
            if not sched.on_report(tid, s, v):
                state = TrialState.PRUNED
                break
        opt.tell(tid, state, v)
        sched.on_result(tid, state, v)
        tid += 1
    return best

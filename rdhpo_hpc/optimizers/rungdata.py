"""Rung observations for the model-based samplers that run inside a rung scheduler (BOHB, MOBSTER).

The rung schedulers (:mod:`rdhpo_hpc.schedulers.rungs`) call ``observe_budget(trial_id, budget,
value)`` every time they record a configuration's value at a rung (the top rung included), under
the id of the configuration's first trial, the one this optimizer was asked for.  A subclass reads
:attr:`BudgetObservations.by_budget` in its ``_suggest``.

Rules: a non-finite value is stored as ``inf`` (the worst possible: a diverged configuration is a
bad one); a FAILED trial takes its configuration out of every budget (a crash says nothing about
the config); a value arriving again for the same (trial, budget) replaces the earlier one (a LOST
attempt re-run reports the same steps).  Everything is a pure function of the call sequence, so
replay on ``--resume`` rebuilds the same observations.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from ..trial import TrialState
from .base import Optimizer


class BudgetObservations(Optimizer):
    """Base of the multi-fidelity samplers: keeps ``budget -> {trial_id: (params, loss)}``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: budget -> {trial_id: (params, loss)}; loss = sign * value, inf when not finite
        self.by_budget: dict[float, dict[int, tuple[dict[str, Any], float]]] = {}
        self.params_of: dict[int, dict[str, Any]] = {}

    def ask(self, trial_id: int) -> Optional[dict[str, Any]]:
        params = super().ask(trial_id)
        if params is not None:
            self.params_of[trial_id] = params
        return params

    def enqueued(self, trial_id: int, params: dict[str, Any]) -> None:
        super().enqueued(trial_id, params)
        self.params_of[trial_id] = dict(params)

    def observe_budget(self, trial_id: int, budget: float, value: Optional[float]) -> None:
        """Called by the rung scheduler with a rung value of ``trial_id`` (user's direction)."""
        params = self.params_of.get(trial_id) or self.pending.get(trial_id)
        if params is None:
            return  # not one of ours (a trial of an older study)
        loss = self.loss(value) if value is not None and math.isfinite(value) else math.inf
        self.by_budget.setdefault(float(budget), {})[trial_id] = (params, loss)

    def tell(self, trial_id: int, state: TrialState, value: Optional[float]) -> None:
        super().tell(trial_id, state, value)
        if TrialState(state) == TrialState.FAILED:
            for obs in self.by_budget.values():
                obs.pop(trial_id, None)

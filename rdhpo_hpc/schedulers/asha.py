"""ASHA — asynchronous successive halving (Li et al. 2020), "stop at rung" form.

One bracket.  A trial that reaches rung ``k`` (step ``min_budget * eta**k``) with ``m`` values
recorded at that rung so far (its own included) continues iff its value ranks among the best
``max(1, floor(m / eta))`` of them — the top ``1/eta`` of what the rung has seen, and for the
first ``eta - 1`` arrivals only a new best passes.  The decision is made at once and never revisited:
no trial waits.  Budgets: every trial is started with ``max_budget``; see :mod:`.rungs`.
"""
from __future__ import annotations

from typing import Optional

from .rungs import RungScheduler, TrialRungs


class ASHA(RungScheduler):
    name = "asha"
    options = {"min_budget": 1, "max_budget": 27, "eta": 3}

    def _place(self, trial_id: int) -> tuple[tuple, int]:
        return (0,), 0

    def _judge(self, t: TrialRungs, k: int, trial_id: int) -> Optional[bool]:
        better, m = self.better_than(t, k, trial_id)
        return better < max(1, int(m // self.eta))

"""The search side as the coordinator sees it: optimizer + scheduler, and the tally of what
they were told (counts per state, the best trial).  Pure: no I/O, no clock."""

from __future__ import annotations

import collections
from typing import Any, Optional

from ..trial import Suggestion, TrialState, best_first


class Study:
    def __init__(self, optimizer: Any, scheduler: Any) -> None:
        self.optimizer, self.scheduler = optimizer, scheduler
        self.counts: collections.Counter[str] = collections.Counter()  # per state; LOST per attempt
        self.best: Optional[tuple[tuple[float, float], int]] = None  # (best_first key, trial id)

    @property
    def dispatch_ahead(self) -> bool:
        """The scheduler's declared capability: work may be handed out before it is needed."""
        return bool(getattr(self.scheduler, "dispatch_ahead", False))

    @property
    def prefetch(self) -> bool:
        """The optimizer declares slow asks worth doing ahead (model-based optimizers)."""
        return bool(getattr(self.optimizer, "prefetch", False))

    def suggest(self, trial_id: int) -> Optional[Suggestion]:
        sug: Optional[Suggestion] = self.scheduler.next_trial(self.optimizer, trial_id)
        return sug

    def exhausted(self) -> bool:
        return bool(self.scheduler.exhausted(self.optimizer))

    def report(self, trial_id: int, step: int, value: float) -> bool:
        return bool(self.scheduler.on_report(trial_id, step, value))

    def tell(self, trial_id: int, state: TrialState, value: Optional[float], budget: Any) -> None:
        self.optimizer.tell(trial_id, state, value)
        self.scheduler.on_result(trial_id, state, value)
        self.counts[state.value] += 1
        if value is not None and state == TrialState.COMPLETE:
            key = best_first(budget, self.optimizer.loss(value))  # as result.best_trial
            if self.best is None or key < self.best[0]:
                self.best = (key, trial_id)

    def progress_line(self, elapsed: float, done: int, total: int, running: int, live: int, workers: int) -> str:
        el = int(elapsed)
        c = self.counts
        best = "-" if self.best is None else f"{self.optimizer.sign * self.best[0][1]:.5g} (trial {self.best[1]})"
        return (
            f"[rdhpo {el // 3600:02d}:{el % 3600 // 60:02d}:{el % 60:02d}] "
            f"trials {done}/{total} done, {running} running | complete "
            f"{c['COMPLETE']} pruned {c['PRUNED']} failed {c['FAILED']} "
            f"lost {c['LOST']} | best {best} | workers {live}/{workers} live"
        )

"""Trial and attempt records: pure state kept by the coordinator and written to the store."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any, Optional

from . import validate


class TrialState(str, enum.Enum):
    """Lifecycle of one attempt (and of the trial it belongs to)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"  # objective returned a finite value
    PRUNED = "PRUNED"  # stopped by the scheduler; value = last reported value
    FAILED = "FAILED"  # objective raised / returned NaN / hit the time limit / retries exhausted
    LOST = "LOST"  # the worker running it died or hung; the trial is re-queued

    @property
    def terminal(self) -> bool:
        return self in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED)


def best_first(budget: Any, loss: float) -> tuple[float, float]:
    """Sort key of finished trials, best first: the largest budget (a value at a low fidelity is
    not comparable: promote mode and PBT end trials at several budgets), then the lower loss.
    Used by ``StudyResult.best_trial`` and the coordinator's progress line."""
    numeric = validate.is_real(budget)
    return (-float(budget) if numeric else 0.0, loss)


@dataclass
class Suggestion:
    """What to run next: produced by the optimizer (params) and the scheduler (budget, checkpoint)."""

    params: dict
    budget: Optional[float] = None
    checkpoint_from: Optional[int] = None  # trial id whose checkpoint to start from (PBT, resume)
    info: dict = field(default_factory=dict)  # e.g. {"bracket": 0, "rung": 1, "parent": 7}


@dataclass
class Attempt:
    """One execution of a trial on one worker; identified by (trial_id, attempt)."""

    trial_id: int
    attempt: int
    params: dict
    budget: Optional[float]
    rank: int
    state: TrialState = TrialState.RUNNING
    value: Optional[float] = None
    host: str = ""
    device: str = ""
    start_time: float = math.nan
    end_time: float = math.nan
    error: str = ""
    checkpoint_from: Optional[int] = None
    info: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    def row(self) -> dict:
        """The flat record stored in ``/trials``."""
        return {
            "trial_id": self.trial_id,
            "attempt": self.attempt,
            "params": self.params,
            "budget": self.budget,
            "state": self.state.value,
            "value": self.value,
            "rank": self.rank,
            "host": self.host,
            "device": self.device,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "error": self.error,
            "checkpoint_from": self.checkpoint_from,
            "info": self.info,
            "metrics": self.metrics,
        }


@dataclass
class TrialRecord:
    """A finished trial as the user sees it (``result.trials``)."""

    trial_id: int
    params: dict
    value: Optional[float]
    state: str
    attempt: int = 0
    budget: Optional[float] = None
    rank: int = -1
    duration: float = math.nan
    error: str = ""
    extra: Any = None

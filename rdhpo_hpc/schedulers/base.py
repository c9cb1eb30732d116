"""The scheduler role: decides *how much budget*, continue or stop, and resume-from-checkpoint.

Called only by the coordinator's event loop:

* ``next_trial(optimizer, trial_id)`` when a worker is idle: returns a :class:`Suggestion`
  (params usually from ``optimizer.ask``) or None when nothing should start now;
* ``on_report(trial_id, step, value)`` for every intermediate report: True = continue;
* ``on_result(trial_id, state, value)`` once per trial that reached a terminal state;
* ``next_decision(trial_id)`` when an attempt of the trial is dispatched and after each decision
  a worker waited for: the step from which on its reports matter (see there).
"""

from __future__ import annotations

from typing import Any, Optional

from ..errors import ConfigError
from ..trial import Suggestion, TrialState


class Scheduler:
    """FIFO: every trial runs with the same ``budget`` (None = the objective's own default)."""

    name = "fifo"
    options: dict[str, Any] = {"budget": None}
    #: Capability: ``next_trial`` does not depend on what runs or just ended, so the coordinator
    #: may ask ahead while every worker is busy (prefetch) and hand a worker several attempts at
    #: once (pipelining).  Budget schedulers (ASHA, PBT, ...) decide from the state at dispatch
    #: time and must not.  Declared by each class for itself, never inherited (see below).
    dispatch_ahead: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass changes what ``next_trial`` depends on: it has the capability only if it
        declares it in its own body."""
        super().__init_subclass__(**kwargs)
        cls.dispatch_ahead = bool(cls.__dict__.get("dispatch_ahead", False))

    def __init__(self, direction: str = "minimize", seed: int = 0, **options: Any) -> None:
        unknown = set(options) - set(self.options)
        if unknown:
            raise ConfigError(
                f"scheduler {self.name!r}: unknown option(s) {sorted(unknown)}; allowed: {sorted(self.options)}"
            )
        self.direction = direction
        self.sign = 1.0 if direction == "minimize" else -1.0
        self.seed = int(seed)
        self.opts = {**self.options, **options}

    def next_trial(self, optimizer: Any, trial_id: int) -> Optional[Suggestion]:
        params = optimizer.ask(trial_id)
        return None if params is None else Suggestion(params, budget=self.opts["budget"])

    def on_report(self, trial_id: int, step: int, value: float) -> bool:
        return True

    def on_result(self, trial_id: int, state: TrialState, value: Optional[float]) -> None:
        pass

    def replay_report(self, trial_id: int, step: int, value: float, proceed: bool) -> None:
        """Called by the journal replay (``coordination/replay.py``) instead of ``on_report``
        for a report it answered ``proceed`` then; must leave the state ``on_report`` would.
        Default: ``on_report`` again (it answers as logged: the replay is exact)."""
        self.on_report(trial_id, step, value)

    def next_decision(self, trial_id: int) -> Optional[int]:
        """The smallest report step from which on ``on_report`` of this trial may answer False
        or change the scheduler's state; None: no later report will.  The worker waits for the
        answer at its first report with ``step >=`` it (and sends it again when a route changed);
        its earlier reports travel without waiting and still reach ``on_report``, which must then
        answer True and change nothing that a later decision or suggestion depends on.

        Called by the coordinator when it dispatches an attempt of the trial and after each
        decision a worker waited for.  Default: every report (0) for a subclass that overrides
        ``on_report``, none for FIFO (it never stops a trial)."""
        return None if type(self).on_report is Scheduler.on_report else 0

    def exhausted(self, optimizer: Any) -> bool:
        """True when no trial will ever be started again (the optimizer has run dry)."""
        return bool(optimizer.exhausted)

    def checkpoints_needed(self) -> set[int]:
        """Finished trials whose checkpoints a later trial may still start from (called by rank
        0's checkpoint retention after each tell).  FIFO: none."""
        return set()

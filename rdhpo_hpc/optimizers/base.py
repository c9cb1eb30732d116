"""The optimizer role: decides *which config* to try next (pure ask/tell; no I/O, no MPI).

Called only by the coordinator's event loop (rank 0, or the rank that took over):

* ``ask(trial_id)`` when a worker is idle and the scheduler wants a new trial;
* ``tell(trial_id, state, value)`` once for every trial that reaches a terminal state —
  COMPLETE, PRUNED (value = last reported), FAILED (value None: objective error, or the trial
  was lost on more workers than the retry cap allows).  LOST attempts that are re-queued are
  not told: the trial is still pending.

State is rebuilt on ``--resume`` by replaying the logged ask/tell calls in order with the same
seed, so an optimizer must be deterministic given (seed, call sequence); no pickling.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..errors import ConfigError
from ..space import Space
from ..trial import TrialState


class Optimizer:
    """Base class: keeps pending params and the finished history; subclasses implement ``_suggest``."""

    name = "base"
    #: True for slow (model-based) asks: under the FIFO scheduler the coordinator then asks ahead
    #: while every worker is busy, up to one suggestion per worker, so that a wave of workers
    #: finishing together is not served one ask at a time
    prefetch = False
    #: option name -> default; options not listed here are rejected with a clear message
    options: dict[str, Any] = {}

    def __init__(self, space: Space, direction: str = "minimize", seed: int = 0, **options: Any) -> None:
        if direction not in ("minimize", "maximize"):
            raise ConfigError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
        unknown = set(options) - set(self.options)
        if unknown:
            raise ConfigError(
                f"optimizer {self.name!r}: unknown option(s) {sorted(unknown)}; "
                f"allowed: {sorted(self.options) or 'none'}"
            )
        self.space = space
        self.direction = direction
        self.sign = 1.0 if direction == "minimize" else -1.0
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.opts = {**self.options, **options}
        self.pending: dict[int, dict[str, Any]] = {}
        #: finished trials in tell order: (trial_id, params, state, value)
        self.history: list[tuple[int, dict[str, Any], TrialState, Optional[float]]] = []

    # -- hooks called by the coordinator ------------------------------------------------------
    def ask(self, trial_id: int) -> Optional[dict[str, Any]]:
        """A new config for ``trial_id``, or None when nothing can be suggested now."""
        params = self._suggest(trial_id)
        if params is not None:
            self.pending[trial_id] = params
        return params

    def tell(self, trial_id: int, state: TrialState, value: Optional[float]) -> None:
        """The trial ended; ``value`` is in the user's direction (None when FAILED)."""
        params = self.pending.pop(trial_id, None)
        if params is None:
            return  # not ours (e.g. a replayed trial from an older study), or told twice
        state = TrialState(state)
        if value is not None and not np.isfinite(value):
            state, value = TrialState.FAILED, None
        self.history.append((trial_id, params, state, value))
        self._observe(trial_id, params, state, value)

    @property
    def exhausted(self) -> bool:
        """True when ``ask`` will never return a config again (e.g. the grid is done)."""
        return False

    def wants_pending(self) -> bool:
        return True

    # -- for subclasses ------------------------------------------------------------------------
    def _suggest(self, trial_id: int) -> Optional[dict[str, Any]]:
        raise NotImplementedError

    def _observe(self, trial_id: int, params: dict[str, Any], state: TrialState, value: Optional[float]) -> None:
        """Called after ``tell`` recorded the trial; model-based optimizers update here."""

    def loss(self, value: float) -> float:
        """The value turned into a loss to minimise."""
        return self.sign * float(value)

    def observations(self) -> list[tuple[dict[str, Any], float]]:
        """(params, loss) of every trial with a finite value (COMPLETE and PRUNED)."""
        return [(p, self.loss(v)) for _, p, s, v in self.history if v is not None]

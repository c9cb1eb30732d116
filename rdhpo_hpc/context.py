"""The ``ctx`` object every objective receives: ``objective(config, ctx) -> float``.

Created by the worker for each attempt; the objective calls ``ctx.report`` after every epoch.
:func:`check_objective` checks a user's objective takes ``(config, ctx)`` (``rd.optimize`` and the
config's ``objective.function``, on rank 0 before any work).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .errors import ConfigError, TrialPruned


@dataclass
class TrialContext:
    """What an objective may read and call while it runs one attempt of a trial.

    Attributes
    ----------
    trial_id, attempt: identity of this attempt (a re-run after a lost worker has attempt > 0).
    budget: the resource to spend (epochs by default) or None for "your own default".
    device: torch device string for this worker ("cpu", "cuda:0", ...).
    checkpoint_dir: a directory private to this trial where the objective may save state
        (shared file system on a cluster); None when checkpoints are disabled.
    checkpoint_from: directory of another trial's checkpoint to start from (PBT exploit,
        promotion with resume), or None.
    rank: MPI rank of the worker (0 when serial).
    """

    trial_id: int
    attempt: int
    budget: Optional[float]
    device: str = "cpu"
    checkpoint_dir: Optional[str] = None
    checkpoint_from: Optional[str] = None
    rank: int = 0
    # set by the worker: sends the report, returns the coordinator's decision (False = stop)
    send_report: Optional[Callable[[int, float, dict], bool]] = field(default=None, repr=False)
    last_step: Optional[int] = None
    last_value: Optional[float] = None

    def report(self, step: int, value: float, **metrics: float) -> None:
        """Report the metric after ``step`` (an epoch, by default).

        Sends it to the coordinator.  At a step where the scheduler decides (a rung budget of
        ASHA / SH / Hyperband; every step for a scheduler that may stop at any report) it waits
        (bounded) for the decision; elsewhere it returns at once.  Raises :class:`TrialPruned`
        when the scheduler stops the trial here, or a stop (the study ends, the trial finished
        on another worker) arrived since the last report.
        """
        self.last_step, self.last_value = int(step), float(value)
        if self.send_report is not None and not self.send_report(int(step), float(value), metrics):
            raise TrialPruned(f"trial {self.trial_id} stopped by the scheduler at step {step}")


def check_objective(fn: Any, what: str = "objective") -> None:
    """ConfigError unless ``fn`` can be called as ``fn(config, ctx)``; callables without a readable
    signature (some C functions) pass."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        sig.bind({}, None)
    except TypeError:
        name = getattr(fn, "__name__", type(fn).__name__)
        shown = f"{name}{sig}"
        hint = (
            " (an Optuna-style objective(trial)? Here the objective gets the trial's parameter values as a dict"
            " and a context: def objective(config, ctx): ...; ctx.report(step, value) reports, ctx.budget is"
            " the budget)"
            if len(sig.parameters) == 1
            else ""
        )
        raise ConfigError(
            f"{what} must take two arguments, objective(config, ctx), but {shown} cannot be called that way{hint}"
        ) from None

"""Shared machinery of the multi-fidelity schedulers (SH, Hyperband, ASHA): "stop at rung".

The model
---------
Every trial is started once with ``budget = max_budget`` and reports after every step (epoch).
A trial of bracket ``s`` has the rung ladder ``r_k = min_budget * eta**(s + k)`` for every
``r_k < max_budget``, and ``max_budget`` itself as its top rung.  The first report with
``step >= r_k`` records the trial's value at rung ``k`` (later reports never overwrite it); at
every rung below the top the subclass's rule ``_judge`` says continue / stop / "not known yet".
A stopped trial ends PRUNED with its learning curve up to the rung in ``/reports``; a trial that
passes every rung trains to ``max_budget`` and ends COMPLETE.  Nothing is ever retrained, so no
checkpoint is needed for promotion, and no worker ever waits for a rung or a bracket to fill.

Rules every subclass inherits
-----------------------------
* Decisions are sticky: once a trial passed rung ``k`` ("settled"), it is not judged there again.
  An undecided rung ("not known yet", synchronous SH only) is judged again at each of the trial's
  later reports until it is settled; meanwhile the trial continues (optimistic).  The report that
  reaches ``max_budget`` is never stopped: the compute is spent, the trial completes.
* A trial re-run after its worker was lost reports the same steps again: rung values are kept
  from the first attempt, settled rungs are not judged again.
* A FAILED trial leaves every rung table (it can never be promoted); PRUNED and COMPLETE trials
  stay.  Every trial that ended is remembered, so SH knows how many trials can still reach a rung.
* The value is turned into a loss (``sign * value``); a non-finite value is the worst possible.
* Ties at a rung are broken by trial id (the older trial wins): decisions are deterministic.
* ``next_trial`` changes no state unless it returns a suggestion, so the coordinator's replay
  (next_trial / on_report / on_result in logged order) rebuilds exactly the same tables.
* When the optimizer has ``observe_budget(trial_id, budget, value)`` (the BOHB sampler), every
  rung value — the top rung included — is passed to it as it is recorded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from ..errors import ConfigError
from ..trial import Suggestion, TrialState
from .base import Scheduler

_EPS = 1e-9


def check_budgets(name: str, min_budget: Any, max_budget: Any, eta: Any) -> tuple[float, float, float]:
    """Validate the three shared options; errors quote the bad value."""
    def num(key: str, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"scheduler {name!r}: '{key}' must be a finite number, got {v!r}")
        return float(v)
    lo, hi, e = num("min_budget", min_budget), num("max_budget", max_budget), num("eta", eta)
    if lo <= 0:
        raise ConfigError(f"scheduler {name!r}: 'min_budget' must be > 0, got {min_budget!r}")
    if hi < lo:
        raise ConfigError(f"scheduler {name!r}: 'max_budget' must be >= min_budget ({min_budget!r}), "
                          f"got {max_budget!r}")
    if e <= 1:
        raise ConfigError(f"scheduler {name!r}: 'eta' must be > 1, got {eta!r}")
    return lo, hi, e


def ladder(min_budget: float, max_budget: float, eta: float, start: int = 0) -> list[float]:
    """Rung budgets ``min_budget * eta**(start + k)`` below ``max_budget``, then ``max_budget``."""
    out = []
    k = start
    while min_budget * eta ** k < max_budget * (1 - _EPS):
        out.append(min_budget * eta ** k)
        k += 1
    out.append(max_budget)
    return out


def max_halvings(min_budget: float, max_budget: float, eta: float) -> int:
    """``s_max``: how many times ``min_budget`` can be multiplied by ``eta`` and stay below max."""
    return len(ladder(min_budget, max_budget, eta)) - 1


@dataclass
class TrialRungs:
    """What the scheduler knows about one trial."""

    group: tuple                         # the rung tables it competes in (bracket, instance)
    rungs: list[float]                   # its ladder; the last entry is max_budget
    values: dict[int, float] = field(default_factory=dict)   # rung index -> loss recorded there
    settled: set = field(default_factory=set)                # rung indices passed for good
    stopped: bool = False
    ended: Optional[str] = None          # terminal state once on_result came


class RungScheduler(Scheduler):
    """Base of SH / Hyperband / ASHA: the rung bookkeeping; subclasses give the bracket of a new
    trial (``_place``) and the promotion rule (``_judge``)."""

    name = "rungs"
    options: dict[str, Any] = {"min_budget": 1, "max_budget": 27, "eta": 3}

    def __init__(self, direction: str = "minimize", seed: int = 0, **options: Any) -> None:
        super().__init__(direction=direction, seed=seed, **options)
        self.min_budget, self.max_budget, self.eta = check_budgets(
            self.name, self.opts["min_budget"], self.opts["max_budget"], self.opts["eta"])
        self.trials: dict[int, TrialRungs] = {}
        #: group -> rung index -> {trial_id: loss}
        self.tables: dict[tuple, dict[int, dict[int, float]]] = {}
        self.members: dict[tuple, list[int]] = {}     # group -> trial ids, in creation order
        self._optimizer: Any = None

    # -- hooks ---------------------------------------------------------------------------------
    def next_trial(self, optimizer: Any, trial_id: int) -> Optional[Suggestion]:
        self._optimizer = optimizer
        params = optimizer.ask(trial_id)
        if params is None:
            return None
        group, start = self._place(trial_id)
        rungs = ladder(self.min_budget, self.max_budget, self.eta, start)
        self.trials[trial_id] = TrialRungs(group, rungs)
        self.members.setdefault(group, []).append(trial_id)
        info = {"bracket": group[0], "rungs": [_plain(r) for r in rungs]}
        if len(group) > 1:
            info["instance"] = group[1]
        return Suggestion(params, budget=_plain(self.max_budget), info=info)

    def on_report(self, trial_id: int, step: int, value: float) -> bool:
        t = self.trials.get(trial_id)
        if t is None:
            return True            # not one of ours (a trial from an older study)
        if t.stopped:
            return False
        loss = self.sign * float(value) if value is not None and math.isfinite(value) else math.inf
        table = self.tables.setdefault(t.group, {})
        for k, r in enumerate(t.rungs):
            if step < r - _EPS * max(1.0, r):
                break
            if k not in t.values:
                t.values[k] = loss
                if t.ended != TrialState.FAILED.value:
                    table.setdefault(k, {})[trial_id] = loss
                observe = getattr(self._optimizer, "observe_budget", None)
                if observe is not None:
                    observe(trial_id, _plain(r), value)
        top = len(t.rungs) - 1
        if top in t.values:
            return True            # trained to max_budget: nothing left to save, it completes
        for k in sorted(t.values):
            if k >= top or k in t.settled:
                continue
            verdict = self._judge(t, k, trial_id)
            if verdict is False:
                t.stopped = True
                return False
            if verdict is True:
                t.settled.add(k)
        return True

    def on_result(self, trial_id: int, state: TrialState, value: Optional[float]) -> None:
        t = self.trials.get(trial_id)
        if t is None:
            return
        t.ended = TrialState(state).value
        if t.ended == TrialState.FAILED.value:
            for rung in self.tables.get(t.group, {}).values():
                rung.pop(trial_id, None)

    # -- for subclasses ------------------------------------------------------------------------
    def _place(self, trial_id: int) -> tuple[tuple, int]:
        """(group, first rung exponent) of a new trial; may update placement counters."""
        raise NotImplementedError

    def _judge(self, t: TrialRungs, k: int, trial_id: int) -> Optional[bool]:
        """At rung ``k``: True = passes (settled), False = stop now, None = not known yet."""
        raise NotImplementedError

    # -- helpers -------------------------------------------------------------------------------
    def better_than(self, t: TrialRungs, k: int, trial_id: int) -> tuple[int, int]:
        """(how many recorded values at rung k beat this trial, how many are recorded)."""
        rung = self.tables.get(t.group, {}).get(k, {})
        me = (t.values[k], trial_id)
        return sum(1 for tid, v in rung.items() if (v, tid) < me), len(rung)

    def state(self) -> dict:
        """A plain snapshot of the tables (tests compare two schedulers with it)."""
        return {"tables": {str(g): {k: dict(sorted(v.items())) for k, v in rungs.items()}
                           for g, rungs in sorted(self.tables.items())},
                "stopped": sorted(tid for tid, t in self.trials.items() if t.stopped)}


def _plain(x: float) -> Any:
    """Whole numbers as int (epochs), others as float: readable in /trials and YAML."""
    return int(round(x)) if abs(x - round(x)) < 1e-9 else float(x)

"""Shared machinery of the multi-fidelity schedulers (SH, Hyperband, ASHA): two modes.

A configuration of bracket ``s`` has the rung ladder ``r_k = min_budget * eta**(s + k)`` for every
``r_k < max_budget``, and ``max_budget`` itself as its top rung.  Its value at rung ``k`` is recorded
once (stop: the first report with ``step >= r_k``; promote: the result of its trial at ``r_k``);
the subclass's rule ``_judge`` says, at every rung below the top, pass / never / "not known
yet".  Option ``mode`` picks how a configuration climbs the ladder:

``mode: stop`` (default) — one trial per configuration, started with ``budget = max_budget``.
  It is judged when it reports at a rung: it continues (passed) or is stopped there and ends PRUNED
  with its learning curve in ``/reports``; a trial that passes every rung ends COMPLETE.  Nothing
  is retrained, no checkpoint is needed, no worker ever waits.  An undecided rung (synchronous SH
  only) is judged again at each later report until it is settled; meanwhile the trial continues.

``mode: promote`` — the form of the papers (Li et al. 2018, 2020): one trial per rung.  A new
  configuration's first trial has ``budget = r_0``; when it ends COMPLETE, the value it returned is
  the configuration's value at rung 0 (reports are not judged: any budget works, epochs or a
  fraction of the data) and the configuration *waits* there.  When a worker asks for work, the scheduler first
  promotes a waiting configuration that passes its rung — highest rung budget first, best value first: a
  new trial with the same params, ``budget = r_{k+1}``, ``checkpoint_from`` = its previous trial
  (the objective resumes from that checkpoint, as the built-in one does; an objective without
  checkpoints retrains from scratch) and ``info`` ``rung`` / ``config`` (the id of its first
  trial) / ``promoted_from``; otherwise it starts a new configuration.  Early trials cannot pass a
  rung on their own (ASHA promotes the best ``floor(m / eta)`` of the ``m`` values a rung has seen),
  so far less compute goes to configurations that only look good because they came first.  A
  configuration never promoted keeps its last trial COMPLETE at a budget below ``max_budget``;
  ``max_trials`` counts trials, i.e. rungs run.

Rules every subclass inherits
-----------------------------
* Decisions are sticky: once a configuration passed rung ``k`` ("settled"), it is not judged
  there again.  The report that reaches ``max_budget`` is never stopped: the compute is spent.
* A trial re-run after its worker was lost reports the same steps again: rung values are kept
  from the first attempt, settled rungs are not judged again.
* A FAILED trial takes its configuration out of every rung table (it can never be promoted);
  PRUNED and COMPLETE ones stay.  Every configuration is remembered, so SH knows how many can
  still reach a rung.
* The value is turned into a loss (``sign * value``); a non-finite value is the worst possible.
* Ties at a rung are broken by configuration id (the older one wins): decisions are deterministic.
* ``next_trial`` changes no state that matters unless it returns a suggestion (it may mark
  configurations that can never be promoted, which any later call would mark the same way), so
  the coordinator's replay (next_trial / on_report / on_result in logged order) rebuilds exactly
  the same tables.
* When the optimizer has ``observe_budget(trial_id, budget, value)`` (the BOHB and MOBSTER
  samplers, :mod:`rdhpo_hpc.optimizers.rungdata`), every
  rung value — the top rung included — is passed to it as it is recorded, under the id of the
  configuration's first trial (the one the optimizer was asked for).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Optional, cast

from .. import validate
from ..errors import ConfigError
from ..trial import Suggestion, TrialState
from .base import Scheduler
from .ranking import Ranking

_EPS = 1e-9
_FAILED, _COMPLETE = TrialState.FAILED.value, TrialState.COMPLETE.value


def check_budgets(name: str, min_budget: Any, max_budget: Any, eta: Any) -> tuple[float, float, float]:
    """Validate the three shared options; errors quote the bad value."""

    def num(key: str, v: Any) -> float:
        return validate.number(v, f"scheduler {name!r}: '{key}'", kind="a finite number")

    lo, hi, e = num("min_budget", min_budget), num("max_budget", max_budget), num("eta", eta)
    if lo <= 0:
        raise ConfigError(f"scheduler {name!r}: 'min_budget' must be > 0, got {min_budget!r}")
    if hi < lo:
        raise ConfigError(
            f"scheduler {name!r}: 'max_budget' must be >= min_budget ({min_budget!r}), got {max_budget!r}"
        )
    if e <= 1:
        raise ConfigError(f"scheduler {name!r}: 'eta' must be > 1, got {eta!r}")
    return lo, hi, e


def ladder(min_budget: float, max_budget: float, eta: float, start: int = 0) -> list[float]:
    """Rung budgets ``min_budget * eta**(start + k)`` below ``max_budget``, then ``max_budget``."""
    out = []
    k = start
    while min_budget * eta**k < max_budget * (1 - _EPS):
        out.append(min_budget * eta**k)
        k += 1
    out.append(max_budget)
    return out


@dataclass(frozen=True)
class Ladder:
    """A rung ladder with what each report needs of it, computed once per start rung and shared
    by every configuration that climbs it."""

    rungs: tuple[float, ...]
    reach: tuple[float, ...]  # a step reaches rung k when step >= reach[k] (budgets are floats)
    plain: tuple[Any, ...]  # the rungs as written to /trials (_plain)


@functools.lru_cache(maxsize=256)
def shared_ladder(min_budget: float, max_budget: float, eta: float, start: int) -> Ladder:
    """:func:`ladder` as a :class:`Ladder` (cached: one per scheduler and bracket)."""
    rungs = tuple(ladder(min_budget, max_budget, eta, start))
    return Ladder(rungs, tuple(r - _EPS * max(1.0, r) for r in rungs), tuple(_plain(r) for r in rungs))


def max_halvings(min_budget: float, max_budget: float, eta: float) -> int:
    """``s_max``: how many times ``min_budget`` can be multiplied by ``eta`` and stay below max."""
    return len(ladder(min_budget, max_budget, eta)) - 1


@dataclass
class TrialRungs:
    """What the scheduler knows about one configuration (stop mode: its only trial; promote mode:
    the chain of trials that trained it rung by rung)."""

    group: tuple[int, ...]  # the rung tables it competes in (bracket, instance)
    ladder: Ladder  # its rungs; the last one is max_budget
    root: int = -1  # id of its first trial: ties, tables, the optimizer
    params: dict[str, Any] = field(default_factory=dict)
    values: dict[int, float] = field(default_factory=dict)  # rung index -> loss recorded there
    settled: set[int] = field(default_factory=set)  # rung indices passed for good
    stopped: bool = False  # stopped at a rung (stop) / never to be promoted (promote)
    ended: Optional[str] = None  # terminal state of its latest trial
    current: int = -1  # promote: its latest trial
    waiting: Optional[int] = None  # promote: the rung it waits at for promotion

    @property
    def rungs(self) -> tuple[float, ...]:
        return self.ladder.rungs


class RungScheduler(Scheduler):
    """Base of SH / Hyperband / ASHA: the rung bookkeeping; subclasses give the bracket of a new
    configuration (``_place``) and the promotion rule (``_judge``)."""

    name = "rungs"
    options: dict[str, Any] = {"min_budget": 1, "max_budget": 27, "eta": 3, "mode": "stop"}

    def __init__(self, direction: str = "minimize", seed: int = 0, **options: Any) -> None:
        super().__init__(direction=direction, seed=seed, **options)
        self.min_budget, self.max_budget, self.eta = check_budgets(
            self.name, self.opts["min_budget"], self.opts["max_budget"], self.opts["eta"]
        )
        if self.opts["mode"] not in ("stop", "promote"):
            raise ConfigError(f"scheduler {self.name!r}: 'mode' must be 'stop' or 'promote', got {self.opts['mode']!r}")
        self.promote = self.opts["mode"] == "promote"
        self.trials: dict[int, TrialRungs] = {}  # every trial id -> its configuration
        self.configs: dict[int, TrialRungs] = {}  # root trial id -> configuration, in creation order
        self.rung_of: dict[int, int] = {}  # promote: trial id -> the rung it trains to
        #: group -> rung index -> {root: loss}
        self.tables: dict[tuple[int, ...], dict[int, dict[int, float]]] = {}
        #: (group, rung index) -> its (loss, root) pairs, sorted: the rung's ranking
        self.ranked: dict[tuple[tuple[int, ...], int], Ranking] = {}
        self.members: dict[tuple[int, ...], list[int]] = {}  # group -> roots, in creation order
        self.waiting: dict[int, TrialRungs] = {}  # promote: root -> configuration waiting at a rung
        self._optimizer: Any = None

    # -- hooks ---------------------------------------------------------------------------------
    def next_trial(self, optimizer: Any, trial_id: int) -> Optional[Suggestion]:
        self._optimizer = optimizer
        if self.promote:
            t = self._promotion()
            if t is not None:
                return self._promote(t, trial_id)
        params = optimizer.ask(trial_id)
        if params is None:
            return None
        group, start = self._place(len(self.configs))
        steps = shared_ladder(self.min_budget, self.max_budget, self.eta, start)
        t = self.trials[trial_id] = self.configs[trial_id] = TrialRungs(
            group, steps, trial_id, params, current=trial_id
        )
        self.members.setdefault(group, []).append(trial_id)
        if not self.promote:
            return Suggestion(params, budget=steps.plain[-1], info=_info(t))
        self.rung_of[trial_id] = 0
        return Suggestion(params, budget=steps.plain[0], info={**_info(t), "rung": 0, "config": t.root})

    def on_report(self, trial_id: int, step: int, value: float) -> bool:
        return self._report(trial_id, step, value, None)

    def replay_report(self, trial_id: int, step: int, value: float, proceed: bool) -> None:
        """The replay's ``on_report``: where the logged answer says every verdict of the report
        (:meth:`_decisive`: always for a "continue", for a "stop" when one rung was undecided),
        it is applied instead of judging again — nothing then reads the rung rankings during the
        replay.  Otherwise the report is judged as it was."""
        self._report(trial_id, step, value, proceed if self._decisive() else None)

    def _report(self, trial_id: int, step: int, value: float, logged: Optional[bool]) -> bool:
        """``on_report``; ``logged``: the answer it gave then (replay), or None: judge."""
        t = self.trials.get(trial_id)
        if t is None:
            return True  # not one of ours (a trial from an older study)
        if self.promote:
            return True  # a trial trains its rung; its result is the rung's value
        if t.stopped:
            return False
        values, settled = t.values, t.settled
        if len(values) < len(t.ladder.reach) and step >= t.ladder.reach[len(values)]:
            self._record(t, step, value)  # it reached a rung it has no value at
        if len(settled) == len(values):
            return True  # every rung reached is passed (the usual report between rungs)
        if len(values) == len(t.ladder.rungs):
            return True  # max_budget reached: nothing left to save, it completes
        # the rungs with a value are 0 .. len - 1 (see _record), all below the top here
        undecided = [k for k in range(len(values)) if k not in settled]
        if logged is False and len(undecided) > 1:
            logged = None  # which rung stopped it: judge again
        for k in undecided:
            verdict = self._judge(t, k) if logged is None else logged
            if verdict is False:
                t.stopped = True
                return False
            if verdict is True:
                settled.add(k)
        return True

    def next_decision(self, trial_id: int) -> Optional[int]:
        """Stop mode: the step of the next rung the configuration has no value at (the top rung
        included: its value goes to the rung table and to a model-based sampler); every report
        (0) while a rung it reached is undecided (SH) or once it was stopped; None when every
        rung has its value, in promote mode (reports are not judged) and for a trial not ours."""
        t = self.trials.get(trial_id)
        if t is None or self.promote or len(t.values) >= len(t.rungs):
            return None
        if t.stopped or len(t.settled) < len(t.values):
            return 0
        r = t.rungs[len(t.values)]  # the rungs with a value are 0 .. len - 1 (see _record)
        return max(0, math.ceil(r - _EPS * max(1.0, r)))  # the first int step that reaches it

    def on_result(self, trial_id: int, state: TrialState, value: Optional[float]) -> None:
        t = self.trials.get(trial_id)
        if t is None or trial_id != t.current:
            return
        t.ended = TrialState(state).value
        if t.ended == _FAILED:
            self.waiting.pop(t.root, None)
            for k, rung in self.tables.get(t.group, {}).items():
                if rung.pop(t.root, None) is not None:
                    self.ranked[(t.group, k)].remove((t.values[k], t.root))
            return
        if self.promote and t.ended == _COMPLETE:
            k = self.rung_of[trial_id]
            self._record(t, t.rungs[k], value)  # what it returned at budget r_k
            if k < len(t.rungs) - 1:
                t.waiting = k
                self.waiting[t.root] = t

    def checkpoints_needed(self) -> set[int]:
        """Promote mode: the latest trial of every configuration below its top rung that may
        still be promoted (ASHA may promote one later, as its rung fills).  Stop mode: none."""
        if not self.promote:
            return set()
        return {
            t.current
            for t in self.configs.values()
            if not t.stopped and t.ended != _FAILED and self.rung_of.get(t.current, 0) < len(t.rungs) - 1
        }

    # -- for subclasses ------------------------------------------------------------------------
    def _place(self, index: int) -> tuple[tuple[int, ...], int]:
        """(group, first rung exponent) of the ``index``-th configuration (0, 1, ...)."""
        raise NotImplementedError

    def _judge(self, t: TrialRungs, k: int) -> Optional[bool]:
        """At rung ``k``: True = passes (settled / promote now), False = stop now / never promote,
        None = not known yet."""
        raise NotImplementedError

    def _decisive(self) -> bool:
        """True when ``_judge`` never answers None in this mode (ASHA's stop mode): a logged
        "continue" then means every rung judged at that report passed."""
        return False

    def _promotion(self) -> Optional[TrialRungs]:
        """Promote mode: the waiting configuration to promote now (highest rung budget first, then
        the best value), or None.  Configurations judged never to pass leave ``waiting``."""
        # every configuration in self.waiting has its rung in t.waiting (not None)
        verdicts = [(t, self._judge(t, cast(int, t.waiting))) for t in list(self.waiting.values())]
        never = [t for t, verdict in verdicts if verdict is False]
        for t in never:  # out first: each "never" frees a place for the others
            t.stopped = True
            del self.waiting[t.root]
        passed = [
            t
            for t, verdict in verdicts  # undecided ones again only if rivals just left
            if verdict or (verdict is None and never and self._judge(t, cast(int, t.waiting)))
        ]
        return min(
            passed, key=lambda t: (-t.rungs[cast(int, t.waiting)], t.values[cast(int, t.waiting)], t.root), default=None
        )

    # -- helpers -------------------------------------------------------------------------------
    def _record(self, t: TrialRungs, step: float, value: Optional[float]) -> None:
        """Record the value of every rung that ``step`` reaches and that has none yet.  Rungs
        are reached in order, so the rungs with a value are always ``0 .. len(t.values) - 1``."""
        loss = self.sign * float(value) if value is not None and math.isfinite(value) else math.inf
        reach = t.ladder.reach
        observe = getattr(self._optimizer, "observe_budget", None)
        for k in range(len(t.values), len(reach)):
            if step < reach[k]:
                break
            t.values[k] = loss
            if t.ended != _FAILED:
                ranking = self.ranked.get((t.group, k))
                if ranking is None:  # the rung's first value
                    ranking = self.ranked[(t.group, k)] = Ranking()
                    self.tables.setdefault(t.group, {})[k] = {}
                self.tables[t.group][k][t.root] = loss
                ranking.add((loss, t.root))
            if observe is not None:
                observe(t.root, t.ladder.plain[k], value)

    def _promote(self, t: TrialRungs, trial_id: int) -> Suggestion:
        """A new trial that trains configuration ``t`` from its waiting rung to the next one."""
        assert t.waiting is not None  # t comes from _promotion: it waits at a rung
        k = t.waiting + 1
        t.settled.add(t.waiting)
        del self.waiting[t.root]
        previous, t.current, t.waiting, t.ended = t.current, trial_id, None, None
        self.trials[trial_id] = t
        self.rung_of[trial_id] = k
        info = {**_info(t), "rung": k, "config": t.root, "promoted_from": previous}
        return Suggestion(dict(t.params), budget=t.ladder.plain[k], checkpoint_from=previous, info=info)

    def can_never_reach(self, x: TrialRungs, k: int) -> bool:
        """True when configuration ``x`` will never have a value at rung ``k``."""
        if x.ended == _FAILED:
            return True
        if k in x.values:
            return False
        return x.stopped or (not self.promote and x.ended is not None)

    def better_than(self, t: TrialRungs, k: int) -> tuple[int, int]:
        """(how many recorded values at rung k beat configuration ``t``'s, how many are recorded)."""
        ranked = self.ranked.get((t.group, k))
        if ranked is None:
            return 0, 0
        return ranked.bisect_left((t.values[k], t.root)), len(ranked)

    def state(self) -> dict[str, Any]:
        """A plain snapshot of the tables (tests compare two schedulers with it)."""
        return {
            "tables": {
                str(g): {k: dict(sorted(v.items())) for k, v in rungs.items()}
                for g, rungs in sorted(self.tables.items())
            },
            "stopped": sorted(r for r, t in self.configs.items() if t.stopped),
            "waiting": sorted(self.waiting),
        }


def _info(t: TrialRungs) -> dict[str, Any]:
    """The ``/trials`` info of a configuration's trials: bracket, ladder, instance (SH, Hyperband)."""
    info = {"bracket": t.group[0], "rungs": list(t.ladder.plain)}
    if len(t.group) > 1:
        info["instance"] = t.group[1]
    return info


def _plain(x: float) -> Any:
    """Whole numbers as int (epochs), others as float: readable in /trials and YAML."""
    return int(round(x)) if abs(x - round(x)) < 1e-9 else float(x)

"""Population based training (Jaderberg et al. 2017), asynchronous (no generation barrier).

A *member* is a chain of trials.  Trial ``g`` of a lineage (generation ``g``) trains up to
``budget = (g + 1) * interval`` epochs, starting from the checkpoint of the lineage's previous
trial (``Suggestion.checkpoint_from``; the built-in objective resumes at that checkpoint's
epoch, so each trial trains ``interval`` new epochs).

* The first ``population`` trials start the members with configs from the optimizer (random).
* When a member's trial ends COMPLETE (or PRUNED with a value), its score is the member's latest
  score.  Until every member is scored (or done) a scored member *waits*: a ranking of the first
  few members to finish would make the early ones donors by chance, and a member that went on
  alone would reach max_budget unjudged while slow-starting ranks still load (seen under
  mpirun).  The trial end that completes the population decides for every waiting member, in
  the order they finished, and for itself.  Then, at each trial end, let
  ``c = max(1, floor(quantile * population))``: a member
  among the ``c`` worst (and not among the ``c`` best) *exploits*: its next trial starts from the
  latest finished trial of a member drawn from the ``c`` best (params copied) and *explores*:
  every mutable active parameter is resampled from its prior with probability ``resample_prob``;
  otherwise a numeric one is multiplied by 0.8 or 1.2 (clipped to its range, rounded to its
  step / to an integer that differs by at least one step) and a categorical one is resampled.
  ``Choice`` parameters that own sub-spaces are never changed: a member mutates within its
  active branch.  Any other member continues its own lineage with unchanged params.
* A FAILED trial: the member exploits a best member when one is scored, else it restarts
  (generation 0) with a fresh config from the optimizer.
* Members become ready in the order their trials end; a worker asks for work with
  ``next_trial`` and gets the oldest ready member, or None when every member is running (at most
  ``population`` trials run at once).  The study ends at ``max_trials`` trials in total, or when
  every member is done: its next trial would exceed ``max_budget`` (when set), also when it would
  exploit a donor already there.
* Lineage goes into ``Suggestion.info`` (the HDF5 ``/trials`` info column): ``member``,
  ``generation``, ``parent_trial`` (the trial whose checkpoint it starts from, or None),
  ``exploited_from`` (the donor member, or None).
* ``mutable``: names of the parameters PBT may change (default: every active one that is not a
  branch-owning ``Choice``); keep architecture parameters out of it when the checkpoint must load.

Deterministic given (seed, call sequence): the replay of a resumed study rebuilds the same
population.  Exploit decisions use the scheduler's own RNG; new configs use the optimizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .. import validate
from ..errors import ConfigError
from ..space.params import Categorical, Fixed, Float, Int
from ..space.space import Choice
from ..trial import Suggestion, TrialState
from .base import Scheduler

PERTURB = (0.8, 1.2)


@dataclass
class Member:
    index: int
    params: dict[str, Any]
    generation: int = 0  # generation of the latest trial started
    running: Optional[int] = None  # trial id running now
    latest: Optional[int] = None  # latest trial of the lineage that ended with a checkpoint
    latest_generation: int = -1
    score: Optional[float] = None  # loss of the latest finished trial
    plan: Optional[tuple[Any, ...]] = None  # ("continue",) | ("exploit", donor) | ("restart",)
    done: bool = False


class PBT(Scheduler):
    name = "pbt"
    options: dict[str, Any] = {
        "population": 8,
        "interval": 2,
        "quantile": 0.25,
        "resample_prob": 0.25,
        "max_budget": None,
        "mutable": None,
    }

    def __init__(self, direction: str = "minimize", seed: int = 0, **options: Any) -> None:
        super().__init__(direction=direction, seed=seed, **options)
        o = self.opts
        self.population = _int(o["population"], "population", 2)
        self.interval = _int(o["interval"], "interval", 1)
        self.quantile = _frac(o["quantile"], "quantile", 0.0, 0.5, lo_open=True)
        self.resample_prob = _frac(o["resample_prob"], "resample_prob", 0.0, 1.0)
        self.max_budget = o["max_budget"]
        if self.max_budget is not None:
            self.max_budget = _int(self.max_budget, "max_budget", self.interval)
        m = o["mutable"]
        if m is not None and (not isinstance(m, (list, tuple)) or not all(isinstance(x, str) for x in m)):
            raise ConfigError(f"scheduler 'pbt': 'mutable' must be a list of parameter names or null, got {m!r}")
        self.mutable = None if m is None else set(m)
        self.rng = np.random.default_rng([self.seed, 0x9B7])
        self.members: list[Member] = []
        self.ready: list[int] = []  # member indices, oldest first
        self.waiting: list[int] = []  # scored before the whole population was: not ready yet
        self.judged = False  # every member has been scored (or is done) once
        self.by_trial: dict[int, tuple[int, int]] = {}  # trial -> (member, generation)

    # -- hooks ---------------------------------------------------------------------------------
    def next_trial(self, optimizer: Any, trial_id: int) -> Optional[Suggestion]:
        if len(self.members) < self.population:
            params = optimizer.ask(trial_id)
            if params is None:
                return None
            m = Member(len(self.members), dict(params))
            self.members.append(m)
            return self._start(m, trial_id, 0, params, None, None)
        if not self.ready:
            return None
        m = self.members[self.ready[0]]
        plan = m.plan or ("continue",)
        if plan[0] == "restart":
            params = optimizer.ask(trial_id)
            self.ready.pop(0)
            if params is None:  # no config left to restart with: the lineage ends
                m.done = True
                self._release()
                return None
            m.params, m.latest, m.latest_generation = dict(params), None, -1
            return self._start(m, trial_id, 0, params, None, None)
        self.ready.pop(0)
        if plan[0] == "exploit":  # the donor's checkpoint as it was when the plan was made
            _, donor, donor_trial, donor_gen, donor_params = plan
            params = self.explore(optimizer.space, donor_params)
            m.params = params
            return self._start(m, trial_id, donor_gen + 1, params, donor_trial, donor)
        return self._start(m, trial_id, m.latest_generation + 1, m.params, m.latest, None)

    def on_report(self, trial_id: int, step: int, value: float) -> bool:
        return True

    def next_decision(self, trial_id: int) -> Optional[int]:
        return None  # reports never stop a member: its trials end at their budget

    def on_result(self, trial_id: int, state: TrialState, value: Optional[float]) -> None:
        if trial_id not in self.by_trial:
            return
        mi, gen = self.by_trial[trial_id]
        m = self.members[mi]
        if m.running != trial_id:
            return
        m.running = None
        state = TrialState(state)
        ok = state in (TrialState.COMPLETE, TrialState.PRUNED) and value is not None and math.isfinite(value)
        if ok:
            assert value is not None  # ok: a finite value
            m.latest, m.latest_generation = trial_id, gen
            m.score = self.sign * float(value)
            if self.judged:
                self._plan(m, self._decide(m))
            else:
                self.waiting.append(mi)  # decided below once the whole population can be ranked
        else:
            m.score = None
            ranked = self._ranked()
            self._plan(m, self._exploit(ranked[int(self.rng.integers(self._cut()))]) if ranked else ("restart",))
        self._release()

    def _release(self) -> None:
        """Once every member has started and is scored or done: decide for the waiting members,
        in the order they finished (once per study; later decisions are made at each trial end)."""
        if self.judged or len(self.members) < self.population:
            return
        if any(x.score is None and not x.done for x in self.members):
            return
        self.judged = True
        for w in self.waiting:
            self._plan(self.members[w], self._decide(self.members[w]))
        self.waiting.clear()

    def _plan(self, m: Member, plan: tuple[Any, ...]) -> None:
        """Give ``m`` its next move: ready in turn, or done when that would pass max_budget."""
        m.plan = plan
        next_gen = (plan[3] if plan[0] == "exploit" else m.latest_generation) + 1
        if self.max_budget is not None and (next_gen + 1) * self.interval > self.max_budget:
            m.done = True  # the lineage reached max_budget
            return
        self.ready.append(m.index)

    def exhausted(self, optimizer: Any) -> bool:
        if len(self.members) < self.population:
            return bool(optimizer.exhausted)
        return all(m.done for m in self.members)

    def checkpoints_needed(self) -> set[int]:
        """Every member's latest trial (it continues from it, or others exploit it) and the
        donor trial of every planned exploit."""
        out = {m.latest for m in self.members if m.latest is not None}
        out.update(m.plan[2] for m in self.members if m.plan and m.plan[0] == "exploit")
        return out

    # -- policy --------------------------------------------------------------------------------
    def _ranked(self) -> list[int]:
        """Scored members, best first (ties: lower member index)."""
        scored = [m for m in self.members if m.score is not None]
        return [m.index for m in sorted(scored, key=lambda m: (m.score, m.index))]

    def _cut(self) -> int:
        return max(1, int(math.floor(self.quantile * len(self._ranked()) + 1e-9)))

    def _decide(self, m: Member) -> tuple[Any, ...]:
        ranked = self._ranked()
        if len(ranked) < self.population:  # judged against the whole population only
            return ("continue",)
        c = self._cut()
        top, bottom = ranked[:c], ranked[-c:]
        if m.index in bottom and m.index not in top:
            return self._exploit(top[int(self.rng.integers(len(top)))])
        return ("continue",)

    def _exploit(self, donor: int) -> tuple[Any, ...]:
        """The plan to copy member ``donor`` as it is now (its later trials do not change it, so
        the max_budget check made with this plan holds when the trial starts)."""
        d = self.members[donor]
        return ("exploit", donor, d.latest, d.latest_generation, dict(d.params))

    def explore(self, space: Any, params: dict[str, Any]) -> dict[str, Any]:
        """Perturb / resample the mutable active parameters of ``params`` (a copy)."""
        out = dict(params)
        for d in space.active_dims(params):
            p = d.param
            if d.name not in out or isinstance(p, Fixed) or isinstance(p, Choice) and p.branches:
                continue
            if self.mutable is not None and d.name not in self.mutable and d.key not in self.mutable:
                continue
            if self.rng.random() < self.resample_prob or isinstance(p, Categorical):
                out[d.name] = p.sample(self.rng)
            elif isinstance(p, (Float, Int)):
                out[d.name] = _perturb(p, out[d.name], PERTURB[int(self.rng.integers(2))])
        return out

    def _start(
        self, m: Member, trial_id: int, gen: int, params: dict[str, Any], parent: Optional[int], donor: Optional[int]
    ) -> Suggestion:
        m.running, m.generation, m.plan = trial_id, gen, None
        self.by_trial[trial_id] = (m.index, gen)
        info = {"member": m.index, "generation": gen, "parent_trial": parent, "exploited_from": donor}
        return Suggestion(dict(params), budget=(gen + 1) * self.interval, checkpoint_from=parent, info=info)


def _perturb(p: Any, value: Any, factor: float) -> Any:
    if isinstance(p, Int):
        x = int(round(value * factor))
        if x == value:
            x = value + (p.step if factor > 1 else -p.step)
        return p.quantise(min(max(x, p.low), p.high))
    return p.quantise(min(max(float(value) * factor, p.low), p.high))


def _int(v: Any, key: str, low: int) -> int:
    return validate.integer(v, f"scheduler 'pbt': '{key}'", low)


def _frac(v: Any, key: str, lo: float, hi: float, lo_open: bool = False) -> float:
    return validate.number(v, f"scheduler 'pbt': '{key}'", lo, hi, lo_open=lo_open)

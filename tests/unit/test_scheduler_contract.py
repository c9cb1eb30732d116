"""Contract suite of the scheduler role, parametrised over every name in schedulers.REGISTRY,
plus the exact rules of ASHA, SH, Hyperband and PBT (the samplers' rules: test_bohb.py, test_mobster.py).

A small pure driver plays the coordinator: it keeps ``workers`` trials running, advances them one
report at a time in a fixed interleaving, and injects FAILED trials and LOST attempts (a LOST
attempt is re-run from step 0 with no scheduler call in between, as the coordinator does).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import pytest

import rdhpo_hpc as rd
from rdhpo_hpc.errors import ConfigError
from rdhpo_hpc.optimizers.bohb import BOHBSampler
from rdhpo_hpc.optimizers.mobster import MobsterSampler
from rdhpo_hpc.optimizers.random import RandomSearch
from rdhpo_hpc.schedulers import REGISTRY
from rdhpo_hpc.schedulers.asha import ASHA
from rdhpo_hpc.schedulers.hyperband import Hyperband
from rdhpo_hpc.schedulers.pbt import PBT
from rdhpo_hpc.schedulers.sh import SuccessiveHalving
from rdhpo_hpc.strategy import _load, make_strategy
from rdhpo_hpc.trial import TrialState

SPACE = rd.Space(
    x=rd.Float(0.0, 1.0),
    n=rd.Int(1, 8),
    act=rd.Categorical(["relu", "tanh"]),
    model=rd.Choice({"a": rd.Space(wa=rd.Float(1e-3, 1.0, log=True)), "b": None}),
)
OPTIONS = {
    "fifo": {"budget": 5},
    "sh": {"min_budget": 1, "max_budget": 9, "eta": 3},
    "hyperband": {"min_budget": 1, "max_budget": 9, "eta": 3},
    "asha": {"min_budget": 1, "max_budget": 9, "eta": 3},
    "pbt": {"population": 4, "interval": 2, "max_budget": 12},
}
RUNG = ["sh", "hyperband", "asha"]
for _n in RUNG:  # the rung schedulers in their second mode: one trial per rung, checkpoint resume
    OPTIONS[f"{_n}:promote"] = {**OPTIONS[_n], "mode": "promote"}
# the model-based strategies: "scheduler+sampler" (their samplers see every rung value)
MODEL = {"hyperband+bohb": OPTIONS["hyperband"], "asha+mobster": OPTIONS["asha"]}
for _n, _o in list(MODEL.items()):
    MODEL[f"{_n}:promote"] = {**_o, "mode": "promote"}
OPTIONS.update(MODEL)
NAMES = sorted(REGISTRY) + [f"{n}:promote" for n in RUNG] + sorted(MODEL)


def test_every_registered_scheduler_has_contract_options() -> None:
    assert set(NAMES) <= set(OPTIONS), f"add options for {set(NAMES) - set(OPTIONS)} to this suite"


def make(name: str, seed: int = 0, optimizer: str = "random") -> tuple[Any, Any]:
    """Scheduler ``name`` (``sched[+sampler][:promote]``) with the sampler of its name, else ``optimizer``."""
    sched_name, _, sampler = name.split(":")[0].partition("+")
    sched = _load(REGISTRY[sched_name])(direction="minimize", seed=seed, **OPTIONS[name])
    opt_cls = {"bohb": BOHBSampler, "mobster": MobsterSampler}.get(sampler or optimizer, RandomSearch)
    return opt_cls(SPACE, direction="minimize", seed=seed), sched


def curve(params: dict, step: int) -> float:
    return (params["x"] - 0.3) ** 2 + 0.05 * params["n"] + 1.0 / step


def drive(
    opt: Any,
    sched: Any,
    n_trials: int = 24,
    workers: int = 3,
    fail: Optional[dict] = None,
    lose: Optional[dict] = None,
    between: Optional[str] = None,
    waited: Optional[list] = None,
) -> list[tuple]:
    """Run a study against the scheduler alone; returns the log of every call and its answer.

    fail: trial -> n-th step of its attempt at which the objective raises (FAILED).  lose: trial ->
    n-th step at which its first attempt is lost (re-run from its start, no scheduler call).
    between: None, or what happens to a report below the trial's decision step (``next_decision``
    asked at each start and after each waited report, as the coordinator does): "report" (passed
    to ``on_report``, which must answer True) or "drop" (lost on its way; answered True);
    ``waited`` collects whether each report was at a decision step."""
    fail, lose = dict(fail or {}), dict(lose or {})
    decide: dict[int, Optional[int]] = {}  # trial -> the step its worker waits at next
    log: list[tuple] = []
    running: dict[int, list] = {}
    reached: dict[int, int] = {}  # trial -> last step it trained to (its checkpoint's epoch)
    next_id = 0

    def finish(tid: int, state: TrialState, value: Optional[float]) -> None:
        opt.tell(tid, state, value)
        sched.on_result(tid, state, value)
        log.append(("result", tid, state.value, value))
        del running[tid]

    while True:
        while len(running) < workers and next_id < n_trials and not sched.exhausted(opt):
            sug = sched.next_trial(opt, next_id)
            log.append(
                (
                    "next",
                    next_id,
                    None if sug is None else (sug.params, sug.budget, sug.checkpoint_from, dict(sug.info)),
                )
            )
            if sug is None:
                break
            start = reached.get(sug.checkpoint_from, 0) if sug.checkpoint_from is not None else 0
            running[next_id] = [sug, start, start]
            if between is not None:
                decide[next_id] = sched.next_decision(next_id)
            next_id += 1
        if not running:
            return log
        tid = min(running, key=lambda t: (running[t][1], t))  # fixed interleaving
        sug, step, start = running[tid]
        step += 1
        budget = sug.budget if sug.budget is not None else 5
        if lose.get(tid) == step - start:
            del lose[tid]
            running[tid][1] = start  # LOST: the attempt is re-run
            log.append(("lost", tid, step))
            if between is not None:
                decide[tid] = sched.next_decision(tid)
            continue
        if fail.get(tid) == step - start:
            finish(tid, TrialState.FAILED, None)
            continue
        running[tid][1] = step
        reached[tid] = step
        value = curve(sug.params, step)
        wait = between is None or (decide[tid] is not None and step >= decide[tid])
        if wait:
            proceed = sched.on_report(tid, step, value)
            if proceed and between is not None:
                decide[tid] = sched.next_decision(tid)
        else:
            proceed = between == "drop" or sched.on_report(tid, step, value)
            assert proceed, f"trial {tid} stopped at step {step}, below its decision step {decide[tid]}"
        if waited is not None:
            waited.append(wait)
        log.append(("report", tid, step, proceed))
        if not proceed:
            finish(tid, TrialState.PRUNED, value)
        elif step >= budget:
            finish(tid, TrialState.COMPLETE, value)


@pytest.mark.parametrize("name", NAMES)
def test_budgets_stay_within_bounds(name: str) -> None:
    opt, sched = make(name)
    log = drive(opt, sched)
    budgets = [e[2][1] for e in log if e[0] == "next" and e[2] is not None]
    assert budgets
    o = OPTIONS[name]
    lo, hi = o.get("min_budget", o.get("interval", o.get("budget"))), o.get("max_budget", o.get("budget"))
    assert all(lo <= b <= hi for b in budgets), budgets
    rungs = [r for e in log if e[0] == "next" and e[2] is not None for r in e[2][3].get("rungs", [])]
    assert all(lo <= r <= hi for r in rungs), rungs
    steps = [e[2] for e in log if e[0] == "report"]
    assert max(steps) <= hi


@pytest.mark.parametrize("name", NAMES)
def test_reports_between_decision_steps_change_nothing(name: str) -> None:
    """Workers wait only at ``next_decision``: a report below it is never stopped, and whether it
    reaches the scheduler or is lost, every decision and suggestion is the one of a study whose
    workers wait at every report."""
    study = {"n_trials": 18, "fail": {4: 2}, "lose": {5: 1, 6: 3}}
    every = drive(*make(name), **study)
    waited: list = []
    assert drive(*make(name), between="report", waited=waited, **study) == every
    assert drive(*make(name), between="drop", **study) == every
    if name in ("sh", "hyperband", "asha") or "+" in name and not name.endswith(":promote"):
        assert 0 < sum(waited) < len(waited)  # stop mode: waits at the rungs only
    else:
        assert not any(waited)  # reports decide nothing (FIFO, PBT, promote mode)


@pytest.mark.parametrize("name", NAMES)
def test_same_calls_give_same_decisions_and_suggestions(name: str) -> None:
    a = drive(*make(name), fail={4: 2}, lose={5: 1})
    b = drive(*make(name), fail={4: 2}, lose={5: 1})
    assert a == b
    assert drive(*make(name, seed=1)) != drive(*make(name, seed=0))  # the seed matters


@pytest.mark.parametrize("name", NAMES)
def test_replay_of_logged_calls_rebuilds_the_state(name: str) -> None:
    """Feed a fresh scheduler only what the coordinator logs (no next_trial that gave None) and
    check every suggestion and decision, then that both continue identically."""
    opt, sched = make(name)
    log = drive(opt, sched, n_trials=14, workers=4, fail={3: 2}, lose={6: 2})
    opt2, sched2 = make(name)
    for e in log:
        if e[0] == "next" and e[2] is not None:
            sug = sched2.next_trial(opt2, e[1])
            assert (sug.params, sug.budget, sug.checkpoint_from, dict(sug.info)) == e[2]
        elif e[0] == "report":
            assert sched2.on_report(e[1], e[2], _value_of(log, e[1], e[2])) == e[3]
        elif e[0] == "result":
            opt2.tell(e[1], TrialState(e[2]), e[3])
            sched2.on_result(e[1], TrialState(e[2]), e[3])
    # both go on the same way after the replayed prefix
    for tid in range(14, 18):
        s1, s2 = sched.next_trial(opt, tid), sched2.next_trial(opt2, tid)
        assert (s1 is None) == (s2 is None)
        if s1 is not None:
            assert (s1.params, s1.budget, s1.checkpoint_from, s1.info) == (
                s2.params,
                s2.budget,
                s2.checkpoint_from,
                s2.info,
            )


def _value_of(log: list, tid: int, step: int) -> float:
    params = next(e[2][0] for e in log if e[0] == "next" and e[1] == tid and e[2] is not None)
    return curve(params, step)


@pytest.mark.parametrize("name", NAMES)
def test_failed_and_lost_trials_do_not_break_bookkeeping(name: str) -> None:
    opt, sched = make(name)
    # promote: a new configuration trains 1 step; a model's configs may be pruned at step 1 (the
    # samplers' own tests check that a FAILED trial leaves their observations)
    late = 1 if name.endswith(":promote") or "+" in name else 2
    log = drive(opt, sched, n_trials=30, workers=4, fail={0: 1, 2: late, 7: late}, lose={1: 2, 4: 2, 9: 1})
    results = {e[1]: e[2] for e in log if e[0] == "result"}
    started = {e[1] for e in log if e[0] == "next" and e[2] is not None}
    assert set(results) == started  # every started trial ended exactly once
    assert sum(1 for e in log if e[0] == "result") == len(started)
    assert results[0] == results[2] == results[7] == "FAILED"
    assert any(s == "COMPLETE" for s in results.values())
    if hasattr(sched, "tables"):  # rung schedulers: failed trials left the tables
        for rungs in sched.tables.values():
            for table in rungs.values():
                assert not {0, 2, 7} & set(table)


@pytest.mark.parametrize("name", RUNG)
def test_pruned_trials_stop_exactly_at_a_rung(name: str) -> None:
    opt, sched = make(name)
    log = drive(opt, sched, n_trials=40, workers=4)
    stops = [e for e in log if e[0] == "report" and not e[3]]
    assert stops, "nothing was pruned"
    if name == "asha":  # ASHA judges only on arrival at a rung (steps 1 and 3)
        assert {e[2] for e in stops} <= {1, 3}
    completes = [e for e in log if e[0] == "result" and e[2] == "COMPLETE"]
    assert completes and all(s <= 9 for _, _, s, _ in stops)


@pytest.mark.parametrize("name", RUNG)
def test_lost_attempt_rerun_is_not_judged_again_at_passed_rungs(name: str) -> None:
    opt, sched = make(name)
    sug = sched.next_trial(opt, 0)
    assert sched.on_report(0, 1, 1.0) and sched.on_report(0, 2, 0.9)
    before = sched.state()
    # the worker died; the re-run reports from step 1 again with different values
    assert sched.on_report(0, 1, 5.0) and sched.on_report(0, 2, 4.0)
    assert sched.state() == before  # first values kept, nothing re-judged
    assert sug.budget == 9


# -- exact rules ------------------------------------------------------------------------------------
def _asha_decisions(values: list[float]) -> list[bool]:
    opt, sched = RandomSearch(SPACE, seed=0), ASHA(min_budget=1, max_budget=9, eta=3)
    out = []
    for tid, v in enumerate(values):
        sched.next_trial(opt, tid)
        out.append(sched.on_report(tid, 1, v))
    return out


def test_asha_rule_top_fraction_of_rung_so_far() -> None:
    # the m-th arrival at rung 0 continues iff its rank among the m values is < max(1, m // 3)
    assert _asha_decisions([5, 4, 6, 3, 7, 1, 3.5]) == [True, True, False, True, False, True, False]
    assert _asha_decisions([5, 4, 6, 3, 7, 1, 2.0]) == [True, True, False, True, False, True, True]


def test_asha_maximize_direction_and_nan_is_worst() -> None:
    opt, sched = RandomSearch(SPACE, seed=0), ASHA(direction="maximize", min_budget=1, max_budget=9, eta=3)
    for tid in range(3):
        sched.next_trial(opt, tid)
    assert sched.on_report(0, 1, 0.5)
    assert sched.on_report(1, 1, 0.9)  # higher is better when maximising
    assert not sched.on_report(2, 1, math.nan)


def test_sh_waits_for_nobody_but_stops_when_q_better_values_are_known() -> None:
    opt = RandomSearch(SPACE, seed=0)
    sh = SuccessiveHalving(min_budget=1, max_budget=9, eta=3, bracket_size=9)  # q at rung 0 = 3
    for tid in range(9):
        sh.next_trial(opt, tid)
    assert sh.on_report(0, 1, 5.0)  # unknown yet: continues optimistically
    for tid, v in ((1, 1.0), (2, 2.0), (3, 3.0)):
        assert sh.on_report(tid, 1, v)
    assert not sh.on_report(0, 2, 4.0)  # now 3 better values are known: stopped at its next report
    assert not sh.on_report(4, 1, 9.0)  # 3 better known on arrival: stopped at the rung
    assert 0 not in sh.trials[1].settled  # 5 members may still beat it
    for tid in (5, 6, 7, 8):  # they fail before rung 0: now trial 1 is certain
        sh.on_result(tid, TrialState.FAILED, None)
    assert sh.on_report(1, 2, 0.9) and 0 in sh.trials[1].settled


def test_sh_passes_when_certain() -> None:
    opt = RandomSearch(SPACE, seed=0)
    sh = SuccessiveHalving(min_budget=1, max_budget=9, eta=3, bracket_size=3)  # q = 1 at rung 0
    for tid in range(3):
        sh.next_trial(opt, tid)
    sh.on_report(0, 1, 1.0)
    sh.on_report(1, 1, 2.0)  # stopped: 1 better known
    assert sh.trials[1].stopped
    sh.on_report(2, 1, 3.0)
    assert sh.trials[2].stopped and 0 not in sh.trials[0].settled
    assert sh.on_report(0, 2, 1.0) and 0 in sh.trials[0].settled  # no rival left
    assert sh.on_report(0, 3, 0.8) and 1 in sh.trials[0].settled  # alone at rung 1 as well


def test_hyperband_brackets_sizes_and_ladders() -> None:
    hb = Hyperband(min_budget=1, max_budget=9, eta=3)
    assert hb.bracket_types == [(0, 9), (1, 5), (2, 3)]  # Li et al. 2018, R = 9, eta = 3
    opt = RandomSearch(SPACE, seed=0)
    infos = [hb.next_trial(opt, t).info for t in range(18)]
    assert [i["bracket"] for i in infos[:17]] == [0] * 9 + [1] * 5 + [2] * 3
    assert infos[17] == {"bracket": 0, "rungs": [1, 3, 9], "instance": 1}
    assert infos[9]["rungs"] == [3, 9] and infos[14]["rungs"] == [9]
    assert Hyperband(min_budget=1, max_budget=9, eta=3, brackets=2).bracket_types == [(0, 9), (1, 5)]
    assert SuccessiveHalving(min_budget=1, max_budget=9, eta=3).bracket_types == [(0, 9)]


@pytest.mark.parametrize(
    "opts, bad",
    [
        ({"min_budget": 0}, "0"),
        ({"max_budget": 0.5}, "0.5"),
        ({"eta": 1}, "1"),
        ({"eta": "3"}, "'3'"),
        ({"mode": "pause"}, "'pause'"),
    ],
)
def test_rung_options_are_checked(opts: dict, bad: str) -> None:
    with pytest.raises(ConfigError, match=bad):
        ASHA(**{"min_budget": 1, "max_budget": 9, "eta": 3, **opts})
    with pytest.raises(ConfigError, match="brackets"):
        Hyperband(min_budget=1, max_budget=9, eta=3, brackets=4)
    with pytest.raises(ConfigError, match="unknown option"):
        make_strategy("asha", SPACE, brackets=2)


# -- promote mode: one trial per rung, promotion later, resume from the previous trial's checkpoint --
def _end(sched: Any, opt: Any, tid: int, budget: float, value: float) -> None:
    """A promote-mode trial trained to its budget: report there, then COMPLETE."""
    assert sched.on_report(tid, budget, value)
    opt.tell(tid, TrialState.COMPLETE, value)
    sched.on_result(tid, TrialState.COMPLETE, value)


@pytest.mark.parametrize("name", RUNG)
def test_promote_mode_trials_train_one_rung_and_resume_the_previous_trial(name: str) -> None:
    opt, sched = make(f"{name}:promote")
    log = drive(opt, sched, n_trials=60, workers=3)
    nexts = {e[1]: e[2] for e in log if e[0] == "next" and e[2] is not None}
    promoted = {t: s for t, s in nexts.items() if s[2] is not None}
    assert promoted, "nothing was promoted"
    assert not [e for e in log if e[0] == "report" and not e[3]]  # nothing is stopped mid-way
    for _tid, (params, budget, ckpt, info) in nexts.items():
        assert budget == info["rungs"][info["rung"]]  # a trial trains one rung
        if ckpt is not None:  # the config's previous trial
            prev = nexts[ckpt]
            assert (
                params == prev[0]
                and info["config"] == prev[3]["config"] == info["promoted_from"]
                or info["promoted_from"] == ckpt
            )
            assert info["rung"] == prev[3]["rung"] + 1 and info["config"] == prev[3]["config"]
    steps = {}
    for e in log:
        if e[0] == "report":
            steps.setdefault(e[1], []).append(e[2])
    for tid, (_, budget, ckpt, _) in nexts.items():  # resumed at the checkpoint's epoch
        start = nexts[ckpt][1] if ckpt is not None else 0
        assert steps[tid] == list(range(start + 1, budget + 1))
    full = {e[1] for e in log if e[0] == "result" and nexts[e[1]][1] == 9}
    assert full, "no configuration reached max_budget"


def test_asha_promote_rule_top_floor_m_over_eta_of_the_rung_highest_rung_first() -> None:
    opt, sched = RandomSearch(SPACE, seed=0), ASHA(min_budget=1, max_budget=9, eta=3, mode="promote")
    budgets = []
    for tid, v in enumerate([5.0, 4.0]):  # m < eta: nothing can be promoted yet
        s = sched.next_trial(opt, tid)
        budgets.append(s.budget)
        _end(sched, opt, tid, 1, v)
    s = sched.next_trial(opt, 2)
    assert budgets == [1, 1] and s.budget == 1 and s.checkpoint_from is None
    _end(sched, opt, 2, 1, 6.0)  # m = 3: the best (trial 1) goes to rung 1 from its checkpoint
    s = sched.next_trial(opt, 3)
    assert (s.budget, s.checkpoint_from, s.info["rung"], s.info["config"]) == (3, 1, 1, 1)
    assert s.params == opt.history[1][1]
    assert sched.next_trial(opt, 4).budget == 1  # trial 1 is running: a new configuration
    _end(sched, opt, 3, 3, 2.0)
    for tid, v in ((4, 7.0), (5, 0.5)):
        if tid == 5:
            assert sched.next_trial(opt, 5).budget == 1
        _end(sched, opt, tid, 1, v)
    # rung 0 has m = 5 values (top 1: config 5); rung 1 has m = 1 (nothing); config 5 goes up
    s = sched.next_trial(opt, 6)
    assert (s.budget, s.checkpoint_from, s.info["config"]) == (3, 5, 5)
    _end(sched, opt, 6, 3, 1.0)
    for tid in (7, 8, 9, 10):  # rung 0 top floor(m/3) = configs 5 and 1 (both promoted) until m = 9
        s = sched.next_trial(opt, tid)
        assert (s.budget, s.checkpoint_from) == (1, None)
        _end(sched, opt, tid, 1, 9.0 + tid)
    # rung 1 holds configs 1 (2.0) and 5 (1.0), m = 2 < 3; rung 0 has 9 values: top 3 = 5, 1, 0
    s = sched.next_trial(opt, 11)
    assert (s.budget, s.checkpoint_from, s.info["config"]) == (3, 0, 0)
    _end(sched, opt, 11, 3, 0.2)  # rung 1: m = 3, best = config 0 -> highest rung first
    s = sched.next_trial(opt, 12)
    assert (s.budget, s.checkpoint_from, s.info["config"], s.info["rung"]) == (9, 11, 0, 2)


def test_sh_promote_mode_is_synchronous_sh_without_waiting() -> None:
    """bracket of 9, eta 3: exactly the best 3 at rung 0 and the best 1 of them at rung 1 go on;
    until a promotion is certain, idle workers start the next bracket instance."""
    opt = RandomSearch(SPACE, seed=0)
    sh = SuccessiveHalving(min_budget=1, max_budget=9, eta=3, bracket_size=9, mode="promote")
    values = [5.0, 1.0, 7.0, 3.0, 8.0, 2.0, 9.0, 6.0, 4.0]
    for tid in range(9):  # nine workers: the whole instance starts at rung 0
        assert sh.next_trial(opt, tid).budget == 1
    for tid, v in enumerate(values[:8]):
        _end(sh, opt, tid, 1, v)
    # 8 of 9 known: 1.0 and 2.0 are certainly in the top 3; 3.0 is not yet (the 9th may beat it)
    got = [sh.next_trial(opt, 9 + i) for i in range(3)]
    assert [(g.checkpoint_from, g.budget) for g in got] == [(1, 3), (5, 3), (None, 1)]
    assert got[2].info["instance"] == 1  # nobody waits: the next instance starts
    _end(sh, opt, 8, 1, 4.0)  # the 9th: now config 3 (3.0) is third
    s = sh.next_trial(opt, 12)
    assert (s.checkpoint_from, s.budget, s.info["config"]) == (3, 3, 3)
    assert sorted(r for r, t in sh.configs.items() if t.stopped and t.group == (0, 0)) == [0, 2, 4, 6, 7, 8]
    for tid, v in ((9, 0.9), (10, 0.5), (12, 0.7)):
        _end(sh, opt, tid, 3, v)
    s = sh.next_trial(opt, 13)
    assert (s.checkpoint_from, s.budget, s.info["config"], s.info["rung"]) == (10, 9, 5, 2)
    assert sh.next_trial(opt, 14).checkpoint_from is None  # nothing else of instance 0 goes on
    assert not [r for r in sh.waiting if sh.configs[r].group == (0, 0)]


def test_promote_mode_failed_config_is_never_promoted_and_bohb_sees_the_first_trial_id() -> None:
    opt, sched = make("asha:promote", optimizer="bohb")
    for tid, v in enumerate([1.0, 2.0, 3.0]):
        sched.next_trial(opt, tid)
        _end(sched, opt, tid, 1, v)
    s = sched.next_trial(opt, 3)
    assert s.checkpoint_from == 0
    sched.on_report(3, 2, 0.9)
    opt.tell(3, TrialState.FAILED, None)
    sched.on_result(3, TrialState.FAILED, None)  # diverged after its promotion
    assert 0 not in sched.tables[(0,)][0] and 0 not in sched.waiting
    assert sched.next_trial(opt, 4).checkpoint_from is None
    assert set(opt.by_budget[1]) == {0, 1, 2}  # keyed by the configuration's first trial


def test_strategies_pair_the_right_parts() -> None:
    o, s = make_strategy("bohb", SPACE, min_budget=1, max_budget=9, eta=3, top_n_percent=20)
    assert isinstance(o, BOHBSampler) and isinstance(s, Hyperband) and o.opts["top_n_percent"] == 20
    o, s = make_strategy("asha", SPACE, max_budget=9)
    assert isinstance(o, RandomSearch) and isinstance(s, ASHA) and s.max_budget == 9
    o, s = make_strategy("pbt", SPACE, population=3)
    assert isinstance(s, PBT) and s.population == 3


# -- PBT ------------------------------------------------------------------------------------------
def test_pbt_lineage_exploit_and_explore() -> None:
    opt, pbt = make("pbt")
    log = drive(opt, pbt, n_trials=30, workers=4)
    infos = {e[1]: e[2] for e in log if e[0] == "next" and e[2] is not None}
    for tid, (params, budget, ckpt, info) in infos.items():
        assert budget == (info["generation"] + 1) * 2
        assert ckpt == info["parent_trial"]
        if info["generation"] == 0:
            assert ckpt is None and tid < 4
        else:
            parent = infos[ckpt][3]
            assert parent["generation"] == info["generation"] - 1
            assert parent["member"] == (
                info["exploited_from"] if info["exploited_from"] is not None else info["member"]
            )
            if info["exploited_from"] is None:
                assert params == infos[ckpt][0]  # own lineage: params unchanged
            else:
                assert params != infos[ckpt][0]  # explored
                assert params["model"] == infos[ckpt][0]["model"]  # within the active branch
                SPACE.validate(params)
    assert any(i[3]["exploited_from"] is not None for i in infos.values())
    assert max(i[1] for i in infos.values()) <= 12


def test_pbt_explore_perturbs_by_factors_within_bounds() -> None:
    pbt = PBT(population=4, interval=1, resample_prob=0.0, mutable=["x", "n"])
    base = {"x": 0.5, "n": 8, "act": "relu", "model": "b"}
    seen_x = set()
    for _ in range(20):
        p = pbt.explore(SPACE, base)
        assert p["act"] == "relu" and p["model"] == "b"  # not mutable here
        assert p["x"] in (pytest.approx(0.4), pytest.approx(0.6)) and p["n"] in (6, 7, 8)
        seen_x.add(round(p["x"], 6))
    assert seen_x == {0.4, 0.6}


def test_pbt_options_are_checked() -> None:
    for bad in ({"population": 1}, {"quantile": 0.9}, {"interval": 0}, {"mutable": "lr"}):
        with pytest.raises(ConfigError, match="pbt"):
            PBT(**bad)


# The BOHB sampler's own rules: tests/unit/test_bohb.py; MOBSTER's: tests/unit/test_mobster.py.

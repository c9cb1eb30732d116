"""The whole loop (coordinator + 4 worker threads, in-process transport) with the multi-fidelity
and PBT strategies and a cheap synthetic objective that reports every epoch."""

from __future__ import annotations

import json
import os
from collections import defaultdict

import pytest

import rdhpo_hpc as rd
from rdhpo_hpc.coordinator import CoordinatorLoop
from rdhpo_hpc.launch import existing_records
from rdhpo_hpc.storage.base import MemoryStore
from rdhpo_hpc.strategy import make_strategy

pytestmark = pytest.mark.timeout(60)

SPACE = rd.Space(x=rd.Float(0.0, 1.0), lr=rd.Float(1e-3, 1.0, log=True))
FAST = dict(workers=4, progress_interval=1000, gossip_interval=0.05, t_fail=5.0)


def curve(config: dict, ctx) -> float:
    """Loss of a fake training run: the config sets the floor, more epochs get closer to it."""
    floor = (config["x"] - 0.3) ** 2
    value = None
    for epoch in range(1, int(ctx.budget) + 1):
        value = floor + 1.0 / epoch
        ctx.report(epoch, value)
    return value


def curves(res) -> dict[int, list[tuple[int, str]]]:
    out = defaultdict(list)
    for r in res.reports:
        out[r["trial_id"]].append((r["step"], r["decision"]))
    return out


@pytest.mark.parametrize("strategy", ["asha", "hyperband", "bohb", "sh", "mobster"])
def test_multifidelity_prunes_at_rungs_and_best_runs_full_budget(strategy: str) -> None:
    res = rd.optimize(
        curve, SPACE, optimizer=strategy, min_budget=1, max_budget=9, eta=3, max_trials=30, seed=0, **FAST
    )
    assert len(res.trials) == 30
    states = {t.trial_id: t.state for t in res.trials}
    pruned = [t for t, s in states.items() if s == "PRUNED"]
    assert pruned and set(states.values()) <= {"PRUNED", "COMPLETE"}
    rep = curves(res)
    for tid in pruned:  # learning curve up to the step where it was stopped
        steps = [s for s, _ in rep[tid]]
        assert steps == list(range(1, len(steps) + 1)) and rep[tid][-1][1] == "stop"
        assert steps[-1] < 9
        if strategy in ("asha", "mobster"):
            assert steps[-1] in (1, 3)  # ASHA stops only at a rung
    best = res.best_trial
    assert best.state == "COMPLETE" and [s for s, _ in rep[best.trial_id]][-1] == 9
    assert all(t.budget == 9 for t in res.trials)
    assert all("rungs" in t.extra["info"] for t in res.trials)
    total_epochs = sum(len(v) for v in rep.values())
    assert total_epochs < 30 * 9  # pruning saved compute


def pbt_objective(config: dict, ctx) -> float:
    """Resumes its 'model' (a number) from ctx.checkpoint_from; checks the epoch it finds there."""
    epoch, w = 0, 0.0
    if ctx.checkpoint_from is not None:
        with open(os.path.join(ctx.checkpoint_from, "state.json")) as fh:
            st = json.load(fh)
        epoch, w = st["epoch"], st["w"]
        if epoch != int(ctx.budget) - 2:
            raise AssertionError(f"checkpoint at epoch {epoch}, budget {ctx.budget}")
    value = None
    for e in range(epoch + 1, int(ctx.budget) + 1):
        w += config["lr"] * (1.0 - w)  # converges faster with a larger lr
        value = (1.0 - w) + (config["x"] - 0.3) ** 2
        with open(os.path.join(ctx.checkpoint_dir, "state.json"), "w") as fh:
            json.dump({"epoch": e, "w": w}, fh)
        ctx.report(e, value)
    return value


def test_pbt_lineage_checkpoints_and_exploit(tmp_path) -> None:
    out = str(tmp_path / "pbt.h5")
    res = rd.optimize(
        pbt_objective, SPACE, optimizer="pbt", population=4, interval=2, max_trials=24, seed=1, output=out, **FAST
    )
    assert {t.state for t in res.trials} == {"COMPLETE"}, [t.error for t in res.trials if t.error]
    infos = {t.trial_id: t.extra["info"] for t in res.trials}
    att = {a["trial_id"]: a for a in res.attempts}
    assert all({"member", "generation", "parent_trial", "exploited_from"} <= set(i) for i in infos.values())
    assert sum(1 for i in infos.values() if i["generation"] == 0) == 4
    later = [t for t, i in infos.items() if i["generation"] > 0]
    assert later and all(att[t]["checkpoint_from"] == infos[t]["parent_trial"] is not None for t in later)
    exploits = [t for t in later if infos[t]["exploited_from"] is not None]
    assert exploits, "no member exploited another"
    for t in exploits:
        parent = infos[t]["parent_trial"]
        assert infos[parent]["member"] == infos[t]["exploited_from"] != infos[t]["member"]
        assert res.trials[t].params != res.trials[parent].params  # explored
    # the same lineage info is in the results file
    again = rd.load_results(out)
    assert {t.trial_id: t.extra["info"] for t in again.trials} == infos


@pytest.mark.parametrize("strategy", ["asha", "pbt"])
def test_replay_of_a_finished_study_gives_the_logged_decisions(tmp_path, strategy: str) -> None:
    out = str(tmp_path / "s.h5")
    opts = dict(min_budget=1, max_budget=9, eta=3) if strategy == "asha" else dict(population=3, interval=2)
    objective = curve if strategy == "asha" else pbt_objective
    rd.optimize(objective, SPACE, optimizer=strategy, max_trials=16, seed=2, output=out, **opts, **FAST)
    records = existing_records(out)
    cfg = rd.api.build_config(objective, SPACE, strategy, 16, "minimize", 2, None, dict(opts))
    optimizer, scheduler = make_strategy(strategy, SPACE, "minimize", 2, **opts)
    decisions, suggestions = [], {}
    real_report, real_next = scheduler.on_report, scheduler.next_trial

    def on_report(tid, step, value):
        decisions.append((tid, step, "continue" if real_report(tid, step, value) else "stop"))
        return decisions[-1][2] == "continue"

    def next_trial(opt, tid):
        suggestions[tid] = real_next(opt, tid)
        return suggestions[tid]

    def judge(tid, step, value, proceed):  # judge every report again (not the logged-answer fast path)
        on_report(tid, step, value)

    scheduler.on_report, scheduler.next_trial, scheduler.replay_report = on_report, next_trial, judge
    loop = CoordinatorLoop(cfg, node=None, store=MemoryStore(), optimizer=optimizer, scheduler=scheduler)
    loop.replay(records)
    logged = [
        (r["trial_id"], r["step"], r["decision"])
        for r in records
        if r.get("k") == "report" and r.get("decision") in ("continue", "stop")
    ]
    assert decisions == logged and any(d == "stop" for *_, d in logged) == (strategy == "asha")
    dispatched = {r["trial_id"]: r for r in records if r.get("k") == "dispatch" and r.get("new")}
    assert set(suggestions) == set(dispatched)
    for tid, r in dispatched.items():
        s = suggestions[tid]
        assert (s.params, s.budget, s.checkpoint_from, s.info) == (
            r["params"],
            r["budget"],
            r["checkpoint_from"],
            r["info"],
        )
    assert not loop.requeue


def resuming_curve(config: dict, ctx) -> float:
    """``curve`` with a checkpoint: resumes at the epoch saved by the trial it was promoted from."""
    start = 0
    if ctx.checkpoint_from is not None:
        with open(os.path.join(ctx.checkpoint_from, "state.json")) as fh:
            start = json.load(fh)["epoch"]
    value = None
    for epoch in range(start + 1, int(ctx.budget) + 1):
        value = (config["x"] - 0.3) ** 2 + 1.0 / epoch
        with open(os.path.join(ctx.checkpoint_dir, "state.json"), "w") as fh:
            json.dump({"epoch": epoch}, fh)
        ctx.report(epoch, value)
    return value


@pytest.mark.parametrize("strategy", ["asha", "hyperband", "bohb"])
def test_promote_mode_resumes_promoted_trials_from_their_checkpoint(tmp_path, strategy: str) -> None:
    out = str(tmp_path / "p.h5")
    res = rd.optimize(
        resuming_curve,
        SPACE,
        optimizer=strategy,
        min_budget=1,
        max_budget=9,
        eta=3,
        mode="promote",
        max_trials=40,
        seed=0,
        output=out,
        **FAST,
    )
    assert len(res.trials) == 40 and {t.state for t in res.trials} == {"COMPLETE"}
    info = {t.trial_id: t.extra["info"] for t in res.trials}
    att = {a["trial_id"]: a for a in res.attempts}
    rep = curves(res)
    promoted = [t for t in info if "promoted_from" in info[t]]
    assert promoted and any(res.trials[t].budget == 9 for t in promoted)
    for t in promoted:
        prev = info[t]["promoted_from"]
        assert att[t]["checkpoint_from"] == prev and res.trials[t].params == res.trials[prev].params
        assert info[t]["config"] == info[prev]["config"] and info[t]["rung"] == info[prev]["rung"] + 1
        # it trained only the epochs its previous trial had not: steps budget(prev)+1 .. budget
        assert [s for s, _ in rep[t]] == list(range(res.trials[prev].budget + 1, res.trials[t].budget + 1))
    best = res.best_trial
    assert best.budget == 9  # the best at the largest budget
    if strategy == "asha":  # (Hyperband's last bracket starts at max_budget)
        assert "promoted_from" in info[best.trial_id]
    epochs = sum(len(v) for v in rep.values())
    assert epochs < 40 * 3  # one rung per trial: far below 40 trials x max_budget
    assert {t.trial_id: t.extra["info"] for t in rd.load_results(out).trials} == info


def test_promote_mode_resume_continues_with_the_same_suggestions(tmp_path) -> None:
    """A study stopped after 20 trials and resumed makes the same suggestions as one run whole."""
    opts = dict(optimizer="asha", min_budget=1, max_budget=9, eta=3, mode="promote", seed=3)
    one = dict(FAST, workers=1)
    whole = rd.optimize(resuming_curve, SPACE, max_trials=30, output=str(tmp_path / "a.h5"), **opts, **one)
    rd.optimize(resuming_curve, SPACE, max_trials=20, output=str(tmp_path / "b.h5"), **opts, **one)
    resumed = rd.optimize(
        resuming_curve, SPACE, max_trials=30, output=str(tmp_path / "b.h5"), resume=True, **opts, **one
    )

    def plan(res):
        return [(t.trial_id, t.params, t.budget, t.extra["info"]) for t in res.trials]

    assert plan(resumed) == plan(whole)


def test_promote_mode_with_a_data_fraction_budget_restarts_on_the_larger_subset() -> None:
    """budget = fraction of the training data (built-in objective): each rung trains from scratch
    on a larger nested subset; the rung's value is what the trial returned."""
    pytest.importorskip("torch")
    from rdhpo_hpc.training import make_builtin_objective

    objective = make_builtin_objective(
        {"model": "mlp", "dataset": "digits", "budget_kind": "data_fraction", "epochs": 2, "num_threads": 1}
    )
    space = rd.Space(lr=rd.Float(1e-3, 1e-1, log=True), width=rd.Int(8, 64, log=True))
    res = rd.optimize(
        objective,
        space,
        optimizer="asha",
        mode="promote",
        min_budget=1 / 9,
        max_budget=1,
        eta=3,
        max_trials=16,
        seed=0,
        direction="maximize",
        **FAST,
    )
    assert {t.state for t in res.trials} == {"COMPLETE"}, [t.error for t in res.trials]
    info = {t.trial_id: t.extra["info"] for t in res.trials}
    assert {round(t.budget, 3) for t in res.trials} <= {0.111, 0.333, 1.0}
    promoted = [t for t in res.trials if "promoted_from" in info[t.trial_id]]
    assert promoted
    rep = curves(res)
    for t in promoted:
        prev = res.trials[info[t.trial_id]["promoted_from"]]
        assert t.params == prev.params and t.budget > prev.budget
        assert [s for s, _ in rep[t.trial_id]] == [1, 2]  # trained again, both epochs

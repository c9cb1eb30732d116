"""The whole loop over the in-process transport: coordinator thread + 4 worker threads."""

from __future__ import annotations

import math
import threading

import h5py
import pytest

import rdhpo_hpc as rd

SPACE = rd.Space(x=rd.Float(0.0, 1.0), k=rd.Int(1, 4), act=rd.Categorical(["relu", "tanh"]))
QUIET = dict(progress_interval=1000)


def objective(config, ctx):
    """Reports one value per step; raises for large x, returns NaN for small x."""
    assert set(config) == {"x", "k", "act"}
    for step in range(3):
        ctx.report(step, config["x"] * (3 - step))
    if config["x"] > 0.85:
        raise RuntimeError(f"exploded at x={config['x']:.3f}")
    if config["x"] < 0.1:
        return float("nan")
    return config["x"] + 0.01 * config["k"]


@pytest.mark.timeout(60)
def test_four_workers_failures_recorded_study_goes_on(tmp_path):
    out = str(tmp_path / "s.h5")
    seen_threads = set()
    lock = threading.Lock()

    def obj(config, ctx):
        with lock:
            seen_threads.add((threading.get_ident(), ctx.rank))
        return objective(config, ctx)

    res = rd.optimize(obj, SPACE, max_trials=30, seed=11, output=out, workers=4, **QUIET)
    assert res is not None and res.finished
    ids = [t.trial_id for t in res.trials]
    assert ids == list(range(30))  # every trial present once
    by_state = {s: [t for t in res.trials if t.state == s] for s in ("COMPLETE", "FAILED")}
    assert len(by_state["COMPLETE"]) + len(by_state["FAILED"]) == 30
    raised = [t for t in res.trials if t.params["x"] > 0.85]
    nans = [t for t in res.trials if t.params["x"] < 0.1]
    assert raised and nans, "seed 11 should hit both failure kinds; pick another seed if the space changed"
    for t in raised:
        assert t.state == "FAILED" and t.value is None and "RuntimeError: exploded at x=" in t.error
    for t in nans:
        assert t.state == "FAILED" and t.value is None and "nan" in t.error.lower()
    for t in by_state["COMPLETE"]:
        assert math.isfinite(t.value) and t.value == pytest.approx(t.params["x"] + 0.01 * t.params["k"])
    assert res.best_value == min(t.value for t in by_state["COMPLETE"])
    # reports: 3 per trial, every one answered
    assert len(res.reports) == 90
    assert {r["decision"] for r in res.reports} == {"continue"}
    # work spread over the 4 workers (ranks 1..4)
    assert set(res.utilisation()) == {1, 2, 3, 4}
    assert {rank for _, rank in seen_threads} == {1, 2, 3, 4}
    assert set(res.workers) == {1, 2, 3, 4}


@pytest.mark.timeout(60)
def test_hdf5_holds_all_trials_and_load_results_equals_result(tmp_path):
    out = str(tmp_path / "s.h5")
    res = rd.optimize(objective, SPACE, max_trials=16, seed=2, output=out, workers=4, **QUIET)
    with h5py.File(out, "r") as f:
        for g in ("study", "trials", "reports", "events", "workers"):
            assert g in f, g
        tids = sorted(f["trials"]["trial_id"][:].tolist())
        assert tids == list(range(16))
        states = [s.decode() for s in f["trials"]["state"][:]]
        assert set(states) <= {"COMPLETE", "FAILED"}
        assert f["study"].attrs["end_status"] == "complete"
        assert f["workers"]["rank"].shape[0] == 4
        assert f["reports"]["trial_id"].shape[0] == 48
    loaded = rd.load_results(out)
    assert loaded.trials == res.trials
    assert loaded.best_trial == res.best_trial
    assert loaded.counts() == res.counts()
    assert loaded.finished and loaded.path == out


@pytest.mark.timeout(60)
def test_without_output_serial_run_returns_result(capsys):
    res = rd.optimize(lambda c, ctx: (c["x"] - 0.5) ** 2, SPACE, max_trials=8, seed=0, **QUIET)
    assert [t.trial_id for t in res.trials] == list(range(8))
    assert all(t.state == "COMPLETE" for t in res.trials)
    assert res.path is None


@pytest.mark.timeout(60)
def test_grid_study_stops_when_grid_exhausted(tmp_path):
    space = rd.Space(a=rd.Categorical([1, 2, 3]), b=rd.Categorical(["u", "v"]))
    res = rd.optimize(lambda c, ctx: c["a"], space, optimizer="grid", max_trials=100, workers=3, **QUIET)
    assert len(res.trials) == 6 and res.finished
    assert sorted((t.params["a"], t.params["b"]) for t in res.trials) == sorted(
        (a, b) for a in (1, 2, 3) for b in ("u", "v")
    )


@pytest.mark.timeout(60)
def test_conditional_space_end_to_end(tmp_path):
    space = rd.Space(
        model=rd.Choice(
            {"mlp": rd.Space(width=rd.Int(8, 64)), "svm": rd.Space(C=rd.Float(0.1, 10, log=True)), "linear": None}
        )
    )
    got = []

    def obj(c, ctx):
        got.append(dict(c))
        return {"mlp": c.get("width", 0) / 64, "svm": c.get("C", 0) / 10, "linear": 0.5}[c["model"]]

    res = rd.optimize(obj, space, max_trials=20, seed=4, workers=2, **QUIET)
    assert len(res.trials) == 20 and all(t.state == "COMPLETE" for t in res.trials)
    for c in got:
        space.validate(c)  # the objective saw only active parameters


@pytest.mark.timeout(60)
def test_existing_study_is_not_clobbered(tmp_path):
    out = str(tmp_path / "s.h5")
    rd.optimize(objective, SPACE, max_trials=4, seed=0, output=out, workers=2, **QUIET)
    before = open(out, "rb").read(), open(out + ".journal", "rb").read()
    with pytest.raises(rd.ConfigError, match="already holds a study"):
        rd.optimize(objective, SPACE, max_trials=4, seed=0, output=out, workers=2, **QUIET)
    assert (open(out, "rb").read(), open(out + ".journal", "rb").read()) == before
    res = rd.optimize(objective, SPACE, max_trials=3, seed=0, output=out, workers=2, overwrite=True, **QUIET)
    assert len(rd.load_results(out).trials) == 3 == len(res.trials)

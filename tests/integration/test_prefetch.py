"""Slow optimizers ask ahead while every worker is busy (coordinator prefetch), and a resumed
study replays those early asks in order."""

from __future__ import annotations

import collections
import json
import time

import pytest

import rdhpo_hpc as rd

SPACE = rd.Space(x=rd.Float(0.0, 1.0), y=rd.Float(-1.0, 1.0))
pytestmark = pytest.mark.timeout(120)


def slow(config, ctx):
    time.sleep(0.15)
    return (config["x"] - 0.3) ** 2 + config["y"] ** 2


def _journal(path):
    with open(f"{path}.journal") as fh:
        return [json.loads(line) for line in fh]


def test_bayes_asks_ahead_and_every_trial_runs_once(tmp_path):
    out = str(tmp_path / "bayes.h5")
    res = rd.optimize(
        slow,
        SPACE,
        optimizer="bayes",
        n_initial=4,
        max_trials=16,
        workers=3,
        seed=1,
        output=out,
        progress_interval=1000,
    )
    assert [t.trial_id for t in res.trials] == list(range(16))
    assert all(t.state == "COMPLETE" for t in res.trials)
    recs = _journal(out)
    asked = [r["trial_id"] for r in recs if r["k"] == "ask"]
    assert asked, "bayes should have prepared suggestions while the workers were busy"
    dispatched = collections.Counter(r["trial_id"] for r in recs if r["k"] == "dispatch")
    assert set(dispatched) == set(range(16)) and max(dispatched.values()) == 1
    new = {r["trial_id"] for r in recs if r["k"] == "dispatch" and r["new"]}
    assert not new & set(asked), "a prefetched trial is dispatched as already created"
    params = [json.dumps(t.params, sort_keys=True) for t in res.trials]
    assert len(set(params)) == 16, "pending asks count for the constant liar: no duplicates"


def test_random_does_not_prefetch(tmp_path):
    out = str(tmp_path / "random.h5")
    rd.optimize(slow, SPACE, optimizer="random", max_trials=6, workers=2, output=out, progress_interval=1000)
    assert not [r for r in _journal(out) if r["k"] == "ask"]


def test_resume_replays_asks_and_runs_prefetched_trials(tmp_path):
    out = str(tmp_path / "resume.h5")
    rd.optimize(
        slow, SPACE, optimizer="bayes", n_initial=4, max_trials=8, workers=3, seed=2, output=out, progress_interval=1000
    )
    # cut the log right after an 'ask' whose trial was never dispatched: a crash at that moment
    recs = _journal(out)
    cut = next(i for i, r in enumerate(recs) if r["k"] == "ask") + 1
    with open(f"{out}.journal", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in recs[:cut])
    res = rd.optimize(
        slow,
        SPACE,
        optimizer="bayes",
        n_initial=4,
        max_trials=10,
        workers=3,
        seed=2,
        output=out,
        resume=True,
        progress_interval=1000,
    )
    assert [t.trial_id for t in res.trials] == list(range(10))
    assert all(t.state == "COMPLETE" for t in res.trials)
    kept = {r["trial_id"]: r["params"] for r in recs[:cut] if r["k"] in ("ask", "dispatch")}
    for t in res.trials:  # trials logged before the crash keep their params after the resume
        if t.trial_id in kept:
            assert t.params == kept[t.trial_id]

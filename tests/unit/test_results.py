"""StudyResult built from a record log: the counted attempt, best trial, counts, utilisation."""

from __future__ import annotations

import math

from rdhpo_hpc.results import family_table, result_from_records, summary_lines


def attempt(tid, att, state, value=None, rank=1, start=0.0, end=1.0, params=None, error=""):
    return {
        "k": "attempt",
        "trial_id": tid,
        "attempt": att,
        "state": state,
        "value": value,
        "rank": rank,
        "start_time": start,
        "end_time": end,
        "params": params or {"x": tid},
        "error": error,
        "budget": None,
        "metrics": {},
        "info": {},
    }


def records(direction="minimize"):
    return [
        {"k": "study", "direction": direction, "name": "t", "start_time": 10.0},
        {"k": "worker", "rank": 1, "host": "h1", "device": "cpu"},
        {"k": "worker", "rank": 2, "host": "h2", "device": "cpu"},
        attempt(0, 0, "COMPLETE", 0.5, rank=1, start=10, end=12, params={"model": "mlp", "x": 0}),
        attempt(1, 0, "LOST", None, rank=2, start=10, end=11, params={"model": "svm", "x": 1}),
        attempt(1, 1, "COMPLETE", 0.2, rank=1, start=12, end=13, params={"model": "svm", "x": 1}),
        attempt(
            1,
            0,
            "LOST",
            9.0,
            rank=2,
            start=10,
            end=14,
            params={"model": "svm", "x": 1},
            error="late result ignored: trial already finished",
        ),
        attempt(
            2,
            0,
            "FAILED",
            None,
            rank=2,
            start=11,
            end=11.5,
            params={"model": "mlp", "x": 2},
            error="RuntimeError: boom",
        ),
        attempt(3, 0, "PRUNED", 0.1, rank=1, start=13, end=14, params={"model": "mlp", "x": 3}),
        attempt(4, 0, "COMPLETE", float("nan"), rank=1, start=14, end=15),
        {"k": "end", "end_status": "complete", "end_time": 20.0},
    ]


def test_each_trial_once_with_its_counted_attempt():
    r = result_from_records(records())
    assert [t.trial_id for t in r.trials] == [0, 1, 2, 3, 4]
    t1 = r.trials[1]
    assert t1.state == "COMPLETE" and t1.value == 0.2 and t1.attempt == 1  # the late LOST does not win
    assert r.trials[2].state == "FAILED" and "boom" in r.trials[2].error
    assert len(r.attempts) == 7


def test_best_ignores_pruned_and_nonfinite_and_follows_direction():
    r = result_from_records(records())
    assert r.best_trial.trial_id == 1 and r.best_value == 0.2  # PRUNED 0.1 not counted
    r = result_from_records(records("maximize"))
    assert r.best_trial.trial_id == 0 and r.best_params == {"model": "mlp", "x": 0}


def test_counts_utilisation_wall_time_finished():
    r = result_from_records(records())
    c = r.counts()
    assert c["COMPLETE"] == 3 and c["FAILED"] == 1 and c["PRUNED"] == 1 and c["LOST attempts"] == 2
    u = r.utilisation()
    assert u[1]["attempts"] == 4 and math.isclose(u[1]["busy_s"], 2 + 1 + 1 + 1)
    assert u[2]["attempts"] == 3
    assert r.wall_time == 10.0 and r.finished


def test_unfinished_study_and_no_completed_trial():
    recs = [r for r in records() if r["k"] != "end"]
    assert not result_from_records(recs).finished
    r = result_from_records([{"k": "study", "direction": "minimize"}, attempt(0, 0, "FAILED", None)])
    assert r.best_trial is None
    assert any("no trial completed" in line for line in summary_lines(r))


def test_summary_and_family_table():
    r = result_from_records(records())
    text = "\n".join(summary_lines(r))
    assert "trials: 5" in text and "best value: 0.2" in text and "rank 1: 4 attempts" in text
    fam = family_table(r, "model")
    assert fam["mlp"]["trials"] == 3 and fam["mlp"]["best_value"] == 0.5
    assert fam["svm"]["best_value"] == 0.2


def test_show_lines_best_trials_errors_grouped_and_trial_list():
    from rdhpo_hpc.results import best_lines, error_lines, trial_lines

    recs = records()[:-1] + [
        attempt(5, 0, "FAILED", None, rank=1, params={"model": "mlp", "x": 5}, error="RuntimeError: boom"),
        attempt(6, 0, "FAILED", None, rank=1, params={"model": "svm", "x": 6}, error="objective returned nan"),
        records()[-1],
    ]
    r = result_from_records(recs)
    best = best_lines(r)
    assert best[0] == "best 2 trials:" and "trial    1: 0.2" in best[1] and "trial    0: 0.5" in best[2]
    errors = error_lines(r)
    assert errors[0] == "errors (3 FAILED trials, 2 distinct):"
    assert errors[1] == "  2 x RuntimeError: boom" and errors[2] == "      trials 2, 5"
    assert errors[3:] == ["  1 x objective returned nan", "      trials 6"]
    failed = trial_lines(r, "FAILED")
    assert len(failed) == 4 and all("FAILED" in ln for ln in failed[1:])  # header + 3 trials
    assert failed[1].split()[:2] == ["2", "FAILED"] and failed[1].endswith("| RuntimeError: boom")
    everything = trial_lines(r)
    assert [ln.split()[0] for ln in everything[1:]] == ["0", "1", "2", "3", "4", "5", "6"]
    assert "model=svm, x=1" in everything[2] and "1.00s" in everything[2]
    assert error_lines(result_from_records(records()[:4])) == []  # no failure: no section

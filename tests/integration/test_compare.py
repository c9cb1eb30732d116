"""One study compares three classifier families (conditional space) in-process on digits:
every family runs, each trial holds only its active parameters (in memory and in the HDF5 file),
and ``family_table`` gives the best value per family."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("sklearn")
h5py = pytest.importorskip("h5py")

from rdhpo_hpc import config as config_mod
from rdhpo_hpc.api import load_results
from rdhpo_hpc.launch import run_inprocess, validate_for_run
from rdhpo_hpc.results import family_table

ACTIVE = {
    "svm": {"model", "C", "gamma"},
    "random_forest": {"model", "n_estimators", "max_features"},
    "logistic_regression": {"model", "C"},
}


@pytest.mark.timeout(120)
def test_conditional_space_compares_three_families(tmp_path) -> None:
    out = tmp_path / "compare.h5"
    cfg = config_mod.from_dict(
        {
            "name": "compare_it",
            "seed": 1,
            "objective": {"builtin": {"dataset": "digits"}},
            "metric": "val_accuracy",
            "space": {
                "model": {
                    "type": "categorical",
                    "choices": ["svm", "random_forest", "logistic_regression"],
                    "conditional": {
                        "svm": {
                            "C": {"type": "float", "low": 0.5, "high": 5.0, "log": True},
                            "gamma": {"type": "categorical", "choices": ["scale"]},
                        },
                        "random_forest": {
                            "n_estimators": {"type": "int", "low": 5, "high": 15},
                            "max_features": {"type": "categorical", "choices": ["sqrt", "all"]},
                        },
                        "logistic_regression": {"C": {"type": "float", "low": 0.05, "high": 1.0, "log": True}},
                    },
                }
            },
            # the grid over a conditional space is the union of its branches' grids: 2 + 4 + 2 points
            "optimizer": {"name": "grid", "degree": 2},
            "budget": {"max_trials": 8, "max_wall_time": 100},
            "output": str(out),
            "fault_tolerance": {"t_fail": 30, "trial_time_limit": 60},
            "progress_interval": 30,
        }
    )
    validate_for_run(cfg)
    outcome = run_inprocess(cfg, workers=2, out=io.StringIO())
    assert outcome.exit_code == 0
    res = outcome.result
    assert len(res.trials) == 8 and all(t.state == "COMPLETE" for t in res.trials), [
        (t.state, t.error) for t in res.trials
    ]
    seen = {t.params["model"] for t in res.trials}
    assert seen == set(ACTIVE)
    for t in res.trials:  # inactive parameters are absent, not faked
        assert set(t.params) == ACTIVE[t.params["model"]], t.params
        assert t.value > 0.8

    # the same in the file, read with plain h5py
    with h5py.File(out, "r") as f:
        rows = [json.loads(s) for s in f["trials"]["params"].asstr()[:]]
        states = list(f["trials"]["state"].asstr()[:])
    assert len(rows) == 8 and set(states) == {"COMPLETE"}
    for p in rows:
        assert set(p) == ACTIVE[p["model"]], p

    table = family_table(load_results(str(out)))
    assert set(table) == set(ACTIVE)
    for fam, row in table.items():
        ours = [t.value for t in res.trials if t.params["model"] == fam]
        assert row["trials"] == len(ours) == (4 if fam == "random_forest" else 2)
        assert row["best_value"] == max(ours)
        assert row["best_params"]["model"] == fam


# ---------------------------------------------------------------- bad conditional spaces via the CLI

HEAD = "name: bad\nobjective: {builtin: {dataset: digits}}\nspace:\n"
BAD_SPACES = {
    "unknown_choice_value": (
        """\
          model:
            type: categorical
            choices: [svm, random_forest]
            conditional:
              svm: {C: {type: float, low: 0.1, high: 10}}
              random_forrest: {n_estimators: {type: int, low: 5, high: 10}}
        """,
        ["space.model", "'random_forrest'", "unknown choice value"],
    ),
    "defined_twice": (
        """\
          C: {type: float, low: 0.1, high: 10}
          model:
            type: categorical
            choices: [svm, logistic_regression]
            conditional:
              svm: {C: {type: float, low: 0.1, high: 10}}
        """,
        ["'C'", "defined twice", "'model=svm/C'"],
    ),
    "condition_on_int": (
        """\
          model:
            type: categorical
            choices: [svm, random_forest]
            conditional:
              random_forest:
                n_estimators:
                  type: int
                  low: 5
                  high: 50
                  conditional: {10: {max_depth: {type: int, low: 2, high: 8}}}
        """,
        ["space.model=random_forest.n_estimators", "need a categorical", "'int'"],
    ),
    "unknown_family": (
        """\
          model: {type: categorical, choices: [svm, xgboost]}
        """,
        ["space 'model'", "'xgboost'", "allowed: mlp, cnn, svm, random_forest"],
    ),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(BAD_SPACES))
def test_bad_conditional_space_fails_with_one_clear_message(case: str, tmp_path) -> None:
    body, needles = BAD_SPACES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(HEAD + textwrap.indent(textwrap.dedent(body), "  "))
    out = tmp_path / "out.h5"
    p = subprocess.run(
        [sys.executable, "-m", "rdhpo_hpc", "run", str(path), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("rdhpo: error: "), p.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in p.stderr + p.stdout
    assert not out.exists()


@pytest.mark.timeout(120)
def test_asha_prunes_tree_families_by_number_of_trees(tmp_path) -> None:
    """Budget = trees / boosting iterations: ASHA stops weak forests and boosters at its rungs."""
    cfg = config_mod.from_dict(
        {
            "name": "compare_asha",
            "seed": 0,
            "objective": {"builtin": {"dataset": "digits"}},
            "metric": "val_loss",
            "space": {
                "model": {
                    "type": "categorical",
                    "choices": ["random_forest", "gradient_boosting"],
                    "conditional": {
                        "random_forest": {"max_depth": {"type": "int", "low": 1, "high": 12}},
                        "gradient_boosting": {
                            "learning_rate": {"type": "float", "low": 0.01, "high": 0.5, "log": True},
                            "max_depth": {"type": "int", "low": 1, "high": 3},
                        },
                    },
                }
            },
            "optimizer": {"name": "asha", "min_budget": 2, "max_budget": 18, "eta": 3},
            "budget": {"max_trials": 12, "max_wall_time": 100},
            "fault_tolerance": {"t_fail": 30, "trial_time_limit": 60},
            "progress_interval": 30,
        }
    )
    outcome = run_inprocess(cfg, workers=2, out=io.StringIO())
    assert outcome.exit_code == 0
    res = outcome.result
    states = [t.state for t in res.trials]
    assert set(states) <= {"COMPLETE", "PRUNED"} and "PRUNED" in states and "COMPLETE" in states, [
        (t.state, t.error) for t in res.trials
    ]
    last_step = {}
    for r in res.reports:
        last_step[r["trial_id"]] = max(last_step.get(r["trial_id"], 0), r["step"])
    for t in res.trials:
        assert t.budget == 18
        if t.state == "COMPLETE":
            assert last_step[t.trial_id] == 18  # grown to max_budget trees / iterations
        else:
            assert last_step[t.trial_id] in (2, 6)  # stopped at a rung

"""Failures as a user reads them: errors grouped, the failure policy, the objective's contract."""

from __future__ import annotations

import numpy as np
import pytest

from rdhpo_hpc.context import check_objective
from rdhpo_hpc.coordination.policy import FailurePolicy
from rdhpo_hpc.errors import ConfigError
from rdhpo_hpc.failures import FirstFailures, error_key, group_errors, headline, where
from rdhpo_hpc.worker import BadReturn, objective_value

TB = 'RuntimeError: exploded at x=0.{}\nTraceback (most recent call last):\n  File "/u/obj.py", line {}, in f\n'


def test_errors_differing_in_numbers_only_are_one_error():
    a, b, c = TB.format(93, 3), TB.format(97, 3), TB.format(93, 9)
    assert headline(a) == "RuntimeError: exploded at x=0.93" and where(a) == 'File "/u/obj.py", line 3, in f'
    assert error_key(a) == error_key(b) != error_key(c)  # c: raised elsewhere
    groups = group_errors([(4, "objective returned nan"), (1, a), (2, b), (7, c)])
    assert groups[0] == ("RuntimeError: exploded at x=0.93", 'File "/u/obj.py", line 3, in f', [1, 2])
    assert sorted(g[2] for g in groups) == [[1, 2], [4], [7]]
    seen = FirstFailures()
    assert [seen.first(e) for e in (a, b, c, a)] == [True, False, True, False]


def test_default_policy_stops_when_the_first_trials_all_failed():
    p = FailurePolicy(None, max_trials=100)
    p.start({})
    assert p.verdict({"FAILED": 4}) is None
    assert "first 5 trials all FAILED" in p.verdict({"FAILED": 5})
    assert p.verdict({"FAILED": 50, "COMPLETE": 1}) is None  # one success: failures are the objective's business
    small = FailurePolicy(None, max_trials=3)
    small.start({})
    assert small.verdict({"FAILED": 3}) is not None


def test_default_policy_counts_this_run_only_so_a_fixed_objective_can_resume():
    p = FailurePolicy(None, max_trials=100)
    p.start({"FAILED": 5})  # a study stopped on failures, resumed
    assert p.verdict({"FAILED": 5, "COMPLETE": 0}) is None
    assert p.verdict({"FAILED": 9}) is None
    assert p.verdict({"FAILED": 10}) is not None


def test_max_failures_counts_every_failed_trial_and_replaces_the_default():
    p = FailurePolicy(3, max_trials=100)
    p.start({})
    assert p.verdict({"FAILED": 2, "COMPLETE": 7}) is None
    assert "max_failures=3" in p.verdict({"FAILED": 3, "COMPLETE": 7})
    lax = FailurePolicy(20, max_trials=100)
    lax.start({})
    assert lax.verdict({"FAILED": 10}) is None  # explicit limit: the first-5 rule is off


@pytest.mark.parametrize(
    "returned, words",
    [
        (None, ["returned None", "one number"]),
        ({"loss": 0.3}, ["returned a dict", "{'loss': 0.3}", "metrics['val_loss']"]),
        ("0.5", ["returned a str", "'0.5'"]),
        ([0.1, 0.2], ["returned a list"]),
        (True, ["returned a bool"]),
        (np.array([1.0, 2.0]), ["ndarray", "not one number"]),
    ],
)
def test_a_return_value_that_is_not_one_number_is_named(returned, words):
    with pytest.raises(BadReturn) as err:
        objective_value(returned)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_numbers_of_any_kind_are_values():
    assert objective_value(3) == 3.0 and objective_value(np.float32(0.5)) == 0.5
    assert objective_value(np.array(0.25)) == 0.25


def test_objective_signature_is_checked():
    def trial_style(trial):
        return 1.0

    with pytest.raises(ConfigError) as err:
        check_objective(trial_style)
    assert "trial_style(trial)" in str(err.value) and "objective(config, ctx)" in str(err.value)
    assert "Optuna-style" in str(err.value)
    with pytest.raises(ConfigError, match="three"):
        check_objective(lambda config, ctx, three: 0.0)
    for ok in (lambda c, ctx: 0.0, lambda c, ctx=None: 0.0, lambda *a: 0.0, lambda c, ctx, extra=1: 0.0):
        check_objective(ok)


def test_yaml_budget_max_failures_is_read_and_checked():
    from rdhpo_hpc.config import from_dict

    base = {"objective": {"function": "m:f"}, "space": {"x": {"type": "float", "low": 0, "high": 1}}}
    assert from_dict({**base, "budget": {"max_failures": 3}}).max_failures == 3
    assert from_dict(base).max_failures is None
    for bad in (0, -1, 2.5, "many", True):
        with pytest.raises(ConfigError) as err:
            from_dict({**base, "budget": {"max_failures": bad}})
        assert "budget.max_failures" in str(err.value) and repr(bad) in str(err.value)


def test_resume_hint_names_the_launcher_and_slurm(capsys, monkeypatch):
    import argparse

    from rdhpo_hpc import cli

    args = argparse.Namespace(config="my cfg.yaml", output=None, max_trials=None)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    cli._print_resume_hint(args, 3, 4)
    assert capsys.readouterr().out == "[rdhpo] to continue this study: rdhpo launch -n 4 'my cfg.yaml' --resume\n"
    cli._print_resume_hint(args, 1, 4)  # failed, not resumable: no hint
    cli._print_resume_hint(args, 0, None)
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    cli._print_resume_hint(argparse.Namespace(config="c.yaml", output="o.h5", max_trials=9), 6, None)
    out = capsys.readouterr().out
    assert "rdhpo run c.yaml --output o.h5 --resume --max-trials 9;" in out and "requeues" in out

"""Failures in plain sight, in-process: a broken objective stops the study fast with one message
per distinct error; fail_fast re-raises; the API's errors speak Python; `rdhpo show` lists the
errors and trials; a study stopped by a signal prints the command that resumes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

import rdhpo_hpc as rd
from rdhpo_hpc import cli

SPACE = rd.Space(x=rd.Float(0.0, 1.0))
QUIET = dict(progress_interval=1000)


def broken(config, ctx):
    return 1 / 0


@pytest.mark.timeout(60)
def test_broken_objective_stops_after_five_trials_with_one_message(tmp_path, capsys):
    out = str(tmp_path / "s.h5")
    res = rd.optimize(broken, SPACE, max_trials=200, output=out, **QUIET)
    cap = capsys.readouterr()
    assert res.counts()["FAILED"] == 5 and len(res.trials) == 5  # not 200
    assert res.end["end_status"] == "max_failures" and res.end["exit_code"] == 1
    assert cap.err.count("FAILED: ZeroDivisionError: division by zero") == 1, cap.err
    assert "params: {'x':" in cap.err and "in broken" in cap.err  # params and where it was raised
    assert cap.out.count("[rdhpo] stopping the study: the first 5 trials all FAILED") == 1, cap.out
    assert f"`rdhpo show {out}`" in cap.out
    assert res.errors() == [("ZeroDivisionError: division by zero", res.errors()[0][1], [0, 1, 2, 3, 4])]

    assert cli.main(["show", out, "--state", "FAILED"]) == 0
    shown = capsys.readouterr().out
    assert "stopped (max_failures, exit code 1)" in shown
    assert "5 x ZeroDivisionError: division by zero" in shown and "trials 0, 1, 2, 3, 4" in shown
    rows = [ln for ln in shown.splitlines() if "FAILED " in ln and "| ZeroDivisionError" in ln]
    assert len(rows) == 5, shown
    assert cli.main(["show", out, "--state", "COMPLETE"]) == 0
    assert "| ZeroDivisionError" not in capsys.readouterr().out


@pytest.mark.timeout(60)
def test_some_failures_do_not_stop_a_study_and_max_failures_does(capsys):
    def flaky(config, ctx):
        if config["x"] > 0.5:
            raise ValueError(f"bad x={config['x']}")
        return config["x"]

    res = rd.optimize(flaky, SPACE, max_trials=30, seed=3, **QUIET)
    assert len(res.trials) == 30 and res.finished and res.counts()["FAILED"] >= 5
    assert capsys.readouterr().err.count("FAILED: ValueError: bad x=") == 1  # numbers differ: one error
    res = rd.optimize(flaky, SPACE, max_trials=30, seed=3, max_failures=3, **QUIET)
    assert res.counts()["FAILED"] == 3 and not res.finished
    assert "max_failures=3" in capsys.readouterr().out
    with pytest.raises(rd.ConfigError, match="max_failures must be an integer >= 1.*got 0"):
        rd.optimize(flaky, SPACE, max_failures=0)


@pytest.mark.timeout(60)
def test_fail_fast_reraises_the_objectives_exception():
    class Boom(Exception):
        pass

    def obj(config, ctx):
        if ctx.trial_id == 1:
            raise Boom("trial one")
        return config["x"]

    with pytest.raises(Boom, match="trial one"):
        rd.optimize(obj, SPACE, max_trials=10, fail_fast=True, **QUIET)
    with pytest.raises(rd.TrialFailed, match="returned None"):
        rd.optimize(lambda c, ctx: None, SPACE, max_trials=10, fail_fast=True, **QUIET)
    res = rd.optimize(lambda c, ctx: c["x"], SPACE, max_trials=4, fail_fast=True, **QUIET)
    assert res.counts()["COMPLETE"] == 4


@pytest.mark.timeout(60)
def test_wrong_signature_and_return_values_are_named(capsys):
    def objective(trial):
        return trial.suggest_float("x", 0, 1)

    with pytest.raises(rd.ConfigError, match=r"objective\(trial\).*objective\(config, ctx\)"):
        rd.optimize(objective, SPACE, max_trials=3)
    res = rd.optimize(lambda c, ctx: {"val_loss": c["x"]}, SPACE, max_trials=3, **QUIET)
    assert {t.state for t in res.trials} == {"FAILED"}
    assert "objective returned a dict" in res.trials[0].error and "val_loss" in res.trials[0].error
    assert "see the errors with the returned result" in capsys.readouterr().out  # no "`rdhpo show `"


@pytest.mark.timeout(60)
def test_api_errors_name_the_python_arguments(tmp_path):
    out = str(tmp_path / "s.h5")
    rd.optimize(lambda c, ctx: c["x"], SPACE, max_trials=2, output=out, **QUIET)
    with pytest.raises(rd.ConfigError) as err:
        rd.optimize(lambda c, ctx: c["x"], SPACE, max_trials=2, output=out, **QUIET)
    msg = str(err.value)
    assert "resume=True" in msg and "overwrite=True" in msg and "--" not in msg, msg


@pytest.mark.timeout(90)
def test_a_study_stopped_by_a_signal_prints_the_command_that_resumes_it(tmp_path):
    (tmp_path / "obj.py").write_text(
        textwrap.dedent("""\
        import os, signal
        def f(config, ctx):
            if ctx.trial_id == 3 and not os.path.exists("stopped-once"):
                open("stopped-once", "w").close()
                os.kill(os.getpid(), signal.SIGTERM)
            return config["x"]
        """)
    )
    (tmp_path / "c.yaml").write_text(
        "name: s\nobjective: {function: 'obj.py:f'}\nspace:\n  x: {type: float, low: 0, high: 1}\n"
        "budget: {max_trials: 8}\nprogress_interval: 100\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def rdhpo(*args):
        p = subprocess.Popen(
            [sys.executable, "-m", "rdhpo_hpc", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = p.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            raise
        return p.returncode, out, err

    code, out, err = rdhpo("run", "c.yaml", "--output", "r.h5")
    assert code == 3, out + err
    hint = [ln for ln in out.splitlines() if ln.startswith("[rdhpo] to continue this study: ")]
    assert hint == ["[rdhpo] to continue this study: rdhpo run c.yaml --output r.h5 --resume"], out
    args = hint[0].split(": ", 1)[1].split()[1:]
    code, out, err = rdhpo(*args)  # the printed command, as written
    assert code == 0, out + err
    assert "to continue this study" not in out
    assert len(rd.load_results(str(tmp_path / "r.h5")).trials) == 8

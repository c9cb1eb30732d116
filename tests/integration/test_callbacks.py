"""Per-trial callbacks, enqueued configurations and the bayes initial-design warning, through
``rd.optimize`` in-process and the YAML config (docs/callbacks.md)."""

from __future__ import annotations

import pytest

import rdhpo_hpc as rd
from rdhpo_hpc.config import from_dict
from rdhpo_hpc.errors import ConfigError
from rdhpo_hpc.strategy import initial_design_warning, make_strategy
from rdhpo_hpc.trial import TrialState

SPACE = rd.Space(x=rd.Float(-2.0, 2.0), n=rd.Int(1, 8), c=rd.Categorical(["a", "b"]))
KW = dict(progress_interval=1000, seed=3)


def obj(config, ctx):
    ctx.report(1, abs(config["x"]))
    if config["c"] == "b" and config["n"] == 8:
        raise RuntimeError("n=8 with b breaks")
    return config["x"] ** 2 + config["n"]


def test_callback_sees_every_finished_trial_and_the_study_so_far():
    calls = []

    def cb(trial, study):
        best = study.best_trial
        calls.append((trial, len(study.trials), None if best is None else best.trial_id))

    enqueue = [{"x": 0.0, "n": 8, "c": "b"}]  # trial 0 FAILS: failures reach callbacks too
    res = rd.optimize(obj, SPACE, max_trials=12, workers=2, callbacks=[cb], enqueue=enqueue, **KW)
    assert len(calls) == 12  # once per trial, each trial once
    assert sorted(t.trial_id for t, _, _ in calls) == list(range(12))
    assert [n for _, n, _ in calls] == list(range(1, 13))  # the study so far grows by one each time
    by_id = {t.trial_id: t for t, _, _ in calls}
    for t in res.trials:  # the same trial objects as result.trials
        got = by_id[t.trial_id]
        assert (got.params, got.value, got.state, got.rank, got.error) == (t.params, t.value, t.state, t.rank, t.error)
    assert by_id[0].state == "FAILED" and "n=8 with b breaks" in by_id[0].error
    assert by_id[1].extra["reports"] == [(1, abs(by_id[1].params["x"]))]  # its learning curve
    assert calls[-1][2] == res.best_trial.trial_id  # best so far at the end = the study's best


def test_a_raising_callback_is_reported_once_and_the_study_goes_on(capsys):
    seen = []

    def broken(trial, study):
        raise ValueError(f"tracker down at trial {trial.trial_id}")

    res = rd.optimize(obj, SPACE, max_trials=6, callbacks=[broken, lambda t, s: seen.append(t.trial_id)], **KW)
    assert len(res.trials) == 6 and sorted(seen) == list(range(6))  # the next callback still ran
    err = capsys.readouterr().err
    assert err.count("ValueError: tracker down") == 1, err  # once, with the exception's last line
    assert "raised on 6 trials in all" in err, err


@pytest.mark.parametrize(
    "spec, words",
    [
        ("no_such_module_xyz:f", ["callbacks[0]", "no_such_module_xyz"]),
        ("os.path:no_such_function", ["callbacks[0]", "no_such_function"]),
        ("json", ["callbacks[0]", "'json'"]),
        ("rdhpo_hpc.integrations.tensorboard:TensorBoardCallback", ["callback(trial, study)"]),
    ],
)
def test_a_bad_callback_is_a_config_error_before_any_trial(spec, words):
    ran = []
    with pytest.raises(ConfigError) as exc:
        rd.optimize(lambda c, ctx: ran.append(1) or 0.0, SPACE, max_trials=2, callbacks=[spec], **KW)
    assert all(w in str(exc.value) for w in words), str(exc.value)
    assert not ran
    with pytest.raises(ConfigError) as exc:
        from_dict({"space": {"x": [1, 2]}, "objective": {"function": "m:f"}, "callbacks": ["ok.not:here", spec]})
    assert "callbacks[0]" in str(exc.value)


def test_yaml_callbacks_accept_both_import_path_forms():
    for spec in ("rdhpo_hpc.integrations.tensorboard:callback", "rdhpo_hpc.integrations.tensorboard.callback"):
        cfg = from_dict({"space": {"x": [1, 2]}, "objective": {"function": "m:f"}, "callbacks": [spec]})
        assert cfg.callbacks == [spec]
        assert cfg.describe()["callbacks"] == [spec]


def test_enqueued_configurations_run_first_then_the_optimizer_continues():
    enqueue = [{"x": 1.5, "n": 2, "c": "a"}, {"x": -1.0, "n": 7, "c": "b"}]
    res = rd.optimize(obj, SPACE, optimizer="evolution", max_trials=8, enqueue=enqueue, **KW)
    assert [t.params for t in res.trials[:2]] == enqueue
    assert len(res.trials) == 8 and all(t.params not in enqueue for t in res.trials[2:])
    # YAML initial_points: the same
    cfg = from_dict({"space": SPACE.to_dict(), "objective": {"function": "m:f"}, "initial_points": enqueue})
    assert cfg.initial_points == enqueue


def test_enqueued_results_are_observations_of_the_optimizer():
    point = {"x": 0.5, "n": 3, "c": "a"}
    opt, sched = make_strategy("bayes", SPACE, seed=0, initial_points=[point], n_initial=3)
    assert opt.ask(0) == point
    opt.tell(0, TrialState.COMPLETE, 3.25)
    assert opt.observations() == [(point, 3.25)]  # told like an asked point
    assert opt.ask(1) != point  # then the optimizer's own suggestions
    # grid: exhausted only once the queue and the grid are both done
    grid, _ = make_strategy("grid", rd.Space(a=rd.Categorical([1, 2])), initial_points=[{"a": 2}])
    asked = [grid.ask(i) for i in range(3)]
    assert asked == [{"a": 2}, {"a": 1}, {"a": 2}] and grid.exhausted


@pytest.mark.parametrize(
    "opts", [dict(optimizer="evolution", population_size=4, sample_size=2), dict(optimizer="bayes", n_initial=4)]
)
def test_resume_with_enqueued_points_is_exact(tmp_path, opts):
    enqueue = [{"x": 0.25, "n": 1, "c": "a"}, {"x": -0.5, "n": 4, "c": "b"}, {"x": 1.0, "n": 5, "c": "a"}]
    kw = dict(KW, enqueue=enqueue, **opts)
    out = str(tmp_path / "r.h5")
    rd.optimize(obj, SPACE, max_trials=2, output=out, **kw)  # stopped inside the queue
    resumed = rd.optimize(obj, SPACE, max_trials=14, output=out, resume=True, **kw)
    fresh = rd.optimize(obj, SPACE, max_trials=14, output=str(tmp_path / "f.h5"), **kw)
    assert [t.params for t in resumed.trials] == [t.params for t in fresh.trials]
    assert [t.params for t in resumed.trials[:3]] == enqueue


@pytest.mark.parametrize(
    "points, words",
    [
        ([{"x": 0.0, "n": 1, "c": "a"}, {"x": 9.0, "n": 1, "c": "a"}], ["initial_points[1]", "'x'", "9.0"]),
        ([{"x": 0.0, "n": 1, "c": "z"}], ["initial_points[0]", "'c'", "'z'"]),
        ([{"x": 0.0, "n": 1}], ["initial_points[0]", "missing", "'c'"]),
        ([{"x": 0.0, "n": 1, "c": "a", "lr": 1}], ["initial_points[0]", "lr"]),
        ([[0.0, 1, "a"]], ["initial_points[0]", "mapping"]),
        ({"x": 0.0}, ["initial_points", "list"]),
    ],
)
def test_a_bad_initial_point_names_the_key_and_value(points, words):
    with pytest.raises(ConfigError) as exc:
        rd.optimize(obj, SPACE, max_trials=3, enqueue=points, **KW)
    assert all(w in str(exc.value) for w in words), str(exc.value)
    with pytest.raises(ConfigError) as exc:
        from_dict({"space": SPACE.to_dict(), "objective": {"function": "m:f"}, "initial_points": points})
    assert all(w in str(exc.value) for w in words), str(exc.value)


def test_bayes_that_never_leaves_its_initial_design_is_warned_about(capsys):
    five = rd.Space(**{f"p{i}": rd.Float(0.0, 1.0) for i in range(5)})

    def flat(config, ctx):
        return sum(config.values())

    rd.optimize(flat, five, optimizer="bayes", max_trials=10, **KW)  # 10 initial points: never the model
    err = capsys.readouterr().err
    assert err.count("[rdhpo] warning: optimizer 'bayes' starts with 10 initial random points") == 1, err
    assert "max_trials is 10" in err
    rd.optimize(flat, five, optimizer="bayes", max_trials=6, n_initial=4, **KW)  # then the model: fine
    assert "warning" not in capsys.readouterr().err
    opt, _ = make_strategy("bayes", five, n_initial=4)
    assert initial_design_warning("bayes", opt, 4) is not None and initial_design_warning("bayes", opt, 5) is None
    assert initial_design_warning("random", make_strategy("random", five)[0], 1) is None

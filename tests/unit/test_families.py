"""Unit tests of the scikit-learn classifier families (rdhpo_hpc.training.families) and the
built-in objective's dispatch on ``model``.  All on digits (1 797 samples, local), small models."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")

from rdhpo_hpc.errors import ConfigError, TrialPruned
from rdhpo_hpc.space import Space
from rdhpo_hpc.space.params import Categorical, Float, Int
from rdhpo_hpc.space.space import Choice
from rdhpo_hpc.training import make_builtin_objective
from rdhpo_hpc.training.families import SKLEARN_FAMILIES, family_settings, proba_metrics, report_steps

from fakes import FakeCtx as _FakeCtx

pytestmark = pytest.mark.timeout(60)


def FakeCtx(*args: Any, trial_id: int = 3, **kwargs: Any) -> _FakeCtx:
    return _FakeCtx(*args, trial_id=trial_id, **kwargs)


def obj(**kw: Any):
    return make_builtin_objective({"dataset": "digits", "metric": "val_accuracy", **kw})


SMALL = {
    "svm": {"C": 3.0},
    "random_forest": {"n_estimators": 20},
    "gradient_boosting": {"max_iter": 15, "max_depth": 3},
    "logistic_regression": {"C": 0.5},
}


@pytest.mark.parametrize("family", SKLEARN_FAMILIES)
def test_family_learns_digits_and_reports_all_metrics(family: str) -> None:
    ctx = FakeCtx()
    # lr / batch_size: shared params of a conditional space, ignored by the sklearn families
    cfg = {"model": family, "lr": 1e-3, "batch_size": 64, **SMALL[family]}
    acc = obj()(cfg, ctx)
    assert acc > 0.85, (family, acc)
    step, value, metrics = ctx.reports[-1]
    assert value == acc == metrics["val_accuracy"]
    assert 0.0 < metrics["val_loss"] < math.log(10)  # better than a uniform guess
    # the same trial under val_error / val_loss gives the matching numbers (same seed)
    err = obj(metric="val_error")(cfg, FakeCtx())
    loss = obj(metric="val_loss")(cfg, FakeCtx())
    assert err == pytest.approx(1 - acc)
    assert loss == pytest.approx(metrics["val_loss"])


def test_spec_model_selects_family_when_config_has_none() -> None:
    ctx = FakeCtx()
    obj(model="logistic_regression")({"C": 1.0}, ctx)
    assert ctx.steps == [1]


def test_random_forest_budget_is_number_of_trees() -> None:
    ctx = FakeCtx(budget=7)
    obj()({"model": "random_forest", "n_estimators": 50}, ctx)  # the budget wins
    assert ctx.steps == [1, 2, 3, 4, 5, 6, 7]
    ctx = FakeCtx()
    obj()({"model": "random_forest", "n_estimators": 25}, ctx)  # no budget: n_estimators
    assert ctx.steps == [3, 6, 9, 12, 15, 18, 21, 24, 25]
    # more trees do not hurt much and the forest's loss falls as it grows
    losses = [m["val_loss"] for _, _, m in ctx.reports]
    assert losses[-1] < losses[0]


def test_gradient_boosting_budget_is_iterations_and_loss_falls() -> None:
    ctx = FakeCtx(budget=20)
    obj(metric="val_loss")({"model": "gradient_boosting", "max_iter": 500, "max_depth": 3}, ctx)
    assert ctx.steps == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    values = [v for _, v, _ in ctx.reports]
    assert values[-1] < values[0]


def test_report_steps() -> None:
    assert report_steps(0, 5) == [1, 2, 3, 4, 5]
    assert report_steps(0, 100) == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert report_steps(40, 100) == [50, 60, 70, 80, 90, 100]
    assert report_steps(100, 100) == [100]


@pytest.mark.parametrize("family", ["svm", "logistic_regression"])
def test_single_fidelity_reports_once_at_the_budget(family: str) -> None:
    a, b = FakeCtx(budget=3), FakeCtx()
    va = obj()({"model": family, **SMALL[family]}, a)
    vb = obj()({"model": family, **SMALL[family]}, b)
    assert a.steps == [3] and b.steps == [1]
    assert va == vb  # the budget does not change what is trained


def test_data_fraction_budget_trains_on_a_subset() -> None:
    o = obj(budget_kind="data_fraction")
    small, full = FakeCtx(budget=0.1), FakeCtx(budget=1.0)
    v_small = o({"model": "logistic_regression", "C": 1.0}, small)
    v_full = o({"model": "logistic_regression", "C": 1.0}, full)
    assert small.steps == full.steps == [1]
    assert v_small < v_full


def test_scheduler_stop_prunes_forest_and_checkpoint_resumes(tmp_path) -> None:
    o = obj()
    cfg = {"model": "random_forest", "n_estimators": 10}
    ctx = FakeCtx(budget=10, prune_at=4, checkpoint_dir=str(tmp_path / "a"))
    with pytest.raises(TrialPruned):
        o(cfg, ctx)
    assert ctx.steps == [1, 2, 3, 4]
    assert (tmp_path / "a" / "sk_model.pkl").is_file()  # saved where it was stopped
    resumed = FakeCtx(budget=10, checkpoint_from=str(tmp_path / "a"), checkpoint_dir=str(tmp_path / "b"))
    v_resumed = o(cfg, resumed)
    assert resumed.steps == [5, 6, 7, 8, 9, 10]  # grows on from 4 trees
    fresh = FakeCtx(budget=10)
    assert o(cfg, fresh) == v_resumed  # same forest as a fresh run
    wrong = FakeCtx(budget=12, checkpoint_from=str(tmp_path / "b"))
    with pytest.raises(RuntimeError, match="random_forest"):
        o({"model": "gradient_boosting"}, wrong)


def test_unknown_family_lists_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as e:
        obj()({"model": "xgboost"}, FakeCtx())
    msg = str(e.value)
    assert "'xgboost'" in msg
    for name in ("mlp", "cnn", *SKLEARN_FAMILIES):
        assert name in msg
    with pytest.raises(ConfigError, match="xgboost"):
        obj(model="xgboost")


@pytest.mark.parametrize(
    "family,key,value",
    [
        ("svm", "C", -1.0),
        ("svm", "kernel", "cubic"),
        ("svm", "gamma", "big"),
        ("svm", "gamma", 0.0),
        ("random_forest", "n_estimators", 0),
        ("random_forest", "max_features", "half"),
        ("random_forest", "max_features", 1.5),
        ("random_forest", "min_samples_leaf", 2.5),
        ("gradient_boosting", "learning_rate", 0.0),
        ("gradient_boosting", "max_leaf_nodes", 1),
        ("gradient_boosting", "l2_regularization", -1.0),
        ("logistic_regression", "penalty", "l1"),
        ("logistic_regression", "max_iter", "many"),
    ],
)
def test_bad_hyper_parameter_quotes_key_and_value(family: str, key: str, value: Any) -> None:
    with pytest.raises(ConfigError) as e:
        obj()({"model": family, key: value}, FakeCtx())
    assert key in str(e.value) and repr(value) in str(e.value)


def test_defaults_and_unlimited_depth() -> None:
    s = family_settings("random_forest", {"max_depth": 0, "max_features": "all"})
    assert s["max_depth"] is None and s["max_features"] is None and s["n_estimators"] == 100
    assert family_settings("gradient_boosting", {})["max_iter"] == 100
    assert family_settings("logistic_regression", {})["penalty"] == "l2"
    assert family_settings("svm", {"gamma": 0.01})["gamma"] == 0.01


def test_proba_metrics_match_sklearn_log_loss() -> None:
    from sklearn.metrics import log_loss

    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=50)
    y = rng.integers(0, 4, 50)
    loss, acc = proba_metrics(p, y)
    assert loss == pytest.approx(log_loss(y, p, labels=range(4)))
    assert acc == pytest.approx(float((p.argmax(1) == y).mean()))


def test_check_space_rejects_unknown_family_and_bad_choices() -> None:
    o = obj()
    good = Space(
        model=Choice(
            {
                "svm": Space(C=Float(0.1, 10, log=True)),
                "random_forest": Space(max_features=Categorical(["sqrt", "all"])),
                "mlp": Space(width=Int(8, 64)),
            }
        )
    )
    o.check_space(good)
    with pytest.raises(ConfigError, match=r"'xgboost'.*allowed: mlp, cnn, svm"):
        o.check_space(Space(model=Choice({"svm": None, "xgboost": None})))
    with pytest.raises(ConfigError, match=r"model=logistic_regression/penalty.*'l1'"):
        o.check_space(Space(model=Choice({"logistic_regression": Space(penalty=Categorical(["l2", "l1"]))})))

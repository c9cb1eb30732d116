"""Trackers and exports (rdhpo_hpc.integrations): TensorBoard event files, an Optuna journal that
Optuna itself loads, MLflow runs.  TensorBoard and Optuna are installed by ``make install``; the
real MLflow test runs where ``mlflow-skinny`` is installed (the ``mlflow`` extra, not in
``make install``), the other one checks the calls with a stand-in ``mlflow`` module."""

from __future__ import annotations

import glob
import math
import sys
import types

import pytest

import rdhpo_hpc as rd
from rdhpo_hpc.integrations import mlflow as rd_mlflow
from rdhpo_hpc.integrations.optuna_journal import export
from rdhpo_hpc.integrations.tensorboard import TensorBoardCallback

SPACE = rd.Space(lr=rd.Float(1e-4, 1e-1, log=True), width=rd.Int(2, 64, log=True), act=rd.Categorical(["relu", "tanh"]))
KW = dict(progress_interval=1000, seed=2)


def obj(config, ctx):
    value = math.log10(config["lr"]) ** 2
    for step in (1, 2, 3):
        ctx.report(step, value + 1.0 / step)
    if config["act"] == "tanh" and config["width"] > 32:
        raise RuntimeError("too wide")
    return value


@pytest.mark.timeout(120)
def test_tensorboard_callback_writes_values_curves_and_hparams(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cb = TensorBoardCallback(str(tmp_path / "tb"))
    res = rd.optimize(obj, SPACE, max_trials=6, callbacks=[cb], **KW)
    cb.close()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    values = {e.step: e.value for e in acc.Scalars("trial/value")}
    assert values == pytest.approx({t.trial_id: t.value for t in res.completed})
    best = [e.value for e in acc.Scalars("study/best_value")]
    assert best[-1] == pytest.approx(res.best_value) and best == sorted(best, reverse=True)
    curve = acc.Scalars("trial-0/report")  # its learning curve, as reported
    assert [e.step for e in curve] == [1, 2, 3]
    v0 = math.log10(res.trials[0].params["lr"]) ** 2
    assert [e.value for e in curve] == pytest.approx([v0 + 1.0 / s for s in (1, 2, 3)], rel=1e-5)
    assert len(glob.glob(str(tmp_path / "tb" / "trial-*"))) == 6  # one HParams run per trial


@pytest.mark.timeout(120)
def test_optuna_journal_export_loads_in_optuna(tmp_path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    out = str(tmp_path / "s.h5")
    res = rd.optimize(obj, SPACE, max_trials=12, output=out, **KW)
    journal = str(tmp_path / "s.optuna.log")
    assert export(out, journal) == 12
    storage = JournalStorage(JournalFileBackend(journal))
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    assert len(study.trials) == 12
    states = {"COMPLETE": optuna.trial.TrialState.COMPLETE, "FAILED": optuna.trial.TrialState.FAIL}
    for t, o in zip(res.trials, study.trials):
        assert o.state == states[t.state]
        assert o.params == t.params and o.user_attrs["rdhpo_trial_id"] == t.trial_id
        if t.state == "COMPLETE":
            assert o.value == pytest.approx(t.value)
            assert o.intermediate_values == pytest.approx({s: t.value + 1.0 / s for s in (1, 2, 3)})
    assert study.best_value == pytest.approx(res.best_value) and study.best_params == res.best_params
    assert isinstance(study.trials[0].distributions["lr"], optuna.distributions.FloatDistribution)
    assert study.trials[0].distributions["lr"].log
    with pytest.raises(FileExistsError):
        export(out, journal)  # never replaced silently


class _FakeClient:
    runs: list = []

    def __init__(self, tracking_uri):
        self.uri = tracking_uri

    def get_experiment_by_name(self, name):
        return None

    def create_experiment(self, name):
        self.experiment = name
        return "7"

    def create_run(self, exp_id, run_name, tags):
        run = types.SimpleNamespace(info=types.SimpleNamespace(run_id=run_name), name=run_name, tags=tags, exp=exp_id)
        _FakeClient.runs.append(run)
        return run

    def log_batch(self, run_id, metrics, params):
        run = next(r for r in _FakeClient.runs if r.name == run_id)
        run.metrics, run.params = metrics, {p.key: p.value for p in params}

    def set_terminated(self, run_id, status):
        next(r for r in _FakeClient.runs if r.name == run_id).status = status


def test_mlflow_callback_logs_one_run_per_trial(tmp_path, monkeypatch):
    fake = types.ModuleType("mlflow")
    tracking = types.ModuleType("mlflow.tracking")
    entities = types.ModuleType("mlflow.entities")
    tracking.MlflowClient = _FakeClient
    entities.Metric = lambda key, value, ts, step: types.SimpleNamespace(key=key, value=value, step=step)
    entities.Param = lambda key, value: types.SimpleNamespace(key=key, value=value)
    for name, mod in (("mlflow", fake), ("mlflow.tracking", tracking), ("mlflow.entities", entities)):
        monkeypatch.setitem(sys.modules, name, mod)
    _FakeClient.runs = []
    cb = rd_mlflow.MLflowCallback(f"file:{tmp_path}/mlruns", experiment="exp")
    res = rd.optimize(obj, SPACE, max_trials=8, callbacks=[cb], **KW)
    assert [r.name for r in _FakeClient.runs] == [f"trial-{t.trial_id}" for t in res.trials]
    for t, run in zip(res.trials, _FakeClient.runs):
        assert run.exp == "7" and run.tags["rdhpo.state"] == t.state
        assert run.params == {**{k: str(v) for k, v in t.params.items()}}
        assert run.status == {"COMPLETE": "FINISHED", "FAILED": "FAILED"}[t.state]
        values = [m.value for m in run.metrics if m.key == "value"]
        assert values == ([pytest.approx(t.value)] if t.state == "COMPLETE" else [])
        assert [m.step for m in run.metrics if m.key == "report"] == [1, 2, 3]
        assert ("rdhpo.error" in run.tags) == (t.state == "FAILED")


@pytest.mark.timeout(120)
def test_mlflow_callback_with_real_mlflow_file_store(tmp_path):
    tracking = pytest.importorskip("mlflow.tracking", reason="mlflow-skinny not installed (extra 'mlflow')")
    uri = f"file:{tmp_path}/mlruns"
    res = rd.optimize(obj, SPACE, max_trials=4, callbacks=[rd_mlflow.MLflowCallback(uri, "exp")], **KW)
    client = tracking.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(f"trial-{t.trial_id}" for t in res.trials)

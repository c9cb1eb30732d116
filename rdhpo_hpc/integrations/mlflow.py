"""MLflow: one run per finished trial (params, value, learning curve, state) in a local file
store or any tracking URI (needs ``mlflow-skinny``: ``pip install 'rdhpo_hpc[mlflow]'``).

API: ``rd.optimize(..., callbacks=[MLflowCallback("file:///scratch/me/mlruns")])``.  YAML:
``callbacks: [rdhpo_hpc.integrations.mlflow:callback]`` logs to ``OUTPUT_mlruns/`` beside the
results file.  Then ``mlflow ui --backend-store-uri file:DIR`` (the ``mlflow`` package).  MLflow
3 keeps its file store in maintenance mode: for a ``file:`` URI this sets
``MLFLOW_ALLOW_FILE_STORE=true`` (MLflow's documented opt-in) unless it is set already.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Optional

from . import beside_results, require

_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAILED": "FAILED"}


class MLflowCallback:
    """``callback(trial, study)``: a run named ``trial-ID`` in experiment ``experiment`` (default:
    the study's name) with the trial's params, metric ``value`` (and ``report`` per reported step),
    tags ``rdhpo.state``, ``rdhpo.trial_id``, ``rdhpo.rank`` and ``rdhpo.error``."""

    def __init__(self, tracking_uri: Optional[str] = None, experiment: Optional[str] = None) -> None:
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self._client: Any = None
        self._experiment_id: Optional[str] = None

    def client(self, study: Any) -> tuple[Any, str]:
        if self._client is None:
            tracking = require("mlflow.tracking", "mlflow")
            if self.tracking_uri is None:
                self.tracking_uri = "file:" + os.path.abspath(beside_results(study, "_mlruns", "mlruns"))
            if self.tracking_uri.startswith("file:") or "://" not in self.tracking_uri:
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            self._client = tracking.MlflowClient(tracking_uri=self.tracking_uri)
            name = self.experiment or str(study.study.get("name") or "rdhpo")
            exp = self._client.get_experiment_by_name(name)
            self._experiment_id = exp.experiment_id if exp is not None else self._client.create_experiment(name)
        assert self._experiment_id is not None  # set with the client
        return self._client, self._experiment_id

    def __call__(self, trial: Any, study: Any) -> None:
        client, exp_id = self.client(study)
        entities = require("mlflow.entities", "mlflow")
        tags = {"rdhpo.trial_id": str(trial.trial_id), "rdhpo.state": trial.state, "rdhpo.rank": str(trial.rank)}
        if trial.error:
            tags["rdhpo.error"] = trial.error[-4000:]
        run = client.create_run(exp_id, run_name=f"trial-{trial.trial_id}", tags=tags)
        now = int(time.time() * 1000)
        metrics = [
            entities.Metric("report", float(v), now, int(step))
            for step, v in (trial.extra or {}).get("reports", [])
            if v is not None and math.isfinite(v)
        ]
        if trial.value is not None and math.isfinite(trial.value):
            metrics.append(entities.Metric("value", float(trial.value), now, 0))
        params = [entities.Param(str(k), str(v)) for k, v in trial.params.items()]
        if trial.budget is not None:
            params.append(entities.Param("rdhpo.budget", str(trial.budget)))
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        client.set_terminated(run.info.run_id, status=_STATUS.get(trial.state, "FINISHED"))


_by_uri: dict[str, MLflowCallback] = {}


def callback(trial: Any, study: Any) -> None:
    """For YAML ``callbacks:``: an :class:`MLflowCallback` logging beside the results file."""
    key = beside_results(study, "_mlruns", "mlruns")
    cb = _by_uri.get(key)
    if cb is None:
        cb = _by_uri[key] = MLflowCallback("file:" + os.path.abspath(key))
    cb(trial, study)

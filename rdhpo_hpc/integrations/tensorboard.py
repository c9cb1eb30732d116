"""TensorBoard: each finished trial's value, the best so far, its learning curve and its
hyper-parameters (the HPARAMS tab), through ``torch.utils.tensorboard`` (needs the
``tensorboard`` package: ``pip install 'rdhpo_hpc[tensorboard]'``).

API: ``rd.optimize(..., callbacks=[TensorBoardCallback("runs/study")])``.  YAML:
``callbacks: [rdhpo_hpc.integrations.tensorboard:callback]`` writes to ``OUTPUT_tensorboard/``
beside the results file.  Then ``tensorboard --logdir DIR``.
"""

from __future__ import annotations

import math
import os
from typing import Any, Optional

from . import beside_results, require


class TensorBoardCallback:
    """``callback(trial, study)``: writes to ``log_dir`` (default: beside the results file).

    Scalars ``trial/value`` and ``study/best_value`` at step = trial id, ``trial-ID/report`` per
    reported step, and one HParams run per trial (``trial-ID``) with its params and value."""

    def __init__(self, log_dir: Optional[str] = None) -> None:
        self.log_dir = log_dir
        self._writer: Any = None

    def writer(self, study: Any) -> Any:
        if self._writer is None:
            tb = require("torch.utils.tensorboard", "tensorboard")
            self.log_dir = self.log_dir or beside_results(study, "_tensorboard", os.path.join("runs", "rdhpo"))
            self._writer = tb.SummaryWriter(log_dir=self.log_dir)
        return self._writer

    def __call__(self, trial: Any, study: Any) -> None:
        w = self.writer(study)
        tid = trial.trial_id
        finite = trial.value is not None and math.isfinite(trial.value)
        if finite:
            w.add_scalar("trial/value", trial.value, tid)
        best = study.best_trial
        if best is not None and best.value is not None:
            w.add_scalar("study/best_value", best.value, tid)
        for step, value in (trial.extra or {}).get("reports", []):  # its learning curve
            if value is not None:
                w.add_scalar(f"trial-{tid}/report", value, int(step))
        hparams = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in trial.params.items()}
        metrics = {"hparam/value": trial.value if finite else float("nan")}
        w.add_hparams(hparams, metrics, run_name=f"trial-{tid}")
        w.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


_by_dir: dict[str, TensorBoardCallback] = {}


def callback(trial: Any, study: Any) -> None:
    """For YAML ``callbacks:``: a :class:`TensorBoardCallback` writing beside the results file."""
    key = beside_results(study, "_tensorboard", os.path.join("runs", "rdhpo"))
    cb = _by_dir.get(key)
    if cb is None:
        cb = _by_dir[key] = TensorBoardCallback(key)
    cb(trial, study)

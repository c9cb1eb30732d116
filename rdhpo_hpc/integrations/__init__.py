"""Ready-made callbacks and exports for the tools people track studies with.

* :mod:`.tensorboard` — ``TensorBoardCallback(log_dir)`` (extra ``tensorboard``; torch's writer);
* :mod:`.mlflow` — ``MLflowCallback(tracking_uri)``, one MLflow run per trial (extra ``mlflow``);
* :mod:`.optuna_journal` — ``export(results_path, out_path)``: a results file as an Optuna
  journal, for ``optuna-dashboard`` or ``optuna.load_study`` (extra ``optuna``).

Each callback is called as ``callback(trial, study)`` on rank 0 (see :mod:`rdhpo_hpc.callbacks`);
each module imports its library only when used, with a clear message when it is missing.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any, Optional


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise ImportError saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"this rdhpo integration needs {module!r}: pip install 'rdhpo_hpc[{extra}]' ({type(exc).__name__}: {exc})"
        ) from None


def beside_results(study: Any, suffix: str, default: str) -> str:
    """A directory next to the study's results file (``results/NAME_SUFFIX``), else ``default``."""
    path: Optional[str] = getattr(study, "path", None)
    return os.path.splitext(path)[0] + suffix if path else default

"""Built-in datasets, models, device binding and the built-in objective: the ONLY torch user.

Importing this package is cheap: torch (and scikit-learn) load on first use of a function that
needs them.  Called by the worker (``pick_device``, ``describe_device``, the objective) and by the
CLI / api (``make_builtin_objective`` from the config's ``objective`` section).
"""

from __future__ import annotations

from typing import Any

from .builtin import BuiltinObjective, make_builtin_objective
from .datasets import Dataset, load_dataset
from .device import describe_device, pick_device

__all__ = [
    "load_dataset",
    "Dataset",
    "build_model",
    "make_builtin_objective",
    "BuiltinObjective",
    "pick_device",
    "describe_device",
]


def __getattr__(name: str) -> Any:
    if name == "build_model":  # models.py imports torch at module level
        from .models import build_model

        return build_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

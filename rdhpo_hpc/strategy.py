"""User-facing strategy names -> (optimizer, scheduler) pair, with options split between them.

``optimizer="asha"`` means random sampling inside the ASHA scheduler; ``"bohb"`` model-based
sampling inside Hyperband, and so on.  Options go to whichever of the two declares them.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import ConfigError
from .optimizers import REGISTRY as OPTIMIZERS
from .optimizers import Optimizer
from .schedulers import REGISTRY as SCHEDULERS
from .schedulers import Scheduler
from .space import Space

#: strategy name -> (optimizer name, scheduler name)
STRATEGIES: dict[str, tuple[str, str]] = {"random": ("random", "fifo"), "grid": ("grid", "fifo")}
# multi-fidelity and population strategies (schedulers/): random sampling inside, BOHB model-based
STRATEGIES["sh"] = ("random", "sh")
STRATEGIES["hyperband"] = ("random", "hyperband")
STRATEGIES["asha"] = ("random", "asha")
STRATEGIES["bohb"] = ("bohb", "hyperband")
STRATEGIES["pbt"] = ("random", "pbt")
STRATEGIES["bayes"] = ("bayes", "fifo")
STRATEGIES["evolution"] = ("evolution", "fifo")


def _load(path: str) -> Any:
    module, cls = path.split(":")
    return getattr(importlib.import_module(module), cls)


def strategy_names() -> list[str]:
    return sorted(STRATEGIES)


def make_strategy(
    name: str, space: Space, direction: str = "minimize", seed: int = 0, **options: Any
) -> tuple[Optimizer, Scheduler]:
    """Build the optimizer and scheduler of strategy ``name``; unknown options raise ConfigError."""
    if name not in STRATEGIES:
        raise ConfigError(f"unknown optimizer {name!r}; allowed: {strategy_names()}")
    opt_name, sched_name = STRATEGIES[name]
    opt_cls, sched_cls = _load(OPTIMIZERS[opt_name]), _load(SCHEDULERS[sched_name])
    unknown = set(options) - set(opt_cls.options) - set(sched_cls.options)
    if unknown:
        allowed = sorted(set(opt_cls.options) | set(sched_cls.options))
        raise ConfigError(f"optimizer {name!r}: unknown option(s) {sorted(unknown)}; allowed: {allowed}")
    opt_opts = {k: v for k, v in options.items() if k in opt_cls.options}
    sched_opts = {k: v for k, v in options.items() if k in sched_cls.options and k not in opt_opts}
    optimizer = opt_cls(space, direction=direction, seed=seed, **opt_opts)
    scheduler = sched_cls(direction=direction, seed=seed, **sched_opts)
    return optimizer, scheduler

"""Optimizers by name.  ``make_optimizer("random", space, direction, seed, **options)``."""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigError
from ..space import Space
from .base import Optimizer

#: name -> "module:Class"; modules are imported lazily (skopt only loads for 'bayes')
REGISTRY: dict[str, str] = {
    "bohb": "rdhpo_hpc.optimizers.bohb:BOHBSampler",  # model-based sampler inside Hyperband
    "mobster": "rdhpo_hpc.optimizers.mobster:MobsterSampler",  # GP over (config, budget) inside ASHA
    "random": "rdhpo_hpc.optimizers.random:RandomSearch",
    "grid": "rdhpo_hpc.optimizers.grid:GridSearch",
    "bayes": "rdhpo_hpc.optimizers.bayes:BayesOptimizer",  # GP / tree Bayesian optimization
    "evolution": "rdhpo_hpc.optimizers.evolution:RegularizedEvolution",  # aging evolution
}


def make_optimizer(name: str, space: Space, direction: str = "minimize", seed: int = 0, **options: Any) -> Optimizer:
    if name not in REGISTRY:
        raise ConfigError(f"unknown optimizer {name!r}; allowed: {sorted(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    factory: type[Optimizer] = getattr(importlib.import_module(module), cls)
    return factory(space, direction=direction, seed=seed, **options)


__all__ = ["Optimizer", "REGISTRY", "make_optimizer"]

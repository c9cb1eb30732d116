"""Asynchronous regularized evolution (Real et al. 2019, "aging evolution") — ``optimizer: evolution``.

* The population is the ``population_size`` most recently *finished* trials (COMPLETE or
  PRUNED); the oldest member dies when a new one arrives (aging, not the worst).
* Until the population is full (counting pending trials, so that many workers do not all wait),
  configs are sampled at random from the space.
* Afterwards each ``ask`` draws ``sample_size`` members at random (tournament), takes the best
  and mutates it.  No generation barrier: every ask is answered at once from the current
  population, which suits asynchronous workers.
* Mutation works in the unit cube of ``space.encode``: ``n_mutations`` active dims of the parent
  are changed — numeric dims by a Gaussian step of ``mutation_scale`` (or re-drawn with
  probability 0.2), categoricals to another value.  A conditional ``Choice`` dim is picked with
  probability ``branch_switch``; switching branch draws the new branch's params at random.
  Steps (``step``) and ints are respected by ``space.decode``.  A child equal to its parent is
  mutated again (a few tries).
* FAILED trials never join the population (so a crashing config has no offspring); they leave
  no pending entry.  Deterministic given the seed and the ask/tell sequence.
"""

from __future__ import annotations

import collections
import math
from typing import Any, Optional, cast

import numpy as np

from .. import validate
from ..errors import ConfigError
from ..space import Categorical, Choice, Fixed
from ..trial import TrialState
from .base import Optimizer


class RegularizedEvolution(Optimizer):
    name = "evolution"
    snapshot_every = 1000  # asks change the RNG only (the population follows the tells)
    options = {"population_size": 20, "sample_size": 5, "n_mutations": 1, "mutation_scale": 0.15, "branch_switch": 0.2}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = self.opts
        for key, lo in (("population_size", 2), ("sample_size", 1), ("n_mutations", 1)):
            validate.integer(o[key], f"optimizer 'evolution': option {key!r}", lo)
        if o["sample_size"] > o["population_size"]:
            raise ConfigError(
                f"optimizer 'evolution': sample_size ({o['sample_size']!r}) must be <= "
                f"population_size ({o['population_size']!r})"
            )
        for key, hi in (("mutation_scale", math.inf), ("branch_switch", 1.0)):
            validate.number(o[key], f"optimizer 'evolution': option {key!r}", 0, hi)
        #: (params, loss) of the most recent finished trials, oldest first
        self.population: collections.deque[tuple[dict[str, Any], float]] = collections.deque(
            maxlen=o["population_size"]
        )

    def _observe(self, trial_id: int, params: dict[str, Any], state: TrialState, value: Optional[float]) -> None:
        if value is not None:
            self.population.append((params, self.loss(value)))

    def _suggest(self, trial_id: int) -> Optional[dict[str, Any]]:
        if len(self.population) + len(self.pending) < self.opts["population_size"] or not self.population:
            return self.space.sample(self.rng)
        k = min(self.opts["sample_size"], len(self.population))
        picks = self.rng.choice(len(self.population), size=k, replace=False)
        parent = min((self.population[int(i)] for i in picks), key=lambda m: m[1])[0]
        for _ in range(10):
            child = self.mutate(parent)
            if child != parent:
                return child
        return self.space.sample(self.rng)

    def mutate(self, parent: dict[str, Any]) -> dict[str, Any]:
        space, rng = self.space, self.rng
        u = space.encode(parent)
        active = {d.key for d in space.active_dims(parent)}
        inactive = [i for i, d in enumerate(space.dims) if d.key not in active]
        u[inactive] = rng.random(len(inactive))  # a newly activated branch starts at random
        cand = [i for i, d in enumerate(space.dims) if d.key in active and not isinstance(d.param, Fixed)]
        choices = [
            i for i in cand if isinstance(space.dims[i].param, Choice) and cast(Choice, space.dims[i].param).branches
        ]
        others = [i for i in cand if i not in choices]
        for _ in range(self.opts["n_mutations"]):
            if not cand:
                break
            if choices and (not others or rng.random() < self.opts["branch_switch"]):
                i = int(choices[int(rng.integers(len(choices)))])
            else:
                i = int(others[int(rng.integers(len(others)))])
            p = space.dims[i].param
            if isinstance(p, Categorical):
                n = len(p.choices)
                if n > 1:
                    cur = min(int(u[i] * n), n - 1)
                    new = int(rng.integers(n - 1))
                    new += new >= cur
                    u[i] = (new + 0.5) / n
            elif rng.random() < 0.2:
                u[i] = rng.random()
            else:
                u[i] = float(np.clip(u[i] + rng.normal(0.0, self.opts["mutation_scale"]), 0.0, 1.0))
        return space.decode(u)

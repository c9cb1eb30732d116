"""Random search: independent samples from the space (conditional branches included)."""

from __future__ import annotations

from typing import Any, Optional

from .base import Optimizer


class RandomSearch(Optimizer):
    """Uniform sampling (log-uniform for log dims); seeded, so replay gives the same sequence."""

    name = "random"
    snapshot_every = 1000  # the RNG is all that asks change

    def _suggest(self, trial_id: int) -> Optional[dict[str, Any]]:
        return self.space.sample(self.rng)

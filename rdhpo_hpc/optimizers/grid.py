"""Exhaustive grid search with a user-set degree of tweaking per dimension."""

from __future__ import annotations

from typing import Any, Iterator, Optional

from .. import validate
from ..errors import ConfigError
from .base import Optimizer


class GridSearch(Optimizer):
    """Every grid point once, in order (or shuffled with ``shuffle: true``).

    Options: ``degree`` — points per numeric dimension, an int for all or a mapping
    ``{name: points}`` (names or dotted keys for conditional branches); numeric dims with a
    ``step`` and no degree use every step.  The grid over a conditional space is the union of
    the grids of its branches.
    """

    name = "grid"
    options = {"degree": 5, "shuffle": False}
    snapshot_every, ask_state = 1000, ("_next",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        degree = self.opts["degree"]
        bad = degree.values() if isinstance(degree, dict) else [degree]
        for d in bad:
            if not validate.is_integer(d) or d < 1:
                raise ConfigError(
                    f"optimizer 'grid': degree must be an integer >= 1 (or a mapping of names to such), got {degree!r}"
                )
        self.points = list(self.space.grid(degree))
        if self.opts["shuffle"]:
            self.rng.shuffle(self.points)
        self._next = 0

    def _suggest(self, trial_id: int) -> Optional[dict[str, Any]]:
        if self._next >= len(self.points):
            return None
        self._next += 1
        return dict(self.points[self._next - 1])

    @property
    def exhausted(self) -> bool:
        return self._next >= len(self.points)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.points)

"""Hyperband (Li et al. 2018) without barriers: several successive-halving brackets.

Bracket ``s`` (``s = 0 .. brackets-1``, at most ``s_max + 1`` with ``s_max`` the number of
times ``min_budget`` fits ``eta``-fold below ``max_budget``) starts its rung ladder at
``min_budget * eta**s`` and holds ``n_s = ceil((s_max + 1) / (s_max - s + 1) * eta**(s_max - s))`` trials per
instance, as in the paper.  Bracket types are taken round-robin, one whole instance at a time,
in creation order: trials ``0 .. n_0-1`` form an instance of bracket 0, the next ``n_1`` one of
bracket 1, ..., then bracket 0 again (the paper's loop over ``s``, without its barriers).  Inside an instance the
promotion rule is the one of :class:`~rdhpo_hpc.schedulers.sh.SuccessiveHalving`.  Bracket
``s_max`` has no rung below ``max_budget``: its trials run the full budget (the paper's
"random search" bracket).  Used by the ``hyperband`` (random sampling) and ``bohb``
(model-based sampling) strategies.
"""

from __future__ import annotations

import math
from typing import Any

from .. import validate
from .rungs import RungScheduler
from .sh import SuccessiveHalving


class Hyperband(SuccessiveHalving):
    name = "hyperband"
    options: dict[str, Any] = {**RungScheduler.options, "brackets": None}

    def _bracket_types(self) -> list[tuple[int, int]]:
        b = self.opts["brackets"]
        if b is None:
            b = self.s_max + 1
        else:
            b = validate.integer(
                b,
                f"scheduler {self.name!r}: 'brackets'",
                1,
                self.s_max + 1,
                note=f" for min_budget={self.opts['min_budget']!r}, "
                f"max_budget={self.opts['max_budget']!r}, eta={self.opts['eta']!r}",
            )
        return [
            (s, int(math.ceil((self.s_max + 1) / (self.s_max - s + 1) * self.eta ** (self.s_max - s) - 1e-9)))
            for s in range(b)
        ]

"""Successive halving (Jamieson & Talwalkar 2016) without barriers, in both modes of :mod:`.rungs`.

Trials are grouped, in creation order, into bracket instances of a fixed size ``n``
(option ``bracket_size``; default ``eta**s_max`` so that one trial reaches ``max_budget``).
Rung ``k`` of the ladder ``min_budget * eta**k`` lets ``q_k+1 = max(1, floor(n / eta**(k+1)))``
trials of the instance through.  A trial at rung ``k`` whose value is beaten by ``b`` recorded
values of its instance at that rung, with ``u`` instance members that may still reach the rung
(not yet created, or running below it; a trial that ended below the rung cannot):

* ``b >= q``      -> stop now (it can no longer be among the best ``q``);
* ``b + u < q``   -> passes (it is among the best ``q`` whatever the others do);
* otherwise       -> not known yet: it continues (optimistic) and is judged again at each of
  its later reports, so it is stopped as soon as ``q`` better values have arrived.

Synchronous SH keeps exactly the best ``q`` at each rung; this rule keeps those and, because a
trial may pass a rung before its rivals report, at most some extra trials that were optimistically
continued — it never makes a worker wait.  In ``mode: promote`` a waiting configuration is
promoted only once it passes (``b + u < q``) and never when ``b >= q``: exactly the best ``q`` of
each rung go on, as in synchronous SH, while idle workers start the next instance instead of
waiting.  :class:`Hyperband` is several of these brackets.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from .. import validate
from .rungs import RungScheduler, TrialRungs, max_halvings


class SuccessiveHalving(RungScheduler):
    name = "sh"
    options: dict[str, Any] = {**RungScheduler.options, "bracket_size": None}

    def __init__(self, direction: str = "minimize", seed: int = 0, **options: Any) -> None:
        super().__init__(direction=direction, seed=seed, **options)
        self.s_max = max_halvings(self.min_budget, self.max_budget, self.eta)
        self.bracket_types = self._bracket_types()  # [(s, n_s), ...] in round-robin order
        self.cycle = sum(n for _, n in self.bracket_types)  # trials in one round of instances

    def _bracket_types(self) -> list[tuple[int, int]]:
        n = self.opts["bracket_size"]
        if n is None:
            n = int(math.ceil(self.eta**self.s_max - 1e-9))
        else:
            n = validate.integer(n, f"scheduler {self.name!r}: 'bracket_size'", 1, note=" or null")
        return [(0, n)]

    def _place(self, index: int) -> tuple[tuple[int, ...], int]:
        """Instances fill one after the other, bracket types taken round-robin:
        ``n_0`` configurations of bracket 0, then ``n_1`` of bracket 1, ..., then bracket 0 again."""
        rnd, pos = divmod(index, self.cycle)
        for s, n in self.bracket_types:
            if pos < n:
                return (s, rnd), s
            pos -= n
        raise AssertionError("unreachable: pos < cycle")

    def quota(self, s: int, k: int) -> int:
        """How many trials of an instance of bracket ``s`` pass its local rung ``k``."""
        n = dict(self.bracket_types)[s]
        return max(1, int(math.floor(n / self.eta ** (k + 1) + 1e-9)))

    def _judge(self, t: TrialRungs, k: int) -> Optional[bool]:
        s, _ = t.group
        q = self.quota(s, k)
        better, m = self.better_than(t, k)
        if better >= q:
            return False
        n = dict(self.bracket_types)[s]
        members = self.members.get(t.group, [])
        cannot = sum(1 for root in members if self.can_never_reach(self.configs[root], k))
        could_still = n - m - cannot  # includes members not created yet
        return True if better + could_still < q else None

"""ASHA — asynchronous successive halving (Li et al. 2020), in both modes of :mod:`.rungs`.

One bracket, rungs ``min_budget * eta**k``.  With ``m`` values recorded at rung ``k`` so far:

* ``mode: stop`` — a trial that reaches rung ``k`` continues iff its value ranks among the best
  ``max(1, floor(m / eta))`` of them (its own included): the top ``1/eta`` of what the rung has
  seen, and for the first ``eta - 1`` arrivals only a new best passes.  Decided at once, never
  revisited: no trial waits.
* ``mode: promote`` — the paper's rule: a configuration waiting at rung ``k`` is promoted when it
  ranks among the best ``floor(m / eta)`` values of the rung; the highest rung is served first.
  When nothing can be promoted, a new configuration starts at rung 0: no worker waits either.
"""

from __future__ import annotations

from typing import Optional

from .rungs import RungScheduler, TrialRungs


class ASHA(RungScheduler):
    name = "asha"
    options = dict(RungScheduler.options)

    def _place(self, index: int) -> tuple[tuple[int, ...], int]:
        return (0,), 0

    def _judge(self, t: TrialRungs, k: int) -> Optional[bool]:
        better, m = self.better_than(t, k)
        if self.promote:
            return True if better < m // self.eta else None  # m only grows: maybe later
        return better < max(1, int(m // self.eta))

    def _decisive(self) -> bool:
        return not self.promote  # stop mode decides at once: pass or stop

    def _promotion(self) -> Optional[TrialRungs]:
        """The best waiting configuration among the top ``floor(m / eta)`` of the highest rung
        that has one: a scan of each rung's ranking, cheaper than judging every waiting one."""
        group = (0,)
        rungs = self.tables.get(group, {})
        for k in sorted(rungs, reverse=True):
            ranked = self.ranked.get((group, k))
            if ranked is None:
                continue
            for _, root in ranked.head(int(len(ranked) // self.eta)):
                t = self.configs[root]
                if t.waiting == k:
                    return t
        return None

"""PBT's exploit rule, pinned on a hand-made population (the lineage bookkeeping, exploration
factors and replay: tests/unit/test_scheduler_contract.py)."""

from __future__ import annotations

import rdhpo_hpc as rd
from rdhpo_hpc.optimizers.random import RandomSearch
from rdhpo_hpc.schedulers.pbt import PBT
from rdhpo_hpc.trial import TrialState

SPACE = rd.Space(lr=rd.Float(1e-3, 1.0, log=True))


def population(scores: list[float], rounds: int = 1) -> tuple[PBT, list]:
    """Start ``len(scores)`` members and end ``rounds`` trials of each, members in order, with
    these losses; returns the scheduler and each member's next suggestion."""
    opt = RandomSearch(SPACE, seed=0)
    pbt = PBT(population=len(scores), interval=2, quantile=0.25, seed=0)
    nxt = [pbt.next_trial(opt, tid) for tid in range(len(scores))]
    for r in range(rounds):
        for m, s in enumerate(scores):
            pbt.on_result(r * 100 + m, TrialState.COMPLETE, s)
        nxt = [pbt.next_trial(opt, (r + 1) * 100 + m) for m in range(len(scores))]
    return pbt, nxt


def test_members_exploit_only_once_the_whole_population_is_scored() -> None:
    # 8 members, quantile 0.25: c = 2.  First round: only the last member to end (7, the worst)
    # sees every score, so only it copies a best member (0 or 1); the others continue
    pbt, nxt = population([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    assert [s.info["exploited_from"] is None for s in nxt] == [True] * 7 + [False]
    assert nxt[7].info["exploited_from"] in (0, 1) and nxt[7].checkpoint_from == nxt[7].info["exploited_from"]
    # second round: the worst two (6 and 7) copy trials of the best two, the others continue
    pbt, nxt = population([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], rounds=2)
    for m, s in enumerate(nxt):
        donor = s.info["exploited_from"]
        if m in (6, 7):
            assert donor in (0, 1) and s.checkpoint_from == 100 + donor and s.info["generation"] == 2
            assert s.params != pbt.members[donor].params  # explored
        else:
            assert donor is None and s.checkpoint_from == 100 + m  # its own lineage

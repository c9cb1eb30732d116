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


def test_a_scored_member_waits_until_the_whole_population_is_scored() -> None:
    # a member that went on alone would reach max_budget unjudged while slow ranks still start
    opt = RandomSearch(SPACE, seed=0)
    pbt = PBT(population=3, interval=1, max_budget=4, seed=0)
    for tid in range(3):
        pbt.next_trial(opt, tid)
    pbt.on_result(0, TrialState.COMPLETE, 0.5)
    assert pbt.next_trial(opt, 3) is None  # members 1 and 2 are still running their first trial
    pbt.on_result(1, TrialState.COMPLETE, 0.1)
    assert pbt.next_trial(opt, 3) is None
    pbt.on_result(2, TrialState.COMPLETE, 0.3)  # the population is scored: both waiting are decided
    first, second = pbt.next_trial(opt, 3), pbt.next_trial(opt, 4)
    assert first is not None and second is not None
    assert first.info["member"] == 0 and first.info["exploited_from"] == 1  # the worst copies the best
    assert second.info["member"] == 1 and second.info["exploited_from"] is None


def test_a_member_that_fails_for_good_does_not_hold_the_waiting_ones() -> None:
    class Exhausted(RandomSearch):
        def ask(self, trial_id: int):  # type: ignore[no-untyped-def]
            return None if trial_id >= 2 else super().ask(trial_id)

    opt = Exhausted(SPACE, seed=0)
    pbt = PBT(population=2, interval=1, seed=0)
    pbt.next_trial(opt, 0), pbt.next_trial(opt, 1)
    pbt.on_result(1, TrialState.FAILED, None)  # nothing scored to copy: it restarts ...
    pbt.on_result(0, TrialState.COMPLETE, 0.5)  # (member 0 waits for member 1)
    assert pbt.next_trial(opt, 2) is None  # ... but no config is left, so its lineage ends
    nxt = pbt.next_trial(opt, 3)
    assert nxt is not None and nxt.info["member"] == 0  # and member 0 goes on


def test_members_exploit_only_once_the_whole_population_is_scored() -> None:
    # 8 members, quantile 0.25: c = 2.  First round: the members wait until all eight are scored,
    # then the worst two (6 and 7) copy a best member (0 or 1); the others continue
    pbt, nxt = population([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    assert [s.info["exploited_from"] is None for s in nxt] == [True] * 6 + [False] * 2
    for s in nxt[6:]:
        assert s.info["exploited_from"] in (0, 1) and s.checkpoint_from == s.info["exploited_from"]
    # second round: the worst two (6 and 7) copy trials of the best two, the others continue
    pbt, nxt = population([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], rounds=2)
    for m, s in enumerate(nxt):
        donor = s.info["exploited_from"]
        if m in (6, 7):
            assert donor in (0, 1) and s.checkpoint_from == 100 + donor and s.info["generation"] == 2
            assert s.params != pbt.members[donor].params  # explored
        else:
            assert donor is None and s.checkpoint_from == 100 + m  # its own lineage

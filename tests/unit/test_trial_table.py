"""The trial table's rank bookkeeping against the obvious (slow) formulas: idle ranks lowest
first, pipelined slots round-robin by queue length — the same answers in O(what is returned)."""

from __future__ import annotations

import random

import pytest

from rdhpo_hpc.coordination.table import IdleRanks, TrialTable
from rdhpo_hpc.trial import Suggestion

pytestmark = pytest.mark.timeout(30)


def test_idle_ranks_are_offered_lowest_first_once_each_and_kept_when_not_taken():
    idle = IdleRanks()
    for r in (5, 3, 9, 1):
        idle.add(r)
    idle.discard(9)
    idle.add(9)  # a duplicate heap entry: still offered once
    seen = []

    def take(rank):
        seen.append(rank)
        if rank == 3:
            idle.discard(rank)  # given work
        return rank != 5  # nothing more after rank 5

    assert idle.offer(take) is False
    assert seen == [1, 3, 5] and list(idle) == [1, 5, 9] and len(idle) == 3
    assert 3 not in idle and 5 in idle


def test_pipeline_slots_and_idle_match_the_naive_formulas_under_random_operations():
    rng = random.Random(7)
    t = TrialTable()
    ranks = range(1, 40)
    unreachable = set(rng.sample(list(ranks), 4))
    now = 0.0
    for step in range(3000):
        now += 1.0
        op = rng.random()
        if op < 0.45:
            rank = rng.choice(ranks)
            tid = t.next_id
            t.add(tid, Suggestion({"x": tid}))
            t.start(rank, tid, now)
        elif op < 0.8 and t.running:
            rank = rng.choice(sorted(t.running))
            a = t.running[rank]
            t.end_attempt(rank, a.trial_id, a.attempt, now, reachable=rng.random() < 0.9, known=True)
        elif op < 0.9:
            t.take_assigned(rng.choice(ranks))
        else:  # a Hello from a rank with nothing to do
            rank = rng.choice(ranks)
            if rank not in t.running:
                t.idle.add(rank)
        depth = rng.choice([1, 2, 3, 4])
        busy = [r for r in sorted(t.running) if r not in unreachable]
        naive = []
        for level in range(1, depth):
            naive += [r for r in busy if len(t.queued.get(r, ())) < level]
        assert t.pipeline_slots(depth, lambda r: r not in unreachable) == naive, step
        assert not set(t.idle) & set(t.running)

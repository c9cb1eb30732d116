"""The rung ranking (schedulers/ranking.py) answers as a list kept sorted by ``bisect.insort``:
ranks, order, removals — with small blocks (many splits) and with inserts read one at a time or
in bulk (the numpy merge of a replay), ties and signed zeros included."""

from __future__ import annotations

import bisect
import random

import pytest

from rdhpo_hpc.schedulers.ranking import Ranking


@pytest.mark.parametrize("read_every", [1, 50, 10_000])
def test_ranking_answers_as_a_sorted_list(monkeypatch, read_every):
    monkeypatch.setattr(Ranking, "LOAD", 4)
    rnd = random.Random(read_every)
    ranking, ref = Ranking(), []
    for i in range(3000):
        if ref and rnd.random() < 0.15:
            item = rnd.choice(ref)
            ref.remove(item)
            ranking.remove(item)
        else:
            item = (rnd.choice([rnd.random(), 0.5, 0.0, -0.0, float("inf")]), rnd.randrange(100))
            bisect.insort(ref, item)
            ranking.add(item)
        if i % read_every == 0:
            probe = (rnd.choice([rnd.random(), 0.5, 0.0]), rnd.randrange(100))
            assert ranking.bisect_left(probe) == bisect.bisect_left(ref, probe)
            assert list(ranking.head(9)) == ref[:9] and len(ranking) == len(ref)
    assert list(ranking) == ref
    assert [str(loss) for loss, _ in ranking] == [str(loss) for loss, _ in ref]  # -0.0 kept as such
    with pytest.raises(ValueError):
        ranking.remove((2.0, 0))

"""Gossip membership state machine with a fake clock (pure; each test well under a second)."""

from __future__ import annotations

import random

import pytest

from rdhpo_hpc.errors import ConfigError
from rdhpo_hpc.faults import Fault, FaultPlan, check_ranks, parse_faults
from rdhpo_hpc.membership import Membership


def simulate(n, t_end, interval=0.5, t_fail=3.0, fanout=2, cut=(), dead_at=None, dt=0.05, seed=0):
    """Run n memberships in simulated time; messages arrive at the next tick. Returns (views, verdicts)."""
    rng = random.Random(seed)
    dead_at = dead_at or {}
    ms = [
        Membership(r, n, 0.0, interval=interval, fanout=fanout, t_fail=t_fail, rng=random.Random(rng.random()))
        for r in range(n)
    ]
    for m in ms:
        m.next_beat = rng.random() * interval
    cut = {frozenset(c) for c in cut}
    verdicts = []
    inflight = []
    t = 0.0
    while t < t_end:
        t = round(t + dt, 9)
        deliver, inflight = inflight, []
        for _src, dst, vec in deliver:
            if dst in dead_at and t >= dead_at[dst]:
                continue
            ms[dst].merge(vec, t)
        for r, m in enumerate(ms):
            if r in dead_at and t >= dead_at[r]:
                continue
            if m.due(t):
                for p in m.beat(t):
                    if frozenset((r, p)) not in cut:
                        inflight.append((r, p, list(m.heartbeats)))
            for v in m.check(t):
                verdicts.append((r, v, t))
    return ms, verdicts


def test_no_verdict_when_everyone_is_alive():
    _, verdicts = simulate(8, 20.0)
    assert verdicts == []


def test_crash_detected_after_t_fail_and_not_before():
    ms, verdicts = simulate(8, 12.0, dead_at={5: 2.0}, t_fail=3.0)
    by_rank = {}
    for observer, v, t in verdicts:
        assert v.rank == 5, f"false verdict {v} at rank {observer}"
        assert v.cause == "gossip-timeout"
        by_rank[observer] = t
        assert v.latency > 3.0
    assert set(by_rank) == set(range(8)) - {5}
    # rank 5's last heartbeat was in [1.5, 2.0]: detection after t_fail plus a few gossip rounds
    assert all(1.5 + 3.0 < t < 2.0 + 3.0 + 3.0 for t in by_rank.values()), by_rank


def test_cut_link_relayed_by_third_parties_gives_no_verdict():
    # 0 and 3 never exchange anything directly; the others carry 3's heartbeat to 0
    _, verdicts = simulate(6, 30.0, cut=[(0, 3)])
    assert verdicts == []


def test_cut_links_all_but_one_path_still_no_verdict():
    cut = [(0, k) for k in range(2, 6)]  # 0 hears only from 1
    _, verdicts = simulate(6, 30.0, cut=cut, t_fail=4.0)
    assert verdicts == []


def test_isolated_rank_is_declared_dead():
    cut = [(3, k) for k in range(6) if k != 3]
    _, verdicts = simulate(6, 10.0, cut=cut)
    assert {v.rank for obs, v, _ in verdicts if obs != 3} == {3}
    assert {obs for obs, v, _ in verdicts if obs != 3} == {0, 1, 2, 4, 5}


def test_dead_stays_fenced_after_late_heartbeat():
    m = Membership(0, 3, 0.0, interval=0.5, t_fail=2.0)
    m.merge([0, 5, 5], 0.5)
    assert m.check(1.0) == []
    m.merge([0, 5, 9], 2.9)  # rank 2 grew, rank 1 did not
    assert [v.rank for v in m.check(3.0)] == [1]
    assert not m.is_alive(1) and m.is_alive(2)
    m.merge([0, 100, 10], 3.5)  # rank 1 wakes up (it was only hung)
    assert not m.is_alive(1) and 1 not in m.alive()
    assert 1 not in m.beat(4.0)  # no gossip to a fenced member
    assert all(v.rank != 1 for v in m.check(4.0))
    assert m.forgettable(3.0 + 2 * 2.0 + 0.1) == [1]


def test_evidence_gives_immediate_verdict_with_latency():
    m = Membership(0, 4, 0.0, interval=0.5, t_fail=10.0)
    m.merge([0, 3, 3, 3], 1.0)
    v = m.evidence(2, 1.25, "mpi-failure")
    assert v.rank == 2 and v.cause == "mpi-failure"
    assert v.latency == pytest.approx(0.25)
    assert not m.is_alive(2)
    assert m.evidence(2, 1.3) is None  # already dead
    assert m.evidence(0, 1.3) is None  # never about itself


def test_beat_picks_fanout_live_peers_and_bumps_own_counter():
    m = Membership(1, 5, 0.0, interval=0.5, fanout=2, t_fail=2.0)
    m.evidence(3, 0.0)
    peers = m.beat(0.0)
    assert len(peers) == 2 and 1 not in peers and 3 not in peers
    assert m.heartbeats[1] == 1 and not m.due(0.2) and m.due(0.5)


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError):
        Membership(0, 2, 0.0, interval=1.0, t_fail=0.5)


def test_detection_time_grows_slowly_with_n():
    """Epidemic spread: detection ~ t_fail + O(log N) gossip rounds."""
    times = {}
    for n in (8, 64):
        _, verdicts = simulate(n, 14.0, dead_at={1: 1.0}, interval=0.25, t_fail=3.0, dt=0.05)
        last = max(t for _, v, t in verdicts if v.rank == 1)
        assert {v.rank for _, v, _ in verdicts} == {1}
        times[n] = last
    assert times[64] - times[8] < 2.0, times


# -- fault plans -----------------------------------------------------------------------------------
def test_parse_faults_accepts_the_documented_forms():
    fs = parse_faults(
        [
            {"cut": [3, 0], "at": 2.0},
            {"kill": 2, "at": 3},
            {"stop": 1, "at": 3.0},
            {"delay": [0, 1], "seconds": 0.5},
            {"cut": [1, 2], "at": 1, "until": 4},
        ]
    )
    assert fs[0] == Fault("cut", (0, 3), 2.0)
    assert fs[1].kind == "kill" and fs[1].ranks == (2,)
    assert fs[3].seconds == 0.5 and fs[3].at == 0.0
    assert fs[4].until == 4.0
    assert parse_faults(None) == [] and parse_faults([]) == []


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"cut": [0]}, "pair of ranks"),
        ({"cut": [1, 1]}, "two different ranks"),
        ({"kill": -1}, "rank must be"),
        ({"kill": 1, "at": -2}, "'at'"),
        ({"kill": 1, "cut": [0, 1]}, "exactly one"),
        ({"delay": [0, 1]}, "'seconds'"),
        ({"stop": 1, "seconds": 2}, "unknown key"),
        ({"cut": [0, 1], "at": 3, "until": 2}, "'until'"),
        ("kill 2", "mapping"),
    ],
)
def test_parse_faults_errors_quote_the_entry(bad, words):
    with pytest.raises(ConfigError) as err:
        parse_faults([bad])
    assert words in str(err.value) and "faults[0]" in str(err.value)


def test_faults_must_be_a_list_and_ranks_exist():
    with pytest.raises(ConfigError, match="must be a list"):
        parse_faults({"kill": 1})
    with pytest.raises(ConfigError, match="only 4 ranks"):
        check_ranks(parse_faults([{"cut": [0, 7]}]), 4)


def test_fault_plan_queries():
    plan = FaultPlan(
        parse_faults(
            [
                {"cut": [0, 3], "at": 2.0, "until": 5.0},
                {"delay": [3, 1], "seconds": 0.3},
                {"kill": 3, "at": 4.0},
                {"stop": 2, "at": 1.0},
            ]
        ),
        3,
    )
    assert plan.cut(1.0) == set() and plan.cut(2.5) == {0} and plan.cut(5.0) == set()
    assert plan.delay(1, 0.0) == 0.3 and plan.delay(0, 0.0) == 0.0
    assert plan.due_self(3.9) == [] and [f.kind for f in plan.due_self(4.0)] == ["kill"]
    assert plan.due_self(9.0) == []
    assert not FaultPlan([], 0)

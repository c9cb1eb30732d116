"""Membership protocols (vector gossip, SWIM) with a fake clock, and fault plans (pure; at most ~3 s a test)."""

from __future__ import annotations

import pickle
import random

import pytest

from rdhpo_hpc.config import fault_tolerance
from rdhpo_hpc.errors import ConfigError
from rdhpo_hpc.faults import Fault, FaultPlan, check_ranks, parse_faults
from rdhpo_hpc.membership import Membership, Swim, make
from rdhpo_hpc.membership.swim import ALIVE, PING, SUSPECT


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


# -- SWIM (rdhpo_hpc.membership.swim) through the View interface ---------------------------------
def run_views(
    kind, n, t_end, loss=0.0, down_at=None, resume_at=None, cut=(), interval=0.5, t_fail=3.0, seed=0, heal_at=None
):
    """n views of protocol ``kind`` in simulated time: each tick (dt) delivers the messages of the
    previous one (each lost with ``loss``), then ticks and checks every running rank.  ``down_at``:
    rank -> time it stops (crash or hang); ``resume_at``: rank -> time a stopped rank runs again;
    ``cut`` links drop everything, or with ``heal_at`` hold it until then (TCP: a link that comes
    back delivers what was sent while it was down).
    Returns (views, verdicts as (observer, Verdict, time), bodies sent)."""
    rng = random.Random(seed)
    views = [make(kind, r, n, 0.0, interval, 2, t_fail, rng=random.Random(rng.random())) for r in range(n)]
    down_at, resume_at = down_at or {}, resume_at or {}
    cut = {frozenset(c) for c in cut}

    def running(r, t):
        return not (r in down_at and down_at[r] <= t < resume_at.get(r, float("inf")))

    verdicts, sent, inflight, held, t = [], [], [], [], 0.0
    while t < t_end:
        t = round(t + 0.05, 9)
        deliver, inflight = inflight, []
        if heal_at is not None and t >= heal_at:
            deliver, held = held + deliver, []
        outs = [(dst, views[dst].receive(src, body, t)) for src, dst, body in deliver if running(dst, t)]
        outs += [(r, v.tick(t)) for r, v in enumerate(views) if running(r, t)]
        for src, out in outs:
            for dst, body in out:
                sent.append(body)
                if frozenset((src, dst)) in cut and (heal_at is None or t < heal_at):
                    if heal_at is not None:
                        held.append((src, dst, body))
                elif rng.random() >= loss:
                    inflight.append((src, dst, body))
        for r, v in enumerate(views):
            if running(r, t):
                verdicts += [(r, x, t) for x in v.check(t)]
    return views, verdicts, sent


def test_swim_no_false_verdict_with_one_percent_loss():
    views, verdicts, _ = run_views("swim", 40, 40.0, loss=0.01)
    assert verdicts == []
    assert all(v.alive() == list(range(40)) for v in views)


def test_swim_crash_detected_by_every_rank_after_t_fail_within_a_few_periods():
    _, verdicts, _ = run_views("swim", 30, 20.0, down_at={7: 2.0}, t_fail=3.0)
    when = {}
    for obs, v, t in verdicts:
        assert v.rank == 7, f"false verdict {v} at rank {obs}"
        assert v.cause == "gossip-timeout" and v.latency >= 3.0
        when[obs] = t
    assert set(when) == set(range(30)) - {7}
    # suspected within a few periods of the crash, dead t_fail later, spread in O(log N) periods
    assert all(2.0 + 3.0 < t < 2.0 + 3.0 + 10 * 0.5 for t in when.values()), when


def test_swim_hung_rank_that_wakes_up_stays_dead():
    views, verdicts, _ = run_views("swim", 12, 20.0, down_at={4: 1.0}, resume_at={4: 9.0}, t_fail=3.0)
    assert {obs for obs, v, _ in verdicts if v.rank == 4} >= set(range(12)) - {4}
    assert all(not v.is_alive(4) for r, v in enumerate(views) if r != 4)
    assert views[4].fenced  # it heard it was declared dead, and never refuted
    assert all(v.rank == 4 for obs, v, _ in verdicts if obs != 4), verdicts


def test_swim_cut_link_is_probed_around_and_isolated_rank_is_dead():
    _, verdicts, _ = run_views("swim", 6, 25.0, cut=[(0, 3), (1, 4)])
    assert verdicts == []
    _, verdicts, _ = run_views("swim", 6, 12.0, cut=[(3, k) for k in range(6) if k != 3])
    assert {v.rank for obs, v, _ in verdicts if obs != 3} == {3}
    assert {obs for obs, v, _ in verdicts if obs != 3} == {0, 1, 2, 4, 5}


def test_swim_partition_that_heals_the_cut_off_sides_verdicts_do_not_spread():
    # ranks 3 and 4 (one node) reach only each other for 6 s: they declare 0, 1, 2 dead, and the
    # others declare them dead; once healed, 3 and 4 must not kill 0, 1, 2 for everyone
    cut = [(a, b) for a in (3, 4) for b in (0, 1, 2)]
    views, verdicts, _ = run_views("swim", 5, 12.0, cut=cut, heal_at=6.0, interval=0.2, t_fail=2.0)
    assert {(o, v.rank) for o, v, _ in verdicts if o < 3} == {(o, r) for o in range(3) for r in (3, 4)}
    assert any(o >= 3 and v.rank < 3 for o, v, _ in verdicts)  # the cut-off side did reach verdicts
    assert all(views[o].alive() == [0, 1, 2] and not views[o].fenced for o in range(3))


def test_swim_suspicion_is_refuted_by_a_higher_incarnation():
    a = Swim(0, 3, 0.0, interval=0.5, t_fail=2.0)
    b = Swim(1, 3, 0.0, interval=0.5, t_fail=2.0)
    b.receive(2, (PING, 1, -1, ((0, SUSPECT, 0),)), 0.1)  # b hears that 0 is suspected
    assert b.is_suspected(0)
    (dest, ack), *_ = a.receive(2, (PING, 5, -1, ((0, SUSPECT, 0),)), 0.1)  # 0 hears it too: refutes
    assert a.incarnation == 1 and (0, ALIVE, 1) in ack[3]
    b.receive(0, ack, 0.2)
    assert not b.is_suspected(0) and b.check(5.0) == [] and b.is_alive(0)
    b.receive(2, (PING, 2, -1, ((0, SUSPECT, 0),)), 0.3)  # an old suspicion no longer counts
    assert not b.is_suspected(0)


def test_swim_unrefuted_suspicion_becomes_a_final_death():
    b = Swim(1, 3, 0.0, interval=0.5, t_fail=2.0)
    b.receive(2, (PING, 1, -1, ((0, SUSPECT, 0),)), 1.0)
    assert all(b.check(1.0 + 0.25 * k) == [] for k in range(1, 8))  # the pump checks often
    (v,) = b.check(3.0)
    assert v.rank == 0 and v.cause == "gossip-timeout" and not b.is_alive(0)
    b.receive(0, (PING, 9, -1, ((0, ALIVE, 7),)), 3.5)  # a late refutation: too late
    assert not b.is_alive(0) and 0 not in b.alive() and b.check(9.0) == []
    assert all(dest != 0 for dest, _ in b.tick(10.0))  # never probed again


def test_swim_rank_woken_from_a_pause_restarts_its_timers_instead_of_declaring_deaths():
    a = Swim(0, 3, 0.0, interval=0.5, t_fail=2.0)
    a.receive(2, (PING, 1, -1, ((1, SUSPECT, 0),)), 0.5)
    assert a.is_suspected(1)
    # stopped from 0.5 to 6.0: the refutation of rank 1 went by unheard; no verdict on waking
    assert a.check(6.0) == [] and a.is_alive(1)
    a.receive(2, (PING, 2, -1, ((1, ALIVE, 1),)), 6.1)  # and the refutation still counts
    assert not a.is_suspected(1)


def test_swim_stale_suspicion_is_refuted_again_by_the_suspect():
    # rank 2 refuted a suspicion long ago (its update's retransmissions are used up); rank 0 missed
    # the refutation, and its own failed probe now suspects 2 at the old incarnation
    x = Swim(2, 5, 0.0, interval=0.5, t_fail=2.0)
    x.receive(1, (PING, 1, -1, ((2, SUSPECT, 0, 1),)), 0.1)
    assert x.incarnation == 1
    acks = [x.receive(3, (PING, k, -1, ()), 0.2 + 0.01 * k)[0][1] for k in range(20)]
    assert (2, ALIVE, 1) in acks[0][3] and (2, ALIVE, 1) not in acks[-1][3]
    c = Swim(0, 5, 0.0, interval=0.5, t_fail=2.0)
    c.receive(4, (PING, 1, -1, ((2, SUSPECT, 0, 4),)), 5.0)
    assert c.is_suspected(2)
    # c's probe of 2 carries the suspicion (buddy rule); 2 answers with its current incarnation
    ((_, ack),) = x.receive(0, (PING, 9, -1, ((2, SUSPECT, 0, 0),)), 5.1)
    assert (2, ALIVE, 1) in ack[3] and x.incarnation == 1
    c.receive(2, ack, 5.2)
    assert not c.is_suspected(2) and c.check(60.0) == [] and c.is_alive(2)


def test_swim_lone_suspicion_waits_longest_and_independent_confirmations_shorten_it():
    def view():
        return Swim(1, 100, 0.0, interval=0.5, t_fail=3.0)

    def quiet(v, t0, t1):  # the pump checks often (a long gap would restart the timers)
        return all(v.check(t0 + 0.25 * k) == [] for k in range(int((t1 - t0) / 0.25) + 1))

    b = view()  # at N = 100: min = max(t_fail, 4 log10(N) interval) = 4 s, max 3 x min, 2 confirmations
    assert (b.min_suspicion, b.max_suspicion, b.confirm) == (4.0, 12.0, 2)
    b.receive(5, (PING, 1, -1, ((7, SUSPECT, 0, 5),)), 1.0)
    b.receive(6, (PING, 2, -1, ((7, SUSPECT, 0, 5),)), 1.5)  # the same accuser again: no confirmation
    assert quiet(b, 1.5, 12.9) and [v.rank for v in b.check(13.0)] == [7]
    c = view()
    c.receive(5, (PING, 1, -1, ((7, SUSPECT, 0, 5),)), 1.0)
    c.receive(6, (PING, 2, -1, ((7, SUSPECT, 0, 6),)), 2.0)  # one confirmation: 12 - 8 log 2 / log 3
    assert c.suspects[7] == pytest.approx(1.0 + 12.0 - 8.0 * 0.6309, abs=1e-3)
    c.receive(8, (PING, 3, -1, ((7, SUSPECT, 0, 8),)), 3.0)  # two: the minimum, from when c first heard it
    assert quiet(c, 3.0, 4.9) and [v.rank for v in c.check(5.0)] == [7]
    # the minimum grows with log N where t_fail is short for the job's size; t_fail is the floor
    assert Swim(0, 100_000, 0.0, interval=0.5, t_fail=2.0).min_suspicion == pytest.approx(10.0)
    assert Swim(0, 8, 0.0, interval=0.5, t_fail=2.0).min_suspicion == 2.0
    assert Swim(0, 3, 0.0, interval=0.5, t_fail=2.0).confirm == 0  # too few ranks to confirm


def test_swim_evidence_is_immediate_and_local_to_the_rank_that_has_it():
    # ULFM reports a crash at every rank anyway; behind a partition it reports live ranks as failed
    # on one side only: spread, rank 3's evidence would kill rank 9 for ranks that still reach it
    views = [Swim(r, 20, 0.0, interval=0.5, t_fail=3.0, rng=random.Random(r)) for r in range(20)]
    v = views[3].evidence(9, 0.0, "mpi-failure")
    assert v is not None and v.cause == "mpi-failure" and views[3].evidence(9, 0.1) is None
    inflight, t, about_9 = [], 0.0, []
    while t < 2.5:
        t = round(t + 0.05, 9)
        deliver, inflight = inflight, []
        outs = [(d, views[d].receive(s, b, t)) for s, d, b in deliver]
        outs += [(r, x.tick(t)) for r, x in enumerate(views)]
        inflight = [(s, d, b) for s, out in outs for d, b in out]
        about_9 += [u for s, d, b in inflight if s == 3 for u in b[3] if u[0] == 9]
        assert all(x.check(t) == [] for x in views)
    assert about_9 == [] and not views[3].is_alive(9)
    assert all(x.is_alive(9) for r, x in enumerate(views) if r != 3) and not views[9].fenced


def test_swim_message_size_and_rate_do_not_grow_with_n():
    per = {}
    for n in (16, 400):
        _, verdicts, sent = run_views("swim", n, 10.0, loss=0.01, seed=2)
        assert verdicts == []
        assert max(len(b[3]) for b in sent) <= 8  # the piggyback list is capped
        per[n] = (len(sent) / n / 10.0, sum(len(pickle.dumps(b)) for b in sent) / n / 10.0)
    msgs, byts = per[400][0] / per[16][0], per[400][1] / per[16][1]
    assert 0.8 < msgs < 1.25 and byts < 1.5, per
    # the old vector gossip, for contrast: bytes per message grow with N
    _, _, sent = run_views("gossip", 400, 2.0)
    assert min(len(pickle.dumps(b)) for b in sent) > 400


def test_unknown_membership_is_rejected_by_name():
    with pytest.raises(ValueError, match="'raft'"):
        make("raft", 0, 4, 0.0, 0.5, 2, 10.0)
    with pytest.raises(ConfigError, match="'fault_tolerance.membership'.*'raft'"):
        fault_tolerance({"membership": "raft"})
    assert fault_tolerance({"membership": "swim"}).membership == "swim"


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


def test_auto_membership_is_gossip_for_small_jobs_and_swim_from_64_ranks():
    assert isinstance(make("auto", 0, 63, 0.0, 0.5, 2, 10.0), Membership)
    assert isinstance(make("auto", 0, 64, 0.0, 0.5, 2, 10.0), Swim)
    assert isinstance(make("gossip", 0, 1000, 0.0, 0.5, 2, 10.0), Membership)  # a choice wins
    assert isinstance(make("swim", 0, 4, 0.0, 0.5, 2, 10.0), Swim)

"""Node + in-process Hub: fault injection (cut, delay, kill, stop), pump heartbeat under load."""

from __future__ import annotations

import threading
import time

import pytest

from rdhpo_hpc.comm.inproc import Hub
from rdhpo_hpc.faults import FaultPlan, parse_faults
from rdhpo_hpc.messages import Hello, PeerDown, RouteChanged, Task
from rdhpo_hpc.node import GossipSettings, Node

pytestmark = pytest.mark.timeout(30)

FAST = GossipSettings(gossip_interval=0.1, fanout=2, t_fail=1.0)


def start(hub, faults=(), on_fault=None, settings=FAST):
    plan = parse_faults(list(faults))
    nodes = []
    for r in range(hub.size):
        kw = {}
        if on_fault is not None:
            kw["on_fault"] = on_fault(r)
        nodes.append(Node(hub.transport(r), settings, faults=FaultPlan(plan, r), **kw).start())
    return nodes


def drain(node, seconds):
    """Events seen by ``node`` within ``seconds``."""
    out, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        got = node.recv(timeout=0.05)
        if got is not None:
            out.append(got)
    return out


def close(nodes):
    for n in nodes:
        n.close(drain_timeout=0.1)


def downs(events):
    return [m for _, m in events if isinstance(m, PeerDown)]


def test_no_verdict_without_faults():
    hub = Hub(5)
    nodes = start(hub)
    try:
        assert downs(drain(nodes[0], 2.0)) == []
        assert nodes[0].alive() == [0, 1, 2, 3, 4]
    finally:
        close(nodes)


def test_cut_link_is_routed_around_in_both_directions_and_used_again_once_healed():
    hub = Hub(5)
    nodes = start(hub, faults=[{"cut": [0, 3], "at": 0.0, "until": 3.0}])
    try:
        ev0 = drain(nodes[0], 1.2)
        assert all(n.alive() == [0, 1, 2, 3, 4] for n in nodes)  # gossip relayed by 1, 2, 4
        assert downs(ev0) == [] and nodes[0].unreachable == set()  # reached through a relay
        assert any(isinstance(m, RouteChanged) and m.peer == 3 and m.via in (1, 2, 4) for _, m in ev0)
        assert nodes[0].routes[3] in (1, 2, 4) and nodes[3].routes[0] in (1, 2, 4)
        nodes[0].send(3, Task(7, 0, {}))  # coordinator -> worker
        got = [(s, m) for s, m in drain(nodes[3], 0.5) if isinstance(m, Task)]
        assert got and got[0][0] == 0 and got[0][1].trial_id == 7
        nodes[3].send(0, Hello("h", {}, 1))  # worker -> coordinator
        ev0 = drain(nodes[0], 0.5)
        assert [s for s, m in ev0 if isinstance(m, Hello)] == [3]
        ev3 = drain(nodes[3], 2.5)  # the cut heals at t = 3 s
        assert any(isinstance(m, RouteChanged) and m.via is None for _, m in ev3)
        assert 0 not in nodes[3].routes and 3 not in nodes[0].routes
        assert downs(ev0 + ev3) == [] and nodes[0].unreachable == set()
    finally:
        close(nodes)


def test_rank_cut_off_from_every_possible_relay_is_unreachable_not_dead():
    """Rank 3 hears the others (one-way cuts are outside the routing's model): only the
    coordinator's link and every relay's link to 3 are cut, gossip still carries 3's heartbeat
    through rank 4, which nobody uses as a relay because 4 is cut from the coordinator too."""
    hub = Hub(5)
    nodes = start(
        hub,
        faults=[
            {"cut": [0, 3], "at": 0.0},
            {"cut": [1, 3], "at": 0.0},
            {"cut": [2, 3], "at": 0.0},
            {"cut": [0, 4], "at": 0.0},
        ],
    )
    try:
        ev0 = drain(nodes[0], 2.5)
        assert all(n.alive() == [0, 1, 2, 3, 4] for n in nodes)
        d = [m for m in downs(ev0) if m.rank == 3]
        assert d and d[0].cause == "unreachable" and d[0].latency > 1.5 * FAST.t_fail
    finally:
        close(nodes)


def test_hub_cut_link_between_workers_is_harmless():
    hub = Hub(4)
    hub.cut_link(1, 2)
    nodes = start(hub)
    try:
        assert downs(drain(nodes[0], 1.5)) == []
        assert downs(drain(nodes[1], 0.1)) == []
    finally:
        close(nodes)


def test_kill_is_immediate_evidence_with_ulfm():
    hub = Hub(4, ulfm=True)
    nodes = start(hub)
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        hub.kill(2)
        ev = drain(nodes[0], 0.5)
        (d,) = downs(ev)
        assert d.rank == 2 and d.cause == "mpi-failure"
        assert not nodes[0].is_alive(2)
        assert time.monotonic() - t0 < FAST.t_fail
    finally:
        close(nodes)


def test_kill_without_ulfm_and_stop_need_the_gossip_timeout():
    hub = Hub(4, ulfm=False)
    nodes = start(hub)
    try:
        time.sleep(0.3)
        hub.kill(2)
        hub.stop(3)
        ev = drain(nodes[0], 2.5)
        ds = {d.rank: d for d in downs(ev)}
        assert set(ds) == {2, 3}
        assert all(d.cause == "gossip-timeout" and d.latency > FAST.t_fail for d in ds.values())
        hub.resume(3)  # wakes up: stays fenced
        time.sleep(0.3)
        assert not nodes[0].is_alive(3)
    finally:
        close(nodes)


def test_fault_plan_kill_and_stop_go_through_on_fault():
    hub = Hub(4)
    fired = []

    def on_fault(rank):
        def act(f):
            fired.append((rank, f.kind))
            hub.kill(rank) if f.kind == "kill" else hub.stop(rank)

        return act

    nodes = start(hub, faults=[{"kill": 1, "at": 0.2}, {"stop": 2, "at": 0.3}], on_fault=on_fault)
    try:
        ds = {d.rank: d.cause for d in downs(drain(nodes[0], 2.5))}
        assert sorted(fired) == [(1, "kill"), (2, "stop")]
        assert ds == {1: "mpi-failure", 2: "gossip-timeout"}
    finally:
        close(nodes)


def test_delay_holds_messages_back():
    hub = Hub(2)
    nodes = start(hub, faults=[{"delay": [0, 1], "seconds": 0.4}])
    try:
        t0 = time.monotonic()
        nodes[0].send(1, Hello("h", {}, 1))
        got = None
        while time.monotonic() - t0 < 2.0 and got is None:
            ev = nodes[1].recv(timeout=0.02)
            if ev is not None and isinstance(ev[1], Hello):
                got = time.monotonic() - t0
        assert got is not None and 0.35 < got < 1.0
        assert downs(drain(nodes[0], 0.2)) == []  # 0.4 s delay < t_fail: nobody dies
    finally:
        close(nodes)


def test_heartbeat_flows_while_the_loop_thread_busy_loops_in_python():
    """The pump thread keeps gossiping while another thread holds the GIL in pure Python."""
    hub = Hub(3)
    nodes = start(hub)
    stop = threading.Event()

    def burn():
        n = 0
        while not stop.is_set():
            n += 1

    burners = [threading.Thread(target=burn, daemon=True) for _ in range(2)]
    for b in burners:
        b.start()
    try:
        ev = drain(nodes[0], 3 * FAST.t_fail)
        assert downs(ev) == [], downs(ev)
        assert downs(drain(nodes[1], 0.05)) == [] and downs(drain(nodes[2], 0.05)) == []
    finally:
        stop.set()
        close(nodes)


def test_coordinator_event_on_takeover():
    hub = Hub(4, ulfm=True)
    nodes = [Node(hub.transport(r), FAST, takeover=True).start() for r in range(4)]
    try:
        time.sleep(0.2)
        hub.kill(0)
        for r in (1, 2, 3):
            ev = drain(nodes[r], 0.4)
            moved = [m for _, m in ev if type(m).__name__ == "Coordinator"]
            assert moved and moved[0].rank == 1
            assert nodes[r].coordinator == 1
    finally:
        close(nodes)


def test_inproc_shrink_is_a_bounded_barrier():
    hub = Hub(4)
    hub.kill(3)
    out = {}
    ts = [threading.Thread(target=lambda r=r: out.__setitem__(r, hub.shrink(r, {3}, 2.0))) for r in (0, 1, 2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(5)
    assert all(o["size"] == 3 and o["method"] == "shrink" and "error" not in o for o in out.values())
    lone = hub.shrink(0, {2}, 0.2)  # ranks 1 and 3 never come: times out, no hang
    assert "error" in lone

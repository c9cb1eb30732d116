"""Node + in-process Hub with ``membership: swim``: verdicts, cut links, fencing, message size."""

from __future__ import annotations

import pickle
import time

import pytest

from rdhpo_hpc.comm.inproc import Hub
from rdhpo_hpc.faults import FaultPlan, parse_faults
from rdhpo_hpc.messages import Gossip, PeerDown
from rdhpo_hpc.node import GossipSettings, Node

pytestmark = pytest.mark.timeout(30)

SWIM = GossipSettings(gossip_interval=0.1, fanout=2, t_fail=1.0, membership="swim")


def start(hub, faults=()):
    plan = parse_faults(list(faults))
    return [Node(hub.transport(r), SWIM, faults=FaultPlan(plan, r)).start() for r in range(hub.size)]


def downs(node, seconds):
    out, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        got = node.recv(timeout=0.05)
        if got is not None and isinstance(got[1], PeerDown):
            out.append(got[1])
    return out


def close(nodes):
    for n in nodes:
        n.close(drain_timeout=0.1)


def test_swim_node_cut_link_gives_no_verdict_and_messages_stay_small():
    hub = Hub(6)
    sizes = []
    real = hub.transport  # record every membership message a rank sends

    def spy(rank):
        t = real(rank)
        isend = t.isend

        def rec(dest, msg):
            if isinstance(msg, Gossip) and msg.body is not None:
                sizes.append(len(pickle.dumps(msg, pickle.HIGHEST_PROTOCOL)))
            return isend(dest, msg)

        t.isend = rec
        return t

    hub.transport = spy
    nodes = start(hub, faults=[{"cut": [0, 3], "at": 0.0}])
    try:
        assert downs(nodes[0], 2.5) == []
        assert all(n.alive() == list(range(6)) for n in nodes)
        assert sizes and max(sizes) < 200  # a probe with at most 8 piggybacked updates
        assert nodes[1].gossip_bytes > 0 and nodes[1].gossip_sent > 0
    finally:
        close(nodes)


def test_swim_node_kill_without_ulfm_and_stop_are_gossip_timeouts_and_stay_fenced():
    hub = Hub(5, ulfm=False)
    nodes = start(hub)
    try:
        time.sleep(0.3)
        hub.kill(2)
        hub.stop(3)
        ds = {d.rank: d for d in downs(nodes[0], 2.5)}  # t_fail 1 s + a few periods
        assert set(ds) == {2, 3}
        assert all(d.cause == "gossip-timeout" and d.latency > SWIM.t_fail for d in ds.values())
        assert all(not n.is_alive(2) and not n.is_alive(3) for r, n in enumerate(nodes) if r not in (2, 3))
        hub.resume(3)  # its links come back: it stays dead everywhere, and the live ranks stay alive
        time.sleep(0.5)
        assert all(n.alive() == [0, 1, 4] for r, n in enumerate(nodes) if r in (0, 1, 4))
    finally:
        close(nodes)


def test_swim_node_ulfm_evidence_is_immediate():
    hub = Hub(4, ulfm=True)
    nodes = start(hub)
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        hub.kill(1)
        (d,) = downs(nodes[0], 0.5)
        assert d.rank == 1 and d.cause == "mpi-failure" and time.monotonic() - t0 < SWIM.t_fail
    finally:
        close(nodes)

"""The whole loop over the in-process transport with fault injection (kill, stop, cut, hang)."""

from __future__ import annotations

import collections
import io
import os
import time

import pytest

from rdhpo_hpc import config as C
from rdhpo_hpc.comm.inproc import Hub
from rdhpo_hpc.launch import run_inprocess

pytestmark = pytest.mark.timeout(60)

OBJ = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "system", "objectives.py")
FT = {"t_fail": 1.0, "gossip_interval": 0.1, "end_grace": 2.0}


def cfg_of(max_trials=10, fn="sleepy", faults=(), output=None, **ft):
    d = {
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "objective": {"function": f"{OBJ}:{fn}"},
        "budget": {"max_trials": max_trials},
        "fault_tolerance": {**FT, **ft},
        "faults": list(faults),
        "progress_interval": 60,
    }
    if output:
        d["output"] = str(output)
    return C.from_dict(d)


def check_once(res, n):
    """n trials, each COMPLETE exactly once; returns the events by kind."""
    done = [a for a in res.attempts if a["state"] == "COMPLETE"]
    per_trial = collections.Counter(a["trial_id"] for a in done)
    assert sorted(per_trial) == list(range(n)), per_trial
    assert set(per_trial.values()) == {1}, per_trial
    assert [t.state for t in res.trials] == ["COMPLETE"] * n
    ev = collections.defaultdict(list)
    for e in res.events:
        ev[e["kind"]].append(e)
    return ev


def test_killed_worker_is_detected_at_once_and_its_trial_rerun():
    t0 = time.monotonic()
    out = run_inprocess(cfg_of(8, faults=[{"kill": 2, "at": 0.5}]), workers=3, out=io.StringIO())
    assert out.exit_code == 0
    ev = check_once(out.result, 8)
    (dead,) = ev["rank-dead"]
    assert dead["rank"] == 2 and dead["detail"] == "mpi-failure" and dead["latency"] < 1.0
    assert ev["requeue"] and ev["shrink"]
    assert time.monotonic() - t0 < 30


def test_hung_worker_is_found_by_gossip_and_its_late_result_fenced():
    hub = Hub(4)
    out = run_inprocess(cfg_of(8, faults=[{"stop": 1, "at": 1.0}]), workers=3, hub=hub, out=io.StringIO())
    ev = check_once(out.result, 8)
    (dead,) = ev["rank-dead"]
    assert dead["rank"] == 1 and dead["detail"] == "gossip-timeout" and dead["latency"] > 1.0
    assert ev["terminate-hung"]
    lost = [a for a in out.result.attempts if a["state"] == "LOST"]
    assert lost and all(a["rank"] == 1 for a in lost)


def test_cut_link_to_coordinator_is_routed_around_and_the_worker_keeps_working():
    out = run_inprocess(cfg_of(16, faults=[{"cut": [0, 3], "at": 0.3}]), workers=3, out=io.StringIO())
    assert out.exit_code == 0
    ev = check_once(out.result, 16)
    assert not ev["rank-dead"] and not ev["rank-unreachable"]
    t0 = out.result.study["start_time"]
    late = [
        a
        for a in out.result.attempts
        if a["rank"] == 3 and a["state"] == "COMPLETE" and a["start_time"] > t0 + 0.3 + FT["t_fail"]
    ]
    assert late, "rank 3 got no work through the relay after its link to rank 0 was cut"
    assert [e for e in ev["route"] if e["rank"] == 3 and e["detail"].startswith("through rank")], ev["route"]


def test_cut_link_between_workers_changes_nothing():
    out = run_inprocess(cfg_of(6, faults=[{"cut": [1, 2], "at": 0.0}]), workers=3, out=io.StringIO())
    ev = check_once(out.result, 6)
    assert not ev["rank-dead"] and not ev["rank-unreachable"] and not ev["shrink"]


def test_trial_time_limit_fails_the_hung_trial_and_the_study_continues():
    out = run_inprocess(cfg_of(5, fn="hang_first", trial_time_limit=2.0), workers=2, out=io.StringIO())
    res = out.result
    t0 = next(t for t in res.trials if t.trial_id == 0)
    assert t0.state == "FAILED" and "time limit" in t0.error
    assert [t.state for t in res.trials if t.trial_id != 0] == ["COMPLETE"] * 4


def test_retry_cap_turns_repeated_loss_into_failed():
    # both workers die while trial 0 runs on them: 2 attempts lost, max_retries=1 -> FAILED
    faults = [{"kill": 1, "at": 0.4}, {"kill": 2, "at": 1.6}]
    out = run_inprocess(cfg_of(1, max_retries=1, faults=faults), workers=3, out=io.StringIO())
    res = out.result
    (t,) = res.trials
    lost = [a for a in res.attempts if a["state"] == "LOST"]
    if len(lost) >= 2:
        assert t.state == "FAILED" and "max_retries" in t.error
    else:  # scheduling put the retry on rank 3: still exactly one counted result
        assert t.state == "COMPLETE"


def test_dead_coordinator_makes_workers_exit_without_takeover(tmp_path):
    hub = Hub(3, ulfm=False)
    from rdhpo_hpc.launch import settings_of, work
    from rdhpo_hpc.node import Node

    cfg = cfg_of(4)
    nodes = [Node(hub.transport(r), settings_of(cfg)).start() for r in range(3)]
    hub.kill(0)
    t0 = time.monotonic()
    try:
        outs = [work(cfg, nodes[r]) for r in (1,)]
        assert outs[0].exit_code == 4
        assert time.monotonic() - t0 < 3 * cfg.ft.t_fail
    finally:
        for n in nodes:
            n.close(drain_timeout=0.1)


def test_journal_resume_after_interrupt_loses_nothing(tmp_path):
    path = tmp_path / "r.h5"
    cfg = cfg_of(8, output=path)
    cfg.max_wall_time = 1.5
    first = run_inprocess(cfg, workers=2, out=io.StringIO())
    done_first = {t.trial_id: t.value for t in first.result.trials if t.state == "COMPLETE"}
    assert 0 < len(done_first) < 8
    cfg2 = cfg_of(8, output=path)
    second = run_inprocess(cfg2, workers=2, resume=True, out=io.StringIO())
    check_once(second.result, 8)
    for tid, v in done_first.items():  # acknowledged results kept as they were
        assert next(t for t in second.result.trials if t.trial_id == tid).value == v


def test_busy_python_objective_longer_than_t_fail_gives_no_false_verdict(monkeypatch):
    monkeypatch.setenv("RDHPO_TEST_BUSY_S", "2.5")  # > t_fail = 1.0, holds the GIL
    out = run_inprocess(cfg_of(4, fn="busy"), workers=2, out=io.StringIO())
    ev = check_once(out.result, 4)
    assert not ev["rank-dead"] and not ev["rank-unreachable"]

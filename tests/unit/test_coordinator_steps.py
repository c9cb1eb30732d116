"""The coordinator's loop driven one message at a time, in simulated time (no threads, no
transport): a fake node (``fakes.FakeNode``) and a fake clock, and the hard interleavings of
failures, late results, takeover and the end of a study.  Each test checks what a user cares
about: every trial counted once, the study ends, the right records."""

from __future__ import annotations

import collections
import io
from typing import Any, Optional

import pytest

import rdhpo_hpc as rd
from rdhpo_hpc.api import build_config
from rdhpo_hpc.coordinator import CoordinatorLoop
from rdhpo_hpc.exitcodes import ExitCode
from rdhpo_hpc.messages import Decision, Hello, PeerDown, Report, Result, RouteChanged, Stop, Task
from rdhpo_hpc.storage.base import MemoryStore
from rdhpo_hpc.strategy import make_strategy

from fakes import FakeClock, FakeNode

pytestmark = pytest.mark.timeout(30)

SPACE = rd.Space(x=rd.Float(0.0, 1.0))
T_FAIL = 2.0


def _objective(config: dict, ctx: Any) -> float:
    raise AssertionError("no objective runs in a step test")


class Harness:
    """One coordinator loop on a fake node; helpers speak for the workers."""

    def __init__(
        self,
        workers: int = 3,
        trials: int = 4,
        optimizer: str = "random",
        rank: int = 0,
        max_retries: int = 2,
        options: Optional[dict] = None,
    ) -> None:
        self.clock = FakeClock()
        self.node = FakeNode(workers + 1, self.clock, rank=rank)
        self.store = MemoryStore()
        self.kills: list = []
        cfg = build_config(
            _objective,
            SPACE,
            optimizer,
            trials,
            "minimize",
            0,
            None,
            {
                **(options or {}),
                "t_fail": T_FAIL,
                "gossip_interval": 0.2,
                "end_grace": 1.0,
                "max_retries": max_retries,
                "progress_interval": 1e9,
            },
        )
        self.optimizer, self.scheduler = make_strategy(cfg.optimizer, cfg.space, cfg.direction, cfg.seed, **cfg.options)
        self.loop = CoordinatorLoop(
            cfg,
            self.node,
            self.store,
            self.optimizer,
            self.scheduler,
            clock=self.clock,
            out=io.StringIO(),
            kill=lambda targets, host: self.kills.append((targets, host)),
        )

    # -- the workers' side -------------------------------------------------------------------------
    def hello(self, rank: int, running: Optional[tuple] = None) -> None:
        self.node.deliver(rank, Hello("hostA", {"device": "cpu"}, 1000 + rank, running))

    def result(self, rank: int, task: Task, state: str = "COMPLETE", value: Optional[float] = 0.5) -> None:
        t = self.clock()
        self.node.deliver(rank, Result(task.trial_id, task.attempt, state, value, {}, "", {"start": t - 1, "end": t}))

    def tasks(self) -> dict[int, Task]:
        """The tasks sent since the last call, by rank (one each here: no pipelining)."""
        got = self.node.take(Task)
        out = {}
        for dest, task in got:
            assert dest not in out, "a rank got two tasks at once"
            out[dest] = task
        return out

    # -- the loop ----------------------------------------------------------------------------------
    def turn(self, n: int = 1) -> None:
        for _ in range(n):
            assert not self.loop.finished(), "the study ended already"
            self.loop.turn()

    def end(self, max_turns: int = 100) -> int:
        """Turn until the study is finished (bounded: a hang fails the test), then close it."""
        for _ in range(max_turns):
            if self.loop.finished():
                return self.loop.close()
            self.loop.turn()
        raise AssertionError(f"the study did not end within {max_turns} turns")

    # -- what was written --------------------------------------------------------------------------
    def records(self, kind: str) -> list[dict]:
        return [r for r in self.store.records() if r["k"] == kind]

    def events(self, kind: str) -> list[dict]:
        return [r for r in self.records("event") if r["kind"] == kind]

    def told(self) -> collections.Counter:
        return collections.Counter(r["trial_id"] for r in self.records("tell"))

    def assert_each_trial_once(self, n: int) -> None:
        assert self.told() == {tid: 1 for tid in range(n)}
        counted = collections.Counter(
            r["trial_id"] for r in self.records("attempt") if r["state"] in ("COMPLETE", "PRUNED", "FAILED")
        )
        assert counted == {tid: 1 for tid in range(n)}, counted


def start(h: Harness, *ranks: int) -> dict[int, Task]:
    for r in ranks:
        h.hello(r)
    h.loop.start()
    h.turn()
    return h.tasks()


# -- reports: workers wait at decision steps only -----------------------------------------------------
def test_asha_workers_wait_for_a_decision_at_rung_steps_only():
    h = Harness(workers=2, trials=2, optimizer="asha", options={"min_budget": 1, "max_budget": 9, "eta": 3})
    tasks = start(h, 1, 2)
    assert [t.decide_from for t in tasks.values()] == [1, 1]  # the first rung
    h.node.deliver(1, Report(0, 0, 1, 0.5, {}, wait=True))
    h.node.deliver(1, Report(0, 0, 2, 0.4, {}, wait=False))  # between rungs: no answer
    h.node.deliver(2, Report(1, 0, 1, 0.9, {}, wait=True))  # worse than trial 0 at rung 1: stop
    h.node.deliver(1, Report(0, 0, 3, 0.3, {}, wait=True))
    h.turn()
    assert h.node.take(Decision) == [
        (1, Decision(0, 0, True, 3)),
        (2, Decision(1, 0, False)),
        (1, Decision(0, 0, True, 9)),
    ]
    assert [(r["trial_id"], r["step"], r["decision"]) for r in h.records("report")] == [
        (0, 1, "continue"),
        (0, 2, "continue"),  # journalled all the same
        (1, 1, "stop"),
        (0, 3, "continue"),
    ]


# -- late and duplicate results ----------------------------------------------------------------------
def test_late_result_of_a_fenced_attempt_is_ignored_and_the_rerun_counts():
    h = Harness(workers=2, trials=2)
    first = start(h, 1, 2)
    assert {r: t.trial_id for r, t in first.items()} == {1: 0, 2: 1}
    h.node.kill(1, "gossip-timeout", T_FAIL)  # rank 1 hung: its attempt is LOST, re-queued
    h.result(2, first[2])
    h.turn()
    (rerun,) = h.tasks().values()
    assert (rerun.trial_id, rerun.attempt) == (0, 1)
    h.result(1, first[1], "FAILED", None)  # rank 1 woke up: a late failure of a fenced attempt
    h.turn()
    assert h.told() == {1: 1}
    late = [r for r in h.records("attempt") if r["rank"] == 1 and r["error"].startswith("late result ignored")]
    assert late and "attempt was fenced" in late[0]["error"] and late[0]["state"] == "LOST"
    h.result(2, rerun)
    assert h.end() == ExitCode.OK
    h.assert_each_trial_once(2)
    assert [r["trial_id"] for r in h.records("tell")] == [1, 0]
    assert h.kills == [([("hostA", 1001)], "hostA")]  # the hung rank is SIGKILLed at the end


def test_complete_result_after_the_rank_was_declared_dead_wins_once():
    h = Harness(workers=2, trials=1)
    first = start(h, 1, 2)
    assert list(first) == [1]
    h.node.kill(1, "gossip-timeout", T_FAIL)
    h.turn()
    rerun = h.tasks()[2]
    assert (rerun.trial_id, rerun.attempt) == (0, 1)
    h.result(1, first[1], value=0.25)  # the "dead" rank was only slow: first valid result
    h.turn()
    assert h.events("late-result-accepted") and h.told() == {0: 1}
    assert h.records("tell")[0]["value"] == 0.25
    assert (2, Decision(0, 1, False)) in h.node.sent  # the re-run is told to stop
    h.result(2, rerun, "PRUNED", 0.9)
    assert h.end() == ExitCode.OK
    h.assert_each_trial_once(1)
    ignored = [r for r in h.records("attempt") if r["attempt"] == 1]
    assert ignored[0]["state"] == "LOST" and "trial already finished" in ignored[0]["error"]


def test_duplicate_results_after_a_requeue_count_once():
    h = Harness(workers=2, trials=2)
    first = start(h, 1, 2)
    h.node.unreachable.add(1)  # alive by gossip, direct link silent
    h.node.deliver(1, PeerDown(1, "unreachable", 1.5 * T_FAIL))
    h.result(2, first[2])
    h.turn()
    assert h.events("rank-unreachable") and h.events("requeue")
    rerun = h.tasks()[2]
    assert (rerun.trial_id, rerun.attempt) == (0, 1)
    h.result(2, rerun, value=0.1)
    h.result(2, rerun, value=0.1)  # delivered twice (e.g. a route change)
    h.result(1, first[1], value=0.2)  # the original attempt's result, relayed late
    h.turn()
    assert h.end() == ExitCode.OK
    h.assert_each_trial_once(2)
    assert h.records("tell")[-1] == {"k": "tell", "trial_id": 0, "state": "COMPLETE", "value": 0.1}
    lost = [r["error"] for r in h.records("attempt") if r["trial_id"] == 0 and r["state"] == "LOST"]
    assert len(lost) == 3 and lost[0].startswith("rank 1 unreachable")
    assert all("trial already finished" in e for e in lost[1:])
    assert not [d for d, m in h.node.sent if isinstance(m, Task) and d == 1]  # no more work for rank 1


# -- takeover ------------------------------------------------------------------------------------------
def _journal_of_a_coordinator_that_dies(trials: int = 4) -> list[dict]:
    """Rank 0 handed trials 0, 1, 2 to ranks 1, 2, 3, counted trial 0, gave trial 3 (if any) to
    rank 1, then died (the journal ends there)."""
    h = Harness(workers=3, trials=trials)
    first = start(h, 1, 2, 3)
    assert {r: t.trial_id for r, t in first.items()} == {1: 0, 2: 1, 3: 2}
    h.result(1, first[1])
    h.turn()
    assert [t.trial_id for t in h.tasks().values()] == ([3] if trials > 3 else [])
    return h.store.records()


def test_takeover_adopts_running_attempts_and_reruns_the_unclaimed_ones():
    journal = _journal_of_a_coordinator_that_dies()
    h = Harness(workers=3, trials=4, rank=1)  # rank 1 takes over; rank 0 is dead
    h.node.dead.add(0)
    h.loop.replay(journal, adopt=True)
    assert h.loop.orphans == {(1, 0): 2, (2, 0): 3}  # still running on live ranks: wait for a claim
    assert list(h.loop.requeue) == [3]  # rank 1's own attempt died with its worker role
    h.loop.start()
    h.hello(2, running=(1, 0))  # rank 2 still runs trial 1: adopted, not re-run
    h.turn()
    assert [e["rank"] for e in h.events("adopt")] == [2]
    assert not h.tasks()  # rank 3 never claims; nobody is idle yet
    h.turn(int(T_FAIL / 0.25) + 1)  # the adoption window (t_fail) passes
    assert [e["detail"] for e in h.events("orphan-released")] == ["trial 2 attempt 0 not claimed after takeover"]
    h.hello(3)  # rank 3 is back, idle (its result went to rank 0)
    h.turn()
    (rerun,) = h.tasks().items()
    assert rerun[0] == 3 and rerun[1].trial_id == 3
    h.result(2, Task(1, 0, {}), value=0.3)  # the adopted attempt ends
    h.turn()
    h.result(3, rerun[1])
    h.turn()
    (again,) = h.tasks().items()
    assert again[1].trial_id == 2 and again[1].attempt == 1
    h.result(again[0], again[1])
    assert h.end() == ExitCode.OK
    told = collections.Counter(r["trial_id"] for r in journal + h.store.records() if r["k"] == "tell")
    assert told == {0: 1, 1: 1, 2: 1, 3: 1}
    assert h.records("end")[0]["exit_code"] == 0


def test_orphans_of_a_rank_that_dies_in_the_adoption_window_are_rerun_at_once():
    journal = _journal_of_a_coordinator_that_dies()
    h = Harness(workers=3, trials=4, rank=1)
    h.node.dead.add(0)
    h.loop.replay(journal, adopt=True)
    h.loop.start()
    h.hello(2)  # idle: its attempt of trial 1 is gone
    h.node.kill(3)  # rank 3 dies holding trial 2
    h.turn()
    released = [e["detail"] for e in h.events("orphan-released")]
    assert released == ["trial 2 attempt 0 not claimed after takeover"]
    assert h.loop.orphans == {(1, 0): 2}  # rank 2 may still claim it until the window ends


def test_takeover_coordinator_kills_a_hung_worker_it_knows_from_the_journal():
    journal = _journal_of_a_coordinator_that_dies(trials=3)
    assert {r["rank"]: r["pid"] for r in journal if r["k"] == "worker"} == {1: 1001, 2: 1002, 3: 1003}
    h = Harness(workers=3, trials=3, rank=1)
    h.node.dead.add(0)
    h.loop.replay(journal, adopt=True)
    h.loop.start()
    h.hello(3, running=(2, 0))
    h.turn()
    h.node.kill(2, "gossip-timeout", T_FAIL)  # rank 2 hung (SIGSTOP): it never says Hello
    h.result(3, Task(2, 0, {}))
    h.turn()
    (rerun,) = h.tasks().items()
    assert rerun[0] == 3 and rerun[1].trial_id == 1
    h.result(3, rerun[1])
    assert h.end() == ExitCode.OK
    assert h.kills == [([("hostA", 1002)], "hostA")]
    assert h.events("terminate-hung")
    stops = h.node.take(Stop)
    assert [d for d, _ in stops] == [3] and stops[0][1].kill == [("hostA", 1002)]


# -- the end of a study ------------------------------------------------------------------------------
def test_stop_that_one_rank_never_acknowledges_still_ends_the_study():
    h = Harness(workers=2, trials=4)
    first = start(h, 1, 2)
    h.loop.request_stop("signal SIGTERM")
    h.turn()
    assert {(d, m.trial_id) for d, m in h.node.take(Decision)} == {(1, 0), (2, 1)}
    h.result(1, first[1], "PRUNED", 0.7)  # rank 1 acknowledges; rank 2 never does
    assert h.end(max_turns=3) == ExitCode.STOPPED
    assert not h.records("tell") and h.events("interrupt")
    assert h.records("end")[0]["end_status"] == "signal SIGTERM" and h.records("end")[0]["exit_code"] == 3
    assert sorted(d for d, _ in h.node.take(Stop)) == [1, 2]
    # --resume: the interrupted trials run again, each counted once
    again = Harness(workers=2, trials=4)
    again.loop.replay(h.store.records())
    assert sorted(again.loop.requeue) == [0, 1]
    tasks = start(again, 1, 2)
    assert sorted((t.trial_id, t.attempt) for t in tasks.values()) == [(0, 1), (1, 1)]
    for _ in range(2):
        for r, t in tasks.items():
            again.result(r, t)
        again.turn()
        tasks = again.tasks()
    assert not tasks and again.end(max_turns=1) == ExitCode.OK
    again.assert_each_trial_once(4)


def test_last_trial_lost_at_the_end_is_rerun_by_a_survivor():
    h = Harness(workers=2, trials=2)
    first = start(h, 1, 2)
    h.result(1, first[1])
    h.turn()
    assert not h.tasks() and not h.loop.finished()  # nothing left to start; trial 1 runs
    h.node.kill(2)  # its rank dies
    h.turn()
    (rerun,) = h.tasks().items()
    assert rerun[0] == 1 and (rerun[1].trial_id, rerun[1].attempt) == (1, 1)
    h.result(1, rerun[1])
    assert h.end() == ExitCode.OK
    h.assert_each_trial_once(2)
    assert h.node.shrinks == [([2], "shrink")]


def test_task_lost_on_a_link_as_it_fell_silent_is_sent_again_through_the_relay():
    """The hang of test_cut_link_to_the_coordinator, step by step: a worker's Result is lost on a
    link as it falls silent; the worker's Hello (through a relay) makes the coordinator re-run the
    attempt, whose Task goes out on the dead link too.  The route change must send it again, and
    a second copy of a Task must not be run twice (the worker's side: test_worker_reports)."""
    h = Harness(workers=1, trials=1)
    (first,) = start(h, 1).values()  # the Result of this attempt is lost: never delivered
    h.hello(1)  # the worker saw its route change: "I run nothing" (through the relay)
    h.turn()
    (lost,) = h.tasks().values()  # the re-run, sent on the link that fell silent: lost too
    assert (lost.trial_id, lost.attempt) == (0, 1)
    h.node.deliver(0, RouteChanged(1, 2))  # the coordinator's node: rank 1 now through rank 2
    h.turn()
    (again,) = h.tasks().values()
    assert again == lost
    h.result(1, again)
    assert h.end() == ExitCode.OK
    h.assert_each_trial_once(1)


def test_last_trial_lost_with_no_worker_left_ends_unfinished():
    h = Harness(workers=1, trials=2)
    first = start(h, 1)
    h.result(1, first[1])
    h.turn()
    h.node.kill(1)  # the only worker dies holding the last trial
    assert h.end(max_turns=3) == ExitCode.UNFINISHED
    end = h.records("end")[0]
    assert end["end_status"] == "no live workers" and end["exit_code"] == ExitCode.UNFINISHED
    assert h.told() == {0: 1}  # trial 1 is not counted: --resume runs it


def test_last_trial_lost_then_its_late_result_stops_the_rerun_and_the_study_ends():
    h = Harness(workers=2, trials=1)
    first = start(h, 1, 2)
    h.node.kill(1, "gossip-timeout", T_FAIL)
    h.turn()
    rerun = h.tasks()[2]
    h.result(1, first[1])  # the late result wins
    h.turn()
    assert (2, Decision(0, 1, False)) in h.node.sent and not h.loop.finished()
    h.node.kill(2, "gossip-timeout", T_FAIL)  # ... and the re-run's rank hangs too
    assert h.end(max_turns=3) == ExitCode.OK
    h.assert_each_trial_once(1)
    assert rerun.attempt == 1


def test_rank_dying_before_its_first_hello_gets_no_work_and_the_study_ends():
    h = Harness(workers=3, trials=4)
    h.node.kill(3)  # before it said Hello
    tasks = start(h, 1, 2)
    assert sorted(tasks) == [1, 2]
    h.hello(3)  # its Hello was in flight: ignored, it is dead
    for _ in range(2):
        for r, t in tasks.items():
            h.result(r, t)
        h.turn()
        tasks = h.tasks()
        assert 3 not in tasks
    assert h.end() == ExitCode.OK
    h.assert_each_trial_once(4)
    assert not h.records("worker") or all(r["rank"] != 3 for r in h.records("worker"))
    assert h.node.shrinks == [([3], "shrink")]
    assert sorted(d for d, _ in h.node.take(Stop)) == [1, 2]


# -- dispatch ---------------------------------------------------------------------------------------
def test_a_burst_of_more_than_1000_messages_loses_none():
    """One turn handles at most 1000 messages; the rest wait for the next turn (before, the
    1001st was taken from the node and dropped: that worker never got work)."""
    h = Harness(workers=1200, trials=1200)
    for r in range(1, 1201):
        h.hello(r)
    h.loop.start()
    h.turn()
    assert len(h.tasks()) == 1000
    h.turn()
    assert sorted(h.tasks()) == list(range(1001, 1201))


def test_short_trials_are_pipelined_and_a_dead_rank_loses_all_it_held():
    h = Harness(workers=2, trials=40)
    tasks = start(h, 1, 2)
    held = collections.defaultdict(list)
    for r, t in tasks.items():
        held[r].append(t)
    for _ in range(5):  # results of 10 ms attempts: depth grows to 4
        for r in (1, 2):
            t = held[r].pop(0)
            h.node.deliver(r, Result(t.trial_id, t.attempt, "COMPLETE", 0.5, {}, "", {"start": 0.0, "end": 0.01}))
        h.turn(2)  # results, then a turn with no message
        for d, m in h.node.take(Task):
            held[d].append(m)
    assert h.loop.pipeline.depth == 4 and len(held[1]) == 4 and len(held[2]) == 4
    dispatched = [(r["rank"], r["trial_id"]) for r in h.records("dispatch")][-6:]
    assert [rank for rank, _ in dispatched] == [1, 2, 1, 2, 1, 2]  # round-robin, lowest rank first
    h.node.kill(2)
    h.turn()
    lost = [r for r in h.records("attempt") if r["state"] == "LOST"]
    assert sorted(r["trial_id"] for r in lost) == sorted(t.trial_id for t in held[2])
    assert len(h.events("requeue")) == 4

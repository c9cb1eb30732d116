"""``rdhpo watch``'s fold (rdhpo_hpc/watch/state.py), record by record, with records made by the
coordinator's own constructors (coordination/records.py): what runs where with its last report,
counts and best, and what deaths, requeues, unreachable ranks, routes, takeovers, resumes,
interrupts and failures change.  Then the snapshot built from it (watch/snapshot.py)."""

from __future__ import annotations

from rdhpo_hpc.coordination import records as rec
from rdhpo_hpc.trial import Suggestion, TrialState
from rdhpo_hpc.watch.snapshot import sparkline, take
from rdhpo_hpc.watch.state import StudyView

T0 = 1000.0


def study(direction="minimize", max_trials=10, **extra):
    return {
        "k": "study",
        "name": "demo",
        "direction": direction,
        "optimizer": "random",
        "metric": "val_loss",
        "max_trials": max_trials,
        "max_wall_time": None,
        "fault_tolerance": {"t_fail": 2.0},
        "start_time": T0,
        **extra,
    }


def started(view=None, size=4, direction="minimize", max_trials=10):
    v = view or StudyView()
    v.apply(study(direction, max_trials))
    v.apply(rec.event(T0, "coordinator-start", 0, f"size={size} pid=1 host=login1"))
    for r in range(1, size):
        v.apply(rec.worker(r, f"n{r}", 100 + r, {"device": "cpu"}, T0))
    return v


def dispatch(v, tid, rank, att=0, x=0.5, t=T0 + 1):
    v.apply(rec.dispatch(tid, att, rank, t, att == 0, Suggestion({"x": x})))


def finish(v, tid, rank, value, att=0, state=TrialState.COMPLETE, error="", x=0.5):
    v.apply(rec.ended(tid, att, Suggestion({"x": x}), rank, state, value, error, T0 + 1, T0 + 2))
    if state != TrialState.LOST:
        v.apply(rec.tell(tid, state.value, value))


def test_dispatch_report_end_tell():
    v = started()
    dispatch(v, 0, 1, x=0.1)
    dispatch(v, 1, 2, x=0.9)
    v.apply(rec.report(0, 0, 3, 0.25, {}, T0 + 1.5, "continue"))
    run = v.running[(0, 0)]
    assert (run.rank, run.step, run.value, run.params) == (1, 3, 0.25, {"x": 0.1})
    assert v.running[(1, 0)].step is None  # nothing reported yet
    finish(v, 0, 1, 0.2, x=0.1)
    assert (0, 0) not in v.running and v.done == 1 and v.counts["COMPLETE"] == 1
    assert v.best is not None and (v.best.trial_id, v.best.value, v.best.params) == (0, 0.2, {"x": 0.1})
    assert v.workers[1].attempts == 1 and v.workers[2].attempts == 0


def test_fenced_report_is_not_shown():
    v = started()
    dispatch(v, 0, 1)
    v.apply(rec.report(0, 0, 1, 0.5, {}, T0 + 1, "continue"))
    v.apply(rec.report(0, 0, 2, 9.9, {}, T0 + 1, "fenced"))
    assert (v.running[(0, 0)].step, v.running[(0, 0)].value) == (1, 0.5)


def test_best_follows_direction_and_improvements():
    v = started(direction="maximize")
    for tid, value in enumerate([0.5, 0.3, 0.9, 0.7]):
        dispatch(v, tid, 1)
        finish(v, tid, 1, value)
    assert v.best is not None and (v.best.trial_id, v.best.value) == (2, 0.9)
    assert v.improvements == [(1, 0.5), (3, 0.9)]  # (completed count, new best)
    dispatch(v, 4, 1)
    finish(v, 4, 1, None, state=TrialState.FAILED, error="boom")
    assert v.completed == 4 and v.done == 5 and v.counts["FAILED"] == 1


def test_a_budgeted_attempt_shows_its_budget():
    v = started()
    v.apply(rec.dispatch(0, 0, 1, T0, True, Suggestion({"x": 0.5}, budget=9)))
    assert take(v, None, T0 + 1).rows[0][3] == "0 @9"


def test_pipelined_attempts_queue_behind_the_running_one():
    v = started()
    dispatch(v, 0, 1)
    dispatch(v, 1, 1)
    assert [r.trial_id for r in v.held()[1]] == [0, 1]
    snap = take(v, None, T0 + 2)
    assert (snap.running, snap.queued) == (1, 1)
    assert snap.rows[0][3] == "0" and snap.rows[0][7] == "1"  # trial 0 runs, one waits


def test_killed_rank_is_dead_and_its_trial_requeued():
    v = started()
    dispatch(v, 0, 1)
    dispatch(v, 1, 2)
    v.apply(rec.event(T0 + 3, "rank-dead", 2, "gossip-timeout", 2.1))
    finish(v, 1, 2, None, state=TrialState.LOST, error="rank 2 declared dead")
    v.apply(rec.event(T0 + 3, "requeue", 2, "trial 1 attempt 1"))
    assert v.workers[2].status == "dead" and v.counts["LOST"] == 1 and v.done == 0
    assert (1, 0) not in v.running
    dispatch(v, 1, 3, att=1)
    assert v.running[(1, 1)].rank == 3
    snap = take(v, (T0 + 4, 0), T0 + 4)
    assert snap.workers == "workers 2/3 live, 1 dead"
    assert any("rank-dead rank 2: gossip-timeout" in e for e in snap.events)
    assert any("requeue rank 2: trial 1 attempt 1" in e for e in snap.events)
    row3 = next(r for r in snap.rows if r[0] == "3")
    assert row3[3] == "1 (attempt 1)"


def test_unreachable_rank_and_routes():
    v = started()
    v.apply(rec.event(T0 + 1, "route", 3, "through rank 1"))
    assert v.workers[3].via == 1
    v.apply(rec.event(T0 + 2, "route", 3, "direct again"))
    assert v.workers[3].via is None
    v.apply(rec.event(T0 + 3, "rank-unreachable", 2, "alive by gossip, direct link silent", 3.0))
    assert v.workers[2].status == "unreachable"
    assert take(v, None, T0 + 3).workers == "workers 2/3 live, 1 unreachable"
    v.apply(rec.worker(2, "n2", 102, {"device": "cpu"}, T0 + 9))  # registered again (a new coordinator)
    assert v.workers[2].status == "live"


def test_takeover_moves_the_coordinator_and_releases_orphans():
    v = started()
    dispatch(v, 0, 1)
    dispatch(v, 1, 2)
    dispatch(v, 2, 3)
    v.apply(rec.event(T0 + 5, "takeover", 1, "rank 1 replaces coordinator rank 0: replayed 9 records, 2 running"))
    v.apply(rec.event(T0 + 5, "coordinator-start", 1, "size=4 pid=7 host=n1"))
    assert v.coordinator == 1 and v.coordinator_host == "n1"
    assert v.workers[0].status == "dead" and v.workers[1].status == "coordinator"
    v.apply(rec.event(T0 + 6, "adopt", 2, "trial 1 attempt 0 still running on rank 2 (hello)"))
    v.apply(rec.event(T0 + 8, "orphan-released", 3, "trial 2 attempt 0 not claimed after takeover"))
    assert set(v.running) == {(0, 0), (1, 0)}
    snap = take(v, (T0 + 8, 1), T0 + 8)
    assert "coordinator rank 1 on n1" in snap.status_detail
    assert snap.workers == "workers 2/3 live, 1 dead"  # ranks 2, 3 live; 0 dead; 1 coordinates


def test_stop_then_resume_starts_a_new_job():
    v = started()
    dispatch(v, 0, 1)
    finish(v, 0, 1, 0.4)
    dispatch(v, 1, 2)
    v.apply(rec.event(T0 + 3, "interrupt", -1, "SIGUSR1: 1 running attempts left to be re-run on resume"))
    assert not v.running
    v.apply(rec.end("SIGUSR1", T0 + 4, 3))
    snap = take(v, None, T0 + 4)
    assert (snap.status, snap.ended) == ("stopped", True) and "exit code 3" in snap.status_detail
    v.apply(rec.event(T0 + 50, "resume", 0, "replayed 12 records; 1 trials re-queued"))
    v.apply(rec.event(T0 + 50, "coordinator-start", 0, "size=3 pid=9 host=login2"))
    assert v.end is None and v.job == 2 and not v.workers
    assert [r[2] for r in take(v, None, T0 + 50).rows] == ["starting", "starting"]  # ranks 1, 2 of the new job
    v.apply(rec.worker(1, "m1", 5, {"device": "cpu"}, T0 + 51))
    dispatch(v, 1, 1, att=1, t=T0 + 51)
    assert v.done == 1 and v.best is not None and v.best.value == 0.4  # the first job's results stay


def test_failures_keep_the_error_headline():
    v = started()
    dispatch(v, 0, 1, x=0.7)
    err = 'ZeroDivisionError: division by zero\nTraceback (most recent call last):\n  File "o.py", line 3, in f\n'
    finish(v, 0, 1, None, state=TrialState.FAILED, error=err)
    assert [(f.trial_id, f.rank, f.error) for f in v.failures] == [(0, 1, "ZeroDivisionError: division by zero")]
    snap = take(v, None, T0 + 3)
    assert snap.failures[-1].endswith("trial 0 attempt 0 on rank 1: ZeroDivisionError: division by zero")
    assert snap.best == "-" and snap.counts == "complete 0 pruned 0 failed 1 lost 0"


def test_malformed_and_unknown_records_do_not_stop_the_fold():
    v = started()
    v.apply({"k": "dispatch", "trial_id": 0})  # no rank, no attempt
    v.apply({"k": "future-kind", "x": 1})
    dispatch(v, 1, 2)
    assert v.malformed == 1 and set(v.running) == {(1, 0)}


def test_status_eta_and_silence():
    v = started(max_trials=10)
    for tid in range(4):
        dispatch(v, tid, 1, t=T0 + tid)
        finish(v, tid, 1, 1.0 / (tid + 1))
    now = T0 + 8  # 4 trials in 8 s since the job started: 6 more take 12 s
    snap = take(v, (now - 0.5, 0), now)
    assert snap.status == "running" and "heartbeat 0.5 s ago" in snap.status_detail
    assert snap.eta is not None and abs(snap.eta - 12.0) < 1e-6
    assert snap.elapsed == 8.0 and snap.fraction == 0.4
    late = take(v, (now, 0), now + 2 * 2.0 + 15 + 1)  # heartbeat older than 2 t_fail + 15 s
    assert late.status == "silent" and "--resume" in late.status_detail
    assert take(StudyView(), None, now).status == "waiting"


def test_sparkline_is_the_best_so_far_step_function():
    assert sparkline([(1, 8.0), (3, 4.0), (4, 0.0)], 4) == "8 ██▅▁ 0"
    assert sparkline([], 0) == ""
    wide = sparkline([(1, 1.0), (1000, 0.5)], 1000, width=10)
    assert wide == "1 █████████▁ 0.5"  # 10 columns for 1000 trials
    assert sparkline([(1, 1000.0), (2, 1.0)], 2).endswith("(log scale)")

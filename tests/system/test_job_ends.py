"""The job always ends: the rows of the reliability issue's table that used to hang, each with a
real ``mpirun --with-ft ulfm`` job, most of them under the supervisor (``rdhpo launch``).

Asserted: the job ends by itself within its bound, with the documented exit code; every trial
counts exactly once (after a ``--resume`` where the study could not finish); no process of the
job is left (stopped ones included)."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_reliability import T_FAIL, Job, check, results, write_config

from rdhpo_hpc.exitcodes import ExitCode
from rdhpo_hpc.supervise import process_tree

pytestmark = [pytest.mark.timeout(180)]
END_GRACE = 3
MARGIN = 15  # the supervisor's slack (rdhpo_hpc.supervise.END_MARGIN_S)


def coordinator_pid(job: Job, rank: int = 0) -> int:
    recs = job.wait_for(
        lambda rs: any(
            r.get("k") == "event" and r.get("kind") == "coordinator-start" and r.get("rank") == rank for r in rs
        )
    )
    (ev,) = [
        r for r in recs if r.get("k") == "event" and r.get("kind") == "coordinator-start" and r.get("rank") == rank
    ]
    return int(dict(p.split("=", 1) for p in ev["detail"].split())["pid"])


def rank_processes(job: Job, n: int, timeout: float = 30.0) -> list[int]:
    """The pids of the job's ``n`` rank processes as soon as they exist (before MPI starts)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ranks = []
        for pid in process_tree(job.p.pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    args = fh.read().split(b"\0")
            except OSError:
                continue
            if b"run" in args and not any(a.endswith(b"prterun") or a.endswith(b"mpirun") for a in args[:1]):
                ranks.append(pid)
        if len(ranks) >= n:
            return sorted(ranks)
        time.sleep(0.01)
    job.kill()
    pytest.fail(f"{n} rank processes did not appear in {timeout}s")


def assert_no_process_left(pids) -> None:
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        assert state == "Z", f"process {pid} of the job is still there (state {state})"


def test_stopped_worker_then_rank0_killed_ends_by_itself(tmp_path):
    """Was: all trials written, RESULT printed, the job never ended (the new coordinator did not
    know the stopped worker's pid: workers are now rebuilt from the journal on takeover)."""
    job = Job(write_config(tmp_path, 40, end_grace=END_GRACE), 6)
    pids = job.pids([1, 2, 3, 4, 5])
    job.dispatched(8)
    pid0 = coordinator_pid(job)
    os.kill(pids[2], signal.SIGSTOP)
    time.sleep(2.0)
    os.kill(pid0, signal.SIGKILL)
    t = time.monotonic()
    try:
        assert job.finish() == 0, job.text()[-3000:]
    finally:
        for p in pids.values():
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    ev = check(results(job.out), 40)
    assert [e["rank"] for e in ev["takeover"]] == [1]
    assert any("[2]" in e["detail"] for e in ev["terminate-hung"]), ev["terminate-hung"]
    assert time.monotonic() - t < T_FAIL + END_GRACE + 30


def test_rank_stopped_during_startup_ends_the_job_with_exit_startup(tmp_path):
    """Was: nothing printed, no results file, the job never ended (every survivor waits in MPI
    initialisation for the missing rank)."""
    cfg = write_config(tmp_path, 10, end_grace=END_GRACE, startup_timeout=15)
    job = Job(cfg, 4, supervised=True)
    ranks = rank_processes(job, 4)
    os.kill(ranks[2], signal.SIGSTOP)
    tree = process_tree(job.p.pid)
    rc = job.finish()
    assert rc == ExitCode.STARTUP, job.text()[-3000:]
    assert 15 <= job.wall < 15 + 20, job.wall
    text = job.text()
    assert text.count("start-up did not finish within 15 s") == 1, text[-3000:]
    assert_no_process_left(tree)
    assert not job.out.exists()  # nothing was written, nothing lost
    job2 = Job(cfg, 4, supervised=True)  # the requeue: the same command runs the study
    assert job2.finish() == 0, job2.text()[-3000:]
    check(results(job2.out), 10)


def test_rank0_killed_without_takeover_is_unfinished_not_success_then_resumes(tmp_path):
    cfg = write_config(tmp_path, 20, takeover=False, end_grace=END_GRACE)
    job = Job(cfg, 5, supervised=True)
    job.pids([1, 2, 3, 4])
    job.dispatched(6)
    os.kill(coordinator_pid(job), signal.SIGKILL)
    assert job.finish() == ExitCode.UNFINISHED, job.text()[-3000:]
    assert "did not finish" in job.text()
    job2 = Job(cfg, 4, extra=["--resume"], supervised=True)
    assert job2.finish() == 0, job2.text()[-3000:]
    check(results(job.out), 20)


def test_hung_coordinator_without_takeover_ends_the_job_unfinished(tmp_path):
    """Rank 0 stopped, no takeover: the workers leave after t_fail (exit 4). Either Open MPI ends
    the job then (seen: it kills the stopped rank 0 once the others exited non-zero) or the
    supervisor sees rank 0's heartbeat go stale and does; never exit 0, never a hang."""
    cfg = write_config(tmp_path, 20, takeover=False, end_grace=END_GRACE)
    job = Job(cfg, 4, supervised=True)
    job.pids([1, 2, 3])
    job.dispatched(5)
    pid0 = coordinator_pid(job)
    tree = process_tree(job.p.pid)
    os.kill(pid0, signal.SIGSTOP)
    t = time.monotonic()
    assert job.finish() == ExitCode.UNFINISHED, job.text()[-3000:]
    assert time.monotonic() - t < 2 * T_FAIL + MARGIN + 10
    text = job.text()
    assert "no coordinator alive" in text or "did not finish" in text, text[-3000:]
    assert_no_process_left(tree)
    job2 = Job(cfg, 4, extra=["--resume"], supervised=True)
    assert job2.finish() == 0, job2.text()[-3000:]
    check(results(job.out), 20)


def test_three_of_five_workers_killed_two_seconds_apart_job_ends(tmp_path):
    """Was: all trials written, the job never ended in 1 of 4 runs."""
    job = Job(write_config(tmp_path, 40, end_grace=END_GRACE), 6, supervised=True)
    pids = job.pids([1, 2, 3, 4, 5])
    job.dispatched(8)
    for r in (2, 4, 5):
        os.kill(pids[r], signal.SIGKILL)
        time.sleep(2.0)
    t = time.monotonic()
    assert job.finish() == 0, job.text()[-3000:]
    ev = check(results(job.out), 40)
    assert {2, 4, 5} <= {e["rank"] for e in ev["rank-dead"]}  # (a loaded machine may add a false death)
    assert time.monotonic() - t < T_FAIL + END_GRACE + 30

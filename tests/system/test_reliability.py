"""Real ``mpirun --with-ft ulfm`` jobs, failures injected from OUTSIDE the job (os.kill) or by
the config's ``faults:`` list; then the HDF5 results file is read and checked: the planned
number of COMPLETE trials, no trial counted twice, a ``rank-dead`` event with its detection
latency for every failure, and a bounded wall time.

Worker PIDs come from the journal's ``worker`` records (the workers' Hello), read while the
job runs.  Sleep-based objectives (tests/system/objectives.py), t_fail 2.5 s, gossip 0.2 s.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mpi_helpers import kill_group, mpi_env, mpirun_path

from rdhpo_hpc.results import result_from_records
from rdhpo_hpc.storage.journal import journal_path, read_journal

HERE = Path(__file__).resolve().parent
OBJ = HERE / "objectives.py"
T_FAIL = 2.5
JOB_TIMEOUT = 90  # subprocess bound for every job

pytestmark = [pytest.mark.timeout(150), pytest.mark.skipif(mpirun_path() is None, reason="mpirun not found")]


def write_config(
    tmp: Path, max_trials: int = 20, fn: str = "sleepy", faults=(), name: str = "rel", optimizer=None, **ft
) -> Path:
    """A study of ``fn`` over x in [0, 1]; ``optimizer``: the config's optimizer section (default
    random), with a checkpoint directory in ``tmp`` for promote mode; ``ft``: fault_tolerance
    settings over the fast ones of these tests."""
    import yaml

    ftd = {"gossip_interval": 0.2, "t_fail": T_FAIL, "end_grace": 3, "max_retries": 2, **ft}
    cfg = {
        "name": name,
        "seed": 1,
        "objective": {"function": f"{OBJ}:{fn}"},
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "budget": {"max_trials": max_trials},
        "output": str(tmp / "out.h5"),
        "fault_tolerance": ftd,
        "progress_interval": 1,
    }
    if faults:
        cfg["faults"] = list(faults)
    if optimizer:
        cfg["optimizer"] = optimizer
        cfg["checkpoints"] = str(tmp / "ckpt")
    p = tmp / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


class Job:
    """One ``mpirun`` job in its own session; stdout/stderr go to files."""

    def __init__(self, cfg: Path, n: int, extra=(), env: Optional[dict] = None, supervised: bool = False):
        """``supervised``: through ``rdhpo launch -n N`` (the supervisor runs mpirun)."""
        self.cfg, self.n = cfg, n
        self.out = Path(yaml_output(cfg))
        self.log = cfg.parent / f"mpirun-{time.monotonic_ns()}.log"
        if supervised:
            cmd = [sys.executable, "-m", "rdhpo_hpc", "launch", "-n", str(n), str(cfg), *extra]
            env = {"RDHPO_MPIRUN": mpirun_path(), **(env or {})}
        else:
            cmd = [
                mpirun_path(),
                "--with-ft",
                "ulfm",
                "-n",
                str(n),
                sys.executable,
                "-m",
                "rdhpo_hpc",
                "run",
                str(cfg),
                *extra,
            ]
        self.t0 = time.monotonic()
        self.fh = open(self.log, "w")
        self.p = subprocess.Popen(
            cmd, stdout=self.fh, stderr=subprocess.STDOUT, env=mpi_env(env), cwd=str(cfg.parent), start_new_session=True
        )

    def records(self) -> list[dict]:
        jp = journal_path(str(self.out))
        return read_journal(jp) if os.path.exists(jp) else []

    def wait_for(self, pred: Callable[[list[dict]], bool], timeout: float = 40.0) -> list[dict]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            recs = self.records()
            if pred(recs):
                return recs
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"condition not reached in {timeout}s; log:\n{self.text()[-3000:]}")

    def pids(self, ranks) -> dict:
        recs = self.wait_for(lambda rs: {r["rank"] for r in rs if r.get("k") == "worker"} >= set(ranks))
        return {r["rank"]: r["pid"] for r in recs if r.get("k") == "worker"}

    def dispatched(self, k: int) -> list[dict]:
        return self.wait_for(lambda rs: sum(r.get("k") == "dispatch" for r in rs) >= k)

    def finish(self, timeout: float = JOB_TIMEOUT) -> int:
        try:
            rc = self.p.wait(timeout=max(1.0, timeout - (time.monotonic() - self.t0)))
        except subprocess.TimeoutExpired:
            left = self.processes()  # which ranks were still there, and where they sat
            self.kill()
            pytest.fail(f"job did not end within {timeout}s; processes left:\n{left}\nlog:\n{self.text()[-3000:]}")
        self.wall = time.monotonic() - self.t0
        self.fh.close()
        return rc

    def kill(self):
        """The whole tree: a supervised job's mpirun runs in a session of its own."""
        from rdhpo_hpc.supervise import process_tree

        tree = process_tree(self.p.pid)
        kill_group(self.p)
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def processes(self) -> str:
        """``ps`` of the job's session (pid, state, kernel wait channel, command): a hang's diagnosis."""
        try:
            return subprocess.run(
                ["ps", "-o", "pid,stat,wchan:24,etime,args", "-g", str(self.p.pid)],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            return f"(ps failed: {exc})"

    def text(self) -> str:
        if not self.fh.closed:
            self.fh.flush()
        return self.log.read_text(errors="replace")


def yaml_output(cfg: Path) -> str:
    import yaml

    return yaml.safe_load(cfg.read_text())["output"]


def results(path: Path):
    """From the HDF5 file itself (not the journal)."""
    from rdhpo_hpc.storage.hdf5 import read_records

    return result_from_records(read_records(str(path)), str(path))


def check(res, n_trials: int) -> dict:
    """Planned number of COMPLETE trials, each counted once; events by kind."""
    counted = [t for t in res.trials]
    assert sorted(t.trial_id for t in counted) == list(range(n_trials))
    assert [t.state for t in counted] == ["COMPLETE"] * n_trials, [(t.trial_id, t.state, t.error) for t in counted]
    done = collections.Counter(a["trial_id"] for a in res.attempts if a["state"] == "COMPLETE")
    assert set(done.values()) == {1}, f"a trial counted twice: {done}"
    ev = collections.defaultdict(list)
    for e in res.events:
        ev[e["kind"]].append(e)
    assert res.finished, res.end
    return ev


def dead_event(ev, rank) -> dict:
    (e,) = [e for e in ev["rank-dead"] if e["rank"] == rank]
    assert e["latency"] is not None and e["latency"] >= 0
    return e


def test_sigkill_one_worker(tmp_path):
    job = Job(write_config(tmp_path, 20), 6)
    pids = job.pids([1, 2, 3, 4, 5])
    job.dispatched(7)
    t_kill = time.time()
    os.kill(pids[3], signal.SIGKILL)
    job.finish()
    ev = check(results(job.out), 20)
    e = dead_event(ev, 3)
    assert e["detail"] == "mpi-failure"
    assert e["time"] - t_kill < T_FAIL / 2, f"ULFM detection took {e['time'] - t_kill:.2f}s"
    assert [x["rank"] for x in ev["rank-dead"]] == [3]
    (s,) = ev["shrink"]
    assert "size=5" in s["detail"] and s["latency"] is not None
    assert job.wall < 60


def test_sigkill_worker_holding_pipelined_trials(tmp_path):
    """3 ms trials: workers hold several attempts at once; the ones queued on the killed rank are
    re-run elsewhere and every trial still counts exactly once."""
    job = Job(write_config(tmp_path, 1500, fn="quick"), 4)
    pids = job.pids([1, 2, 3])
    job.dispatched(300)
    os.kill(pids[2], signal.SIGKILL)
    assert job.finish() == 0, job.text()[-2000:]
    res = results(job.out)
    ev = check(res, 1500)
    assert dead_event(ev, 2)["detail"] == "mpi-failure"
    lost = [a for a in res.attempts if a["state"] == "LOST" and a["rank"] == 2]
    assert lost and len(ev["requeue"]) == len(lost)
    recs = job.records()
    sent = collections.defaultdict(list)  # rank -> attempts dispatched to it so far
    ahead = 0  # dispatches to a rank that had not finished one
    ends = {(a["trial_id"], a["attempt"]): a["end_time"] for a in recs if a.get("k") == "attempt"}
    for d in (r for r in recs if r.get("k") == "dispatch"):
        ahead += any(ends.get(k, float("inf")) > d["time"] for k in sent[d["rank"]][-4:])
        sent[d["rank"]].append((d["trial_id"], d["attempt"]))
    assert ahead > 100, f"only {ahead} dispatches went to a rank still running an attempt"


def test_sigkill_two_workers_at_once(tmp_path):
    job = Job(write_config(tmp_path, 24), 8)
    pids = job.pids(range(1, 8))
    job.dispatched(9)
    t_kill = time.time()
    os.kill(pids[2], signal.SIGKILL)
    os.kill(pids[6], signal.SIGKILL)
    job.finish()
    ev = check(results(job.out), 24)
    for r in (2, 6):
        e = dead_event(ev, r)
        assert e["time"] - t_kill < T_FAIL, (r, e)
    assert sorted(x["rank"] for x in ev["rank-dead"]) == [2, 6]
    (s,) = ev["shrink"]
    assert "size=6" in s["detail"]
    assert job.wall < 75


def test_sigstop_one_worker(tmp_path):
    job = Job(write_config(tmp_path, 20), 6)
    pids = job.pids([1, 2, 3, 4, 5])
    job.dispatched(7)
    t_stop = time.time()
    os.kill(pids[4], signal.SIGSTOP)
    try:
        job.finish()
    finally:
        try:
            os.kill(pids[4], signal.SIGKILL)  # the job should have done it already
        except ProcessLookupError:
            pass
    ev = check(results(job.out), 20)
    e = dead_event(ev, 4)
    assert e["detail"] == "gossip-timeout"
    assert T_FAIL <= e["latency"] and e["time"] - t_stop < 2 * T_FAIL + 1, e
    assert ev["terminate-hung"]
    (s,) = ev["shrink"]
    assert "create_group" in s["detail"] and "size=5" in s["detail"]
    assert job.wall < 60


def test_cut_link_to_the_coordinator(tmp_path):
    """The link 0-3 is cut 2 s in (fault injection in the node): rank 3's traffic and rank 0's
    go through a third rank; rank 3 keeps working, nothing is declared dead or unreachable."""
    # decision_timeout 5 s: a Report sent at the instant of the cut can be lost; the worker then
    # keeps training after decision_timeout (bounded; seen once in ~8 runs on a loaded machine)
    job = Job(write_config(tmp_path, 60, faults=[{"cut": [0, 3], "at": 2.0}], decision_timeout=5.0), 6)
    job.finish()
    res = results(job.out)
    ev = check(res, 60)
    assert not ev["rank-dead"] and not ev["rank-unreachable"]
    t0 = res.study["start_time"]
    assert [
        a for a in res.attempts if a["rank"] == 3 and a["state"] == "COMPLETE" and a["start_time"] > t0 + 2.0 + T_FAIL
    ], "rank 3 got no work after the cut"
    assert [e for e in ev["route"] if e["rank"] == 3], ev["route"]
    assert job.wall < 60


def test_trial_time_limit_worker_ends_itself(tmp_path):
    # 14 trials: the others (1 s each, 2 workers) still run when the hung one's worker ends itself
    # at ~4 s (limit + grace), so the study lives to see ULFM report that rank (with 8 trials it
    # could end 0.03 s after that FAILED result, before any report: no rank-dead event)
    job = Job(write_config(tmp_path, 14, fn="hang_first", trial_time_limit=2.0), 4)
    job.finish()
    res = results(job.out)
    t0 = next(t for t in res.trials if t.trial_id == 0)
    assert t0.state == "FAILED" and "time limit" in t0.error
    assert sorted(t.state for t in res.trials if t.trial_id) == ["COMPLETE"] * 13
    assert [e["detail"] for e in res.events if e["kind"] == "rank-dead"] == ["mpi-failure"]
    assert job.wall < 60


def test_sigkill_rank0_takeover(tmp_path):
    job = Job(write_config(tmp_path, 20), 6)
    job.pids([1, 2, 3, 4, 5])
    job.dispatched(8)
    # acknowledged (journalled) results before the kill must survive
    time.sleep(0.3)
    before = {r["trial_id"]: r["value"] for r in job.records() if r.get("k") == "tell"}
    os.kill(job.p.pid, 0)
    coord_pid = _rank0_pid(job)
    os.kill(coord_pid, signal.SIGKILL)
    job.finish()
    ev = check(results(job.out), 20)
    (tk,) = ev["takeover"]
    assert tk["rank"] == 1
    assert dead_event(ev, 0)["detail"] == "mpi-failure"
    res = results(job.out)
    for tid, v in before.items():
        assert next(t for t in res.trials if t.trial_id == tid).value == v
    assert ev["adopt"] or ev["orphan-released"], "running attempts neither adopted nor released"
    assert job.wall < 75


def test_sigkill_rank0_takeover_mobster_promote(tmp_path):
    """The model-based multi-fidelity strategy (a GP inside ASHA, promote mode) survives the loss of
    rank 0: the successor replays the journal into the same rungs and model, every trial counts
    once, and every promoted trial resumes its parent's checkpoint with its parent's config."""
    opt = {"name": "mobster", "min_budget": 1, "max_budget": 4, "eta": 2, "mode": "promote"}
    job = Job(write_config(tmp_path, 24, fn="epochs", optimizer=opt), 6)
    job.pids([1, 2, 3, 4, 5])
    job.dispatched(12)  # past the random design (5 configurations): the GP suggests
    before = {r["trial_id"]: r["value"] for r in job.records() if r.get("k") == "tell"}
    os.kill(_rank0_pid(job), signal.SIGKILL)
    job.finish()
    res = results(job.out)
    ev = check(res, 24)
    (tk,) = ev["takeover"]
    assert tk["rank"] == 1
    for tid, v in before.items():
        assert next(t for t in res.trials if t.trial_id == tid).value == v
    done = {a["trial_id"]: a for a in res.attempts if a["state"] == "COMPLETE"}
    promoted = [a for a in done.values() if "promoted_from" in a["info"]]
    assert promoted and any(a["trial_id"] > max(before, default=0) for a in promoted)
    for a in promoted:
        parent = done[a["info"]["promoted_from"]]
        assert a["params"] == parent["params"] and a["budget"] > parent["budget"]
        assert a["checkpoint_from"] == parent["trial_id"] and a["info"]["rung"] == parent["info"]["rung"] + 1
    assert job.wall < 75


def test_sigkill_rank0_without_takeover_then_resume(tmp_path):
    cfg = write_config(tmp_path, 20, takeover=False)
    job = Job(cfg, 6)
    job.pids([1, 2, 3, 4, 5])
    job.dispatched(9)
    os.kill(_rank0_pid(job), signal.SIGKILL)
    job.finish()
    assert job.wall < 45  # workers noticed and left: no hang
    acked = {r["trial_id"]: r["value"] for r in read_journal(journal_path(str(job.out))) if r.get("k") == "tell"}
    assert 0 < len(acked) < 20
    job2 = Job(cfg, 4, extra=["--resume"])
    assert job2.finish() == 0, job2.text()[-3000:]
    res = results(job.out)
    check(res, 20)
    for tid, v in acked.items():  # zero acknowledged results lost or changed
        assert next(t for t in res.trials if t.trial_id == tid).value == v
    assert any(e["kind"] == "resume" for e in res.events)


def _rank0_pid(job: Job) -> int:
    """Rank 0's pid: the one python rank process whose pid is not a worker's."""
    workers = {r["pid"] for r in job.records() if r.get("k") == "worker"}
    out = subprocess.run(
        ["pgrep", "-s", str(os.getpgid(job.p.pid)), "-f", "rdhpo_hpc run"], capture_output=True, text=True
    ).stdout.split()
    cands = [int(p) for p in out if int(p) not in workers and int(p) != job.p.pid]
    assert len(cands) == 1, (cands, workers)
    return cands[0]


def test_sigstop_rank0_takeover_fences_the_old_coordinator(tmp_path):
    job = Job(write_config(tmp_path, 20), 6)
    job.pids([1, 2, 3, 4, 5])
    job.dispatched(8)
    pid0 = _rank0_pid(job)
    os.kill(pid0, signal.SIGSTOP)
    try:
        job.finish()
    finally:
        try:
            os.kill(pid0, signal.SIGKILL)
        except ProcessLookupError:
            pass
    ev = check(results(job.out), 20)
    (tk,) = ev["takeover"]
    assert tk["rank"] == 1
    assert dead_event(ev, 0)["detail"] in ("gossip-timeout", "coordinator-replaced")
    assert [e["rank"] for e in ev["coordinator-start"]] == [0, 1]
    assert job.wall < 75


def test_busy_python_objective_longer_than_t_fail_no_false_death(tmp_path):
    job = Job(write_config(tmp_path, 6, fn="busy"), 4, env={"RDHPO_TEST_BUSY_S": str(T_FAIL + 1.0)})
    job.finish()
    ev = check(results(job.out), 6)
    assert not ev["rank-dead"] and not ev["rank-unreachable"]
    assert job.wall < 60

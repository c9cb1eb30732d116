"""Randomized chaos: seeded fault schedules against real supervised jobs (``rdhpo launch``).

``python -m bench.chaos [--quick] [--seeds N] [--first K] [--json] [--cluster] [--membership swim]``

Each seed draws a schedule: the kind of fault (SIGKILL = crash, SIGSTOP = hang), one or two
victims (rank 0 included), and the moment — during start-up (as soon as the rank processes
exist, before MPI is up), mid-study, or during shutdown (when the last trials are running).  A
job that ends resumable (exit 3, 5 or 6: what the SLURM script requeues) is run once more with
``--resume``, as the requeue would.  Per schedule it records: ended (every job of it ended by
itself within its bound: ``t_fail + end_grace + 30 s`` after the fault, ``startup_timeout +
30 s`` for start-up faults, plus one requeue), trials lost (not COMPLETE at the end), trials
counted twice (two COMPLETE attempts), and the time from the fault to the end.  Goal: 100 %
ended, 0 lost, 0 twice.  It prints a table (or JSON lines with ``--json``).

``--cluster`` runs the schedules on the virtual cluster of the test suite
(``tests/system/vcluster.py``: network-namespace nodes, root): rank 0 alone on node1, two workers
on node2 and on node3, over TCP, and the faults are a node's: ``node-crash`` (every process of
the node killed at once), ``link-down`` (for good), ``link-flap`` (down 3-8 s), ``loss-delay``
(20 % loss, 200 ms), ``partition`` (two nodes cannot talk), a rank killed or stopped, and
compound ones; victims node1 (rank 0's) included.  A job whose mpirun died with its node is
launched again (the requeue) on the same nodes.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from bench.common import ROOT, mpi_env, mpirun

OBJ = os.path.join(ROOT, "tests", "system", "objectives.py")
T_FAIL, END_GRACE, STARTUP = 2.5, 3.0, 20.0
KINDS = [
    "kill-worker",
    "stop-worker",
    "kill-rank0",
    "stop-rank0",
    "kill-two-workers",
    "stop-worker+kill-rank0",
    "kill-three-workers",
    "kill-worker+stop-worker",
]
MOMENTS = ["start-up", "mid-study", "shutdown"]


@dataclass
class Outcome:
    seed: int
    kind: str
    moment: str
    ranks: int
    trials: int
    exit_codes: list = field(default_factory=list)
    ended: bool = True
    lost: int = 0
    twice: int = 0
    fault_to_end_s: Optional[float] = None
    note: str = ""


def draw(seed: int) -> tuple[str, str, int, int]:
    rng = random.Random(seed)
    return rng.choice(KINDS), rng.choice(MOMENTS), rng.choice([5, 6]), rng.choice([16, 24])


def write_config(tmp: Path, trials: int, membership: str = "auto") -> Path:
    import yaml

    cfg = {
        "name": "chaos",
        "seed": 1,
        "objective": {"function": f"{OBJ}:sleepy"},
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "budget": {"max_trials": trials},
        "output": str(tmp / "out.h5"),
        "progress_interval": 5,
        "fault_tolerance": {
            "gossip_interval": 0.2,
            "t_fail": T_FAIL,
            "end_grace": END_GRACE,
            "max_retries": 3,
            "startup_timeout": STARTUP,
            "membership": membership,
        },
    }
    p = tmp / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _journal(out: Path) -> list[dict]:
    from rdhpo_hpc.storage.journal import journal_path, read_journal

    jp = journal_path(str(out))
    return read_journal(jp) if os.path.exists(jp) else []


def _rank_pids(root: int) -> list[int]:
    from rdhpo_hpc.supervise import process_tree

    out = []
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                args = fh.read().split(b"\0")
        except OSError:
            continue
        if b"run" in args and not args[0].endswith((b"prterun", b"mpirun")):
            out.append(pid)
    return sorted(out)


def _pids_by_rank(out: Path) -> dict[int, int]:
    pids = {}
    for r in _journal(out):
        if r.get("k") == "worker":
            pids[r["rank"]] = r["pid"]
        elif r.get("k") == "event" and r.get("kind") == "coordinator-start" and r.get("rank") == 0:
            pids[0] = int(dict(p.split("=", 1) for p in r["detail"].split() if "=" in p)["pid"])
    return pids


def _launch(cfg: Path, n: int, log: Path, resume: bool) -> subprocess.Popen:
    env = mpi_env()
    env.update({"RDHPO_MPIRUN": mpirun(), "OMPI_MCA_btl": "self,sm,tcp", "PYTHONUNBUFFERED": "1"})
    cmd = [sys.executable, "-m", "rdhpo_hpc", "launch", "-n", str(n), str(cfg)] + (["--resume"] if resume else [])
    return subprocess.Popen(
        cmd, stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env, cwd=str(cfg.parent), start_new_session=True
    )


def _kill_all(p: subprocess.Popen) -> None:
    from rdhpo_hpc.supervise import process_tree

    for pid in process_tree(p.pid) + [p.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _victims(kind: str, n: int, rng: random.Random) -> list[tuple[int, int]]:
    """[(rank, signal)] in the order they are hit (1 s apart for compound faults)."""
    workers = list(range(1, n))
    rng.shuffle(workers)
    K, S = signal.SIGKILL, signal.SIGSTOP
    return {
        "kill-worker": [(workers[0], K)],
        "stop-worker": [(workers[0], S)],
        "kill-rank0": [(0, K)],
        "stop-rank0": [(0, S)],
        "kill-two-workers": [(workers[0], K), (workers[1], K)],
        "stop-worker+kill-rank0": [(workers[0], S), (0, K)],
        "kill-three-workers": [(workers[0], K), (workers[1], K), (workers[2], K)],
        "kill-worker+stop-worker": [(workers[0], K), (workers[1], S)],
    }[kind]


def run_schedule(seed: int, tmp: Path, membership: str = "auto") -> Outcome:
    kind, moment, n, trials = draw(seed)
    rng = random.Random(seed * 7919)
    res = Outcome(seed, kind, moment, n, trials)
    cfg = write_config(tmp, trials, membership)
    out = tmp / "out.h5"
    log = tmp / "job.log"
    p = _launch(cfg, n, log, resume=False)
    hit: list[int] = []
    t_fault = None
    try:
        victims = _victims(kind, n, rng)
        if moment == "start-up":
            deadline = time.monotonic() + 30
            while len(_rank_pids(p.pid)) < n and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 1.0))
            ranks = _rank_pids(p.pid)  # in launch order: rank 0 first (best effort)
            pids = {r: ranks[r] for r, _ in victims if r < len(ranks)}
        else:
            deadline = time.monotonic() + 60
            want = trials - rng.randint(1, n - 1) if moment == "shutdown" else rng.randint(n, trials // 2)
            while time.monotonic() < deadline and p.poll() is None:
                recs = _journal(out)
                if sum(r.get("k") == "dispatch" for r in recs) >= want:
                    break
                time.sleep(0.05)
            pids = _pids_by_rank(out)
        t_fault = time.monotonic()
        for i, (rank, sig) in enumerate(victims):
            if i:
                time.sleep(1.0)
            if rank in pids:
                try:
                    os.kill(pids[rank], sig)
                    hit.append(pids[rank])
                except ProcessLookupError:
                    pass
        bound = (STARTUP if moment == "start-up" else T_FAIL) + END_GRACE + 30 + 1.0 * len(victims)
        for attempt in range(2):
            try:
                rc = p.wait(timeout=bound)
            except subprocess.TimeoutExpired:
                res.ended = False
                res.note = f"job {attempt + 1} did not end within {bound:.0f} s"
                _kill_all(p)
                break
            res.exit_codes.append(rc)
            if rc not in (3, 5, 6) or attempt == 1:
                break
            p = _launch(cfg, n, log, resume=out.exists() or os.path.exists(str(out) + ".journal"))
            bound = STARTUP + 60 + trials * 1.5
        res.fault_to_end_s = round(time.monotonic() - t_fault, 2)
    finally:
        _kill_all(p)
        for pid in hit:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    recs = _journal(out)
    done = collections.Counter(
        r["trial_id"]
        for r in recs
        if r.get("k") == "attempt"
        and r.get("state") == "COMPLETE"
        and "late result ignored" not in (r.get("error") or "")
    )
    told = collections.Counter(r["trial_id"] for r in recs if r.get("k") == "tell" and r.get("state") == "COMPLETE")
    res.lost = sum(1 for t in range(trials) if told[t] == 0)
    res.twice = sum(1 for t in range(trials) if told[t] > 1 or done[t] > 1)
    return res


# -- the virtual cluster ----------------------------------------------------------------------------
CLUSTER_KINDS = [
    "node-crash",
    "link-down",
    "link-flap",
    "loss-delay",
    "partition",
    "kill-rank",
    "stop-rank",
    "node-crash+kill-rank",
    "link-flap+stop-rank",
]
HOSTS = {"node1": 1, "node2": 2, "node3": 2}
RANK_NODE = {0: "node1", 1: "node2", 2: "node2", 3: "node3", 4: "node3"}


def draw_cluster(seed: int) -> tuple[str, str, str, int]:
    rng = random.Random(10_000 + seed)
    return (
        rng.choice(CLUSTER_KINDS),
        rng.choice(["mid-study", "mid-study", "shutdown"]),
        rng.choice(["node1", "node2", "node3"]),
        rng.choice([20, 30]),
    )


def _vcluster():
    sys.path.insert(0, os.path.join(ROOT, "tests", "system"))
    import vcluster

    return vcluster


def _cluster_fault(vc, kind: str, node: str, rng: random.Random, out: Path) -> None:
    pids = _pids_by_rank(out)
    ranks = [r for r, n in RANK_NODE.items() if n == node and r in pids]
    for part in kind.split("+"):
        if part == "node-crash":
            vc.crash_node(node)
        elif part == "link-down":
            vc.link_down(node)
        elif part == "link-flap":
            vc.link_down(node)
            time.sleep(rng.uniform(3.0, 8.0))
            vc.link_up(node)
        elif part == "loss-delay":
            vc.netem(node, loss=20, delay_ms=200)
        elif part == "partition":
            other = rng.choice([n for n in ("node1", "node2", "node3") if n != node])
            vc.partition(node, other)
        elif part in ("kill-rank", "stop-rank") and ranks:
            try:
                os.kill(pids[rng.choice(ranks)], signal.SIGKILL if part == "kill-rank" else signal.SIGSTOP)
            except ProcessLookupError:
                pass
        time.sleep(0.5)


def run_cluster_schedule(seed: int, tmp: Path, membership: str = "auto") -> Outcome:
    vc = _vcluster()
    reason = vc.ensure_cluster(slurm=False)
    if reason:
        raise SystemExit(f"bench.chaos --cluster: {reason}")
    kind, moment, node, trials = draw_cluster(seed)
    rng = random.Random(seed * 104729)
    res = Outcome(seed, f"{kind}@{node}", moment, 5, trials)
    cfg = write_config(tmp, trials, membership)
    out = tmp / "out.h5"
    cmd, env = vc.mpirun_command(["-m", "rdhpo_hpc", "run", str(cfg)], hosts=HOSTS)
    log = tmp / "job.log"

    def launch(resume: bool):
        argv = [sys.executable, "-m", "rdhpo_hpc", "supervise", "--", *cmd] + (["--resume"] if resume else [])
        return vc.ClusterJob(argv, env, log=log, cwd=tmp)

    job = launch(False)
    t_fault = time.monotonic()
    try:
        want = trials - rng.randint(1, 4) if moment == "shutdown" else rng.randint(5, trials // 2)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and job.poll() is None:
            if sum(r.get("k") == "dispatch" for r in _journal(out)) >= want:
                break
            time.sleep(0.1)
        t_fault = time.monotonic()
        _cluster_fault(vc, kind, node, rng, out)
        bound = T_FAIL + END_GRACE + 30 + trials * 1.2 / 2
        for attempt in range(2):
            try:
                rc = job.wait(bound)
            except TimeoutError as exc:
                res.ended = False
                res.note = f"job {attempt + 1} did not end within {bound:.0f} s: {str(exc)[:300]}"
                break
            res.exit_codes.append(rc)
            if rc not in (3, 5, 6) or attempt == 1:
                break
            job.kill()
            vc.reset()  # the crashed node comes back, faults cleared: the requeue
            job = launch(os.path.exists(str(out) + ".journal"))
            bound = 60 + trials * 1.5
        res.fault_to_end_s = round(time.monotonic() - t_fault, 2)
    finally:
        job.kill()
        vc.reset()
    recs = _journal(out)
    told = collections.Counter(r["trial_id"] for r in recs if r.get("k") == "tell" and r.get("state") == "COMPLETE")
    res.lost = sum(1 for t in range(trials) if told[t] == 0)
    res.twice = sum(1 for t in range(trials) if told[t] > 1)
    coordinators = {r["rank"] for r in recs if r.get("k") == "event" and r.get("kind") == "coordinator-start"}
    takeovers = [r for r in recs if r.get("k") == "event" and r.get("kind") == "takeover"]
    if len(coordinators) > 1 + len(takeovers):
        res.note += f" two coordinators at once? {sorted(coordinators)}"
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="8 schedules (the CI subset uses 3 fixed seeds)")
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--first", type=int, default=0, help="first seed")
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--cluster",
        action="store_true",
        help="node and network faults on the virtual cluster (root; tests/system/vcluster.py)",
    )
    ap.add_argument(
        "--membership",
        default="auto",
        choices=["auto", "gossip", "swim"],
        help="fault_tolerance.membership of the jobs (auto: gossip below 64 ranks)",
    )
    args = ap.parse_args()
    seeds = range(args.first, args.first + (8 if args.quick else args.seeds))
    rows = []
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix="rdhpo-chaos-") as d:
            o = (run_cluster_schedule if args.cluster else run_schedule)(seed, Path(d), args.membership)
        rows.append(o)
        if args.json:
            row = {"bench": "chaos", "metric": "schedule", "value": o.fault_to_end_s, "unit": "s fault to end"}
            print(json.dumps({**row, **asdict(o)}), flush=True)
        else:
            print(
                f"seed {o.seed:3d} {o.kind:24s} {o.moment:9s} n={o.ranks} trials={o.trials} "
                f"exit={o.exit_codes} ended={o.ended} lost={o.lost} twice={o.twice} "
                f"fault->end {o.fault_to_end_s}s {o.note}",
                flush=True,
            )
    ended = sum(o.ended for o in rows)
    ends = sorted(o.fault_to_end_s for o in rows if o.fault_to_end_s is not None)
    summary = {
        "bench": "chaos",
        "metric": "summary",
        "where": "cluster" if args.cluster else "one node",
        "value": None,
        "unit": "% ended",
        "schedules": len(rows),
        "ended": ended,
        "ended_pct": round(100.0 * ended / max(len(rows), 1), 1),
        "trials_lost": sum(o.lost for o in rows),
        "trials_twice": sum(o.twice for o in rows),
        "jobs_not_ended": len(rows) - ended,
        "fault_to_end_median_s": ends[len(ends) // 2] if ends else None,
        "fault_to_end_max_s": ends[-1] if ends else None,
        "requeued": sum(len(o.exit_codes) > 1 for o in rows),
    }
    summary["value"] = summary["ended_pct"]
    print(json.dumps(summary), flush=True)
    if args.cluster and os.environ.get("RDHPO_VCLUSTER_KEEP") != "1":
        _vcluster().teardown_cluster()


if __name__ == "__main__":
    main()

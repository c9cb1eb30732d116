"""Reliability benchmark (not a test): failure-detection latency, gossip cost, scaling, soak.

    .venv/bin/python bench/reliability.py --quick            # ~6 minutes on 2 cores
    .venv/bin/python bench/reliability.py --only sim         # just the simulation
    parts: crash, hang, cost, sim, soak

Prints one JSON line per measurement, then a Markdown table.

* crash / hang: real ``mpirun --with-ft ulfm -n 6`` jobs with a sleep objective; a worker is
  SIGKILLed (crash) or SIGSTOPped (hang) from outside; latency = coordinator's ``rank-dead``
  event time minus the signal time.  Crash without ULFM is measured over the in-process twin
  (``Hub(ulfm=False)``), since plain ``mpirun`` tears the job down when a rank dies.
* cost: gossip messages and bytes per rank per second (Node counters, in-process, 16 ranks).
* sim: the membership algorithm in simulated time for 1,000 and 10,000 ranks.  Element-wise max
  makes the columns of the heartbeat matrix independent, so one column (one subject rank) is
  simulated exactly, vectorised with numpy; it is cross-checked against the real
  :class:`~rdhpo_hpc.membership.Membership` objects at N=64.  Reports the worst heartbeat
  staleness among live ranks (the smallest safe ``t_fail``) and the time until every rank has
  declared a dead subject dead.
* soak: 16 ranks, default fault-tolerance settings, every worker busy-looping in pure Python
  (both cores saturated) for the soak duration; counts false death verdicts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OBJ = REPO / "tests" / "system" / "objectives.py"
ROWS: list[dict] = []


# the headline number of each part, so `python -m bench` collects it: (key, metric, unit)
HEADLINE = {
    "crash": ("median_s", "detection_median", "s"),
    "hang": ("median_s", "detection_median", "s"),
    "cost": ("msgs_per_rank_s", "gossip_msgs_per_rank", "msgs/s"),
    "sim-check": ("real_all_detected_s", "sim_check_all_detected", "s"),
    "sim": ("detect_all_s", "sim_all_detected", "s"),
    "soak": ("false_deaths", "false_deaths", "count"),
}


def emit(**row) -> None:
    """One JSON line in the bench format (bench, metric, value, unit) with the part's details."""
    key, metric, unit = HEADLINE[row["part"]]
    ROWS.append(row)
    print(
        json.dumps(
            {"bench": "reliability", "metric": f"{row['part']}/{metric}", "value": row[key], "unit": unit, **row}
        ),
        flush=True,
    )


# -- real MPI jobs -------------------------------------------------------------------------------
def mpi_env(extra=None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_COMM_WORLD", "PMIX_", "PMI_"))}
    env.update(
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        PRTE_MCA_rmaps_default_mapping_policy=":oversubscribe",
        OMPI_MCA_btl="self,sm,tcp",
        PYTHONPATH=str(REPO),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


def start_job(tmp: Path, n: int, fn: str, max_trials: int, ft: dict, wall=None, env=None):
    import yaml

    cfg = {
        "name": "bench",
        "seed": 0,
        "objective": {"function": f"{OBJ}:{fn}"},
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "budget": {"max_trials": max_trials, **({"max_wall_time": wall} if wall else {})},
        "output": str(tmp / "out.h5"),
        "fault_tolerance": ft,
        "progress_interval": 30,
    }
    (tmp / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    mpirun = str(Path(sys.executable).parent / "mpirun")
    cmd = [
        mpirun,
        "--with-ft",
        "ulfm",
        "-n",
        str(n),
        sys.executable,
        "-m",
        "rdhpo_hpc",
        "run",
        str(tmp / "cfg.yaml"),
        "--overwrite",
    ]
    log = open(tmp / "log.txt", "w")
    return subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=mpi_env(env), cwd=str(tmp), start_new_session=True
    ), tmp / "out.h5"


def journal(out: Path) -> list[dict]:
    from rdhpo_hpc.storage.journal import journal_path, read_journal

    p = journal_path(str(out))
    return read_journal(p) if os.path.exists(p) else []


def wait(pred, out, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        recs = journal(out)
        if pred(recs):
            return recs
        time.sleep(0.05)
    raise TimeoutError("job did not reach the expected state")


def finish(p, timeout=120):
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        return None


def detection_run(kind: str, t_fail: float, interval: float) -> dict:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ft = {"gossip_interval": interval, "t_fail": t_fail, "end_grace": 3}
        p, out = start_job(tmp, 6, "sleepy", 14, ft)
        try:
            recs = wait(
                lambda rs: (
                    {r["rank"] for r in rs if r.get("k") == "worker"} >= {1, 2, 3, 4, 5}
                    and sum(r.get("k") == "dispatch" for r in rs) >= 6
                ),
                out,
            )
            pid = next(r["pid"] for r in recs if r.get("k") == "worker" and r["rank"] == 3)
            t = time.time()
            os.kill(pid, signal.SIGKILL if kind == "crash" else signal.SIGSTOP)
            recs = wait(lambda rs: any(r.get("kind") == "rank-dead" for r in rs), out, timeout=4 * t_fail + 10)
            ev = next(r for r in recs if r.get("kind") == "rank-dead")
            finish(p)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            if kind == "hang":
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, UnboundLocalError):
                    pass
        return {"latency_s": ev["time"] - t, "cause": ev["detail"]}


def bench_detection(kind: str, runs: int, t_fails: list) -> None:
    for t_fail in t_fails:
        lat = [detection_run(kind, t_fail, 0.2) for _ in range(runs)]
        xs = [x["latency_s"] for x in lat]
        emit(
            part=kind,
            transport="mpi-ulfm",
            t_fail=t_fail,
            gossip_interval=0.2,
            runs=runs,
            median_s=round(statistics.median(xs), 3),
            max_s=round(max(xs), 3),
            causes=sorted({x["cause"] for x in lat}),
        )


def bench_crash_no_ulfm(runs: int, t_fail: float) -> None:
    from rdhpo_hpc.comm.inproc import Hub
    from rdhpo_hpc.messages import PeerDown
    from rdhpo_hpc.node import GossipSettings, Node

    xs = []
    for _ in range(runs):
        hub = Hub(6, ulfm=False)
        nodes = [Node(hub.transport(r), GossipSettings(0.2, 2, t_fail)).start() for r in range(6)]
        time.sleep(0.5 + random.random() * 0.2)
        t = time.monotonic()
        hub.kill(3)
        got = None
        while got is None and time.monotonic() - t < 3 * t_fail:
            m = nodes[0].recv(0.01)
            if m and isinstance(m[1], PeerDown):
                got = time.monotonic() - t
        xs.append(got)
        for n in nodes:
            n.close(0.1)
    emit(
        part="crash",
        transport="inproc-no-ulfm (gossip only)",
        t_fail=t_fail,
        gossip_interval=0.2,
        runs=runs,
        median_s=round(statistics.median(xs), 3),
        max_s=round(max(xs), 3),
        causes=["gossip-timeout"],
    )


# -- gossip cost ----------------------------------------------------------------------------------
def bench_cost(n: int = 16, seconds: float = 5.0) -> None:
    from rdhpo_hpc.comm.inproc import Hub
    from rdhpo_hpc.node import GossipSettings, Node

    for interval, t_fail in ((0.5, 10.0), (0.2, 2.5)):
        hub = Hub(n)
        nodes = [Node(hub.transport(r), GossipSettings(interval, 2, t_fail)).start() for r in range(n)]
        time.sleep(seconds)
        for x in nodes:
            x.close(0.1)
        msgs = sum(x.gossip_sent for x in nodes) / n / seconds
        byts = sum(x.gossip_bytes for x in nodes) / n / seconds
        emit(
            part="cost",
            ranks=n,
            gossip_interval=interval,
            fanout=2,
            t_fail=t_fail,
            msgs_per_rank_s=round(msgs, 2),
            bytes_per_rank_s=round(byts, 1),
            note="bytes: 8 per vector entry + 64 envelope (pickled size is similar)",
        )


# -- simulation ----------------------------------------------------------------------------------
def sim_column(n: int, interval=0.5, fanout=2, t_fail=10.0, t_end=60.0, die_at=None, dt=None, seed=0):
    """One subject rank (index 0) seen by n ranks; gossip of whole vectors = column-wise max.

    Returns (max staleness among live observers while the subject lives, detection times)."""
    rng = np.random.default_rng(seed)
    dt = dt or interval / 10
    phase = rng.integers(0, int(round(interval / dt)), size=n)
    period = int(round(interval / dt))
    hb = np.zeros(n, dtype=np.int64)
    last = np.zeros(n)
    declared = np.full(n, np.nan)
    worst = 0.0
    pending = None
    steps = int(t_end / dt)
    alive_subject = True
    for k in range(1, steps + 1):
        t = k * dt
        if pending is not None:  # deliveries from the previous tick
            tgt, val = pending
            new = np.zeros(n, dtype=np.int64)
            np.maximum.at(new, tgt, val)
            grew = new > hb
            hb = np.maximum(hb, new)
            last[grew & np.isnan(declared)] = t
            pending = None
        if die_at is not None and t >= die_at:
            alive_subject = False
        due = np.nonzero(phase == (k % period))[0]
        if not alive_subject:
            due = due[due != 0]
        if 0 in due:
            hb[0] += 1
            last[0] = t
        if len(due):
            tg = rng.integers(0, n - 1, size=(len(due), fanout))
            tg = tg + (tg >= due[:, None])  # never to itself (duplicates allowed: rare)
            pending = (tg.ravel(), np.repeat(hb[due], fanout))
        stale = t - last
        stale[0] = 0
        if alive_subject:
            worst = max(worst, float(stale[1:].max()))
        newly = (stale > t_fail) & np.isnan(declared)
        newly[0] = False
        declared[newly] = t
        if die_at is not None and not alive_subject and not np.isnan(declared[1:]).any():
            break
    return worst, declared[1:]


def sim_real(n: int, interval=0.5, fanout=2, t_fail=10.0, t_end=40.0, die_at=20.0, dt=0.05, seed=0):
    """Cross-check: the real Membership objects (N small), same timing model."""
    from rdhpo_hpc.membership import Membership

    rng = random.Random(seed)
    ms = [
        Membership(r, n, 0.0, interval=interval, fanout=fanout, t_fail=t_fail, rng=random.Random(rng.random()))
        for r in range(n)
    ]
    for m in ms:
        m.next_beat = rng.randrange(0, int(interval / dt)) * dt
    inflight, det = [], {}
    t = 0.0
    while t < t_end:
        t = round(t + dt, 9)
        for dst, vec in inflight:
            ms[dst].merge(vec, t)
        inflight = []
        for r, m in enumerate(ms):
            if r == 0 and t >= die_at:
                continue
            if m.due(t):
                for p in m.beat(t):
                    inflight.append((p, list(m.heartbeats)))
            for v in m.check(t):
                if v.rank == 0:
                    det[r] = t
    return [det.get(r, float("nan")) for r in range(1, n)]


def bench_sim(sizes, quick: bool) -> None:
    interval, fanout = 0.5, 2
    # cross-check at N=64 with t_fail=10
    real = sim_real(64, interval, fanout, 10.0, t_end=40.0, die_at=20.0)
    col = [sim_column(64, interval, fanout, 10.0, t_end=40.0, die_at=20.0, seed=s)[1] for s in range(3)]
    emit(
        part="sim-check",
        ranks=64,
        real_all_detected_s=round(max(real) - 20.0, 2),
        column_all_detected_s=[round(float(np.nanmax(c)) - 20.0, 2) for c in col],
    )
    for n in sizes:
        worst = []
        for s in range(2 if quick else 5):
            w, _ = sim_column(n, interval, fanout, t_fail=1e9, t_end=40.0, seed=s)
            worst.append(w)
        det_first, det_all = [], []
        for s in range(2 if quick else 5):
            _, d = sim_column(n, interval, fanout, t_fail=10.0, t_end=60.0, die_at=20.0, seed=100 + s)
            det_first.append(float(np.nanmin(d)) - 20.0)
            det_all.append(float(np.nanmax(d)) - 20.0)
        emit(
            part="sim",
            ranks=n,
            gossip_interval=interval,
            fanout=fanout,
            t_fail=10.0,
            max_live_staleness_s=round(max(worst), 2),
            detect_first_s=round(statistics.median(det_first), 2),
            detect_all_s=round(statistics.median(det_all), 2),
            msgs_per_rank_s=fanout / interval,
            bytes_per_rank_s=int(fanout / interval * (8 * n + 64)),
        )


# -- soak ------------------------------------------------------------------------------------------
def bench_soak(seconds: float, n: int = 16) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ft = {"gossip_interval": 0.5, "t_fail": 10.0, "end_grace": 10}
        t0 = time.monotonic()
        p, out = start_job(tmp, n, "busy", 100000, ft, wall=seconds, env={"RDHPO_TEST_BUSY_S": "4"})
        rc = finish(p, timeout=seconds + 120)
        recs = journal(out)
        false = [r for r in recs if r.get("kind") in ("rank-dead", "rank-unreachable")]
        done = sum(1 for r in recs if r.get("k") == "tell")
        load = os.getloadavg()[0]
        emit(
            part="soak",
            ranks=n,
            seconds=seconds,
            gossip_interval=0.5,
            t_fail=10.0,
            rc=rc,
            wall_s=round(time.monotonic() - t0, 1),
            trials_done=done,
            false_deaths=len(false),
            loadavg_1m=round(load, 1),
            detail=[(r.get("rank"), r.get("kind")) for r in false],
        )


def table() -> str:
    lines = ["| part | setting | result |", "|---|---|---|"]
    for r in ROWS:
        part = r["part"]
        if part in ("crash", "hang"):
            lines.append(
                f"| {part} detection | {r['transport']}, t_fail {r['t_fail']} s, gossip {r['gossip_interval']} s,"
                f" {r['runs']} runs | median {r['median_s']} s, max {r['max_s']} s ({', '.join(r['causes'])}) |"
            )
        elif part == "cost":
            lines.append(
                f"| gossip cost | {r['ranks']} ranks, interval {r['gossip_interval']} s, fanout 2 |"
                f" {r['msgs_per_rank_s']} msgs/s, {r['bytes_per_rank_s']} B/s per rank |"
            )
        elif part == "sim-check":
            lines.append(
                f"| sim cross-check | 64 ranks, t_fail 10 s | real Membership: all detected "
                f"{r['real_all_detected_s']} s; column model {r['column_all_detected_s']} s |"
            )
        elif part == "sim":
            lines.append(
                f"| simulation | {r['ranks']} ranks, interval 0.5 s, fanout 2, t_fail 10 s |"
                f" worst live staleness {r['max_live_staleness_s']} s; detected by first "
                f"{r['detect_first_s']} s, by all {r['detect_all_s']} s; "
                f"{r['msgs_per_rank_s']} msgs/s, {r['bytes_per_rank_s']} B/s per rank |"
            )
        elif part == "soak":
            lines.append(
                f"| false-death soak | {r['ranks']} ranks busy-looping, {r['seconds']} s, defaults |"
                f" {r['false_deaths']} false verdicts ({r['trials_done']} trials, load {r['loadavg_1m']}) |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="*", default=["crash", "hang", "cost", "sim", "soak"])
    ap.add_argument("--soak-seconds", type=float, default=None)
    a = ap.parse_args()
    runs = 3 if a.quick else 5
    if "crash" in a.only:
        bench_detection("crash", runs, [2.5])
        bench_crash_no_ulfm(runs, 2.5)
    if "hang" in a.only:
        bench_detection("hang", runs, [2.0, 4.0] if a.quick else [2.0, 4.0, 8.0])
    if "cost" in a.only:
        bench_cost()
    if "sim" in a.only:
        bench_sim([100, 1000, 10000], a.quick)
    if "soak" in a.only:
        bench_soak(a.soak_seconds or (120 if a.quick else 600))
    print()
    print(table())


if __name__ == "__main__":
    main()

"""Shared helpers of the benches, and the MPI study runner they launch.

``mpirun -n N python -m bench.common --objective sleep --trial-time 1 --trials 64 --output X.h5``
runs one study with :func:`rdhpo_hpc.optimize` on every rank (rank 0 coordinates) and prints one
JSON line per rank: ``{"rank", "cpu_s", "wall_s", "maxrss_kb", ...}`` measured after the imports
(so MPI start-up is excluded from ``cpu_s``), rank 0 adding the study's own numbers read back from
the results file (/study start_time and end_time).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any, Callable, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "bench", "out")
DATE = "2026-11-28"


def run_seed_children(
    child_cmd: Callable[[int], list[str]], seeds: int, procs: int, time_limit: float
) -> tuple[list[dict], list[str]]:
    """Run ``child_cmd(seed)`` for every seed, ``procs`` at a time, each in its own session, and
    collect the ``{"run": ...}`` lines they print; a child still running at ``time_limit`` seconds
    is SIGKILLed with its process group.  Returns (rows, notes on children that failed or were cut)."""
    import signal
    import threading

    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    deadline = time.monotonic() + time_limit
    pending, rows, notes = list(range(seeds)), [], []
    running: list[tuple[int, subprocess.Popen, threading.Thread]] = []
    lock = threading.Lock()

    def reader(p: subprocess.Popen) -> None:
        assert p.stdout is not None
        for line in p.stdout:
            if line.startswith('{"run"'):
                with lock:
                    rows.append(json.loads(line)["run"])

    while pending or running:
        while pending and len(running) < procs:
            s = pending.pop(0)
            p = subprocess.Popen(
                child_cmd(s),
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            th = threading.Thread(target=reader, args=(p,), daemon=True)
            th.start()
            running.append((s, p, th))
        time.sleep(0.2)
        for item in list(running):
            s, p, th = item
            if p.poll() is not None:
                th.join(5)
                if p.returncode != 0:
                    assert p.stderr is not None
                    notes.append(f"seed {s}: exit {p.returncode}: {p.stderr.read().strip()[-400:]}")
                running.remove(item)
            elif time.monotonic() > deadline:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                th.join(5)
                notes.append(f"seed {s}: killed at the {time_limit:.0f} s time limit")
                running.remove(item)
        if time.monotonic() > deadline and pending:
            notes.append(f"seeds {pending}: not started (time limit)")
            pending = []
    return rows, notes


def emit(bench: str, metric: str, value: Any, unit: str, **extra: Any) -> dict:
    """Print one measurement as a JSON line (the format every bench module writes to stdout)."""
    rec = {"bench": bench, "metric": metric, "value": value, "unit": unit, **extra}
    print(json.dumps(rec), flush=True)
    return rec


def python() -> str:
    return sys.executable


def mpirun() -> str:
    cand = os.path.join(os.path.dirname(sys.executable), "mpirun")
    return cand if os.path.exists(cand) else (shutil.which("mpirun") or "mpirun")


def mpi_env() -> dict:
    env = dict(os.environ)
    env.update(
        {
            "OMPI_ALLOW_RUN_AS_ROOT": "1",
            "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
            "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",
            "OMPI_MCA_btl": "self,sm",
            "PYTHONPATH": ROOT + os.pathsep + env.get("PYTHONPATH", ""),
        }
    )
    return env


def run_mpi_study(
    ranks: int,
    objective: str,
    trials: int,
    output: str,
    trial_time: float = 0.0,
    timeout: float = 300.0,
    extra: Optional[list] = None,
) -> dict:
    """Launch a study under ``mpirun -n ranks``; returns {"rc", "process_wall_s", "ranks": [per-rank JSON]}."""
    cmd = [
        mpirun(),
        "--with-ft",
        "ulfm",
        "-n",
        str(ranks),
        python(),
        "-m",
        "bench.common",
        "--objective",
        objective,
        "--trials",
        str(trials),
        "--trial-time",
        str(trial_time),
        "--output",
        output,
    ] + (extra or [])
    t = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=mpi_env(), capture_output=True, text=True, timeout=timeout)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = 124, exc.stdout or "", exc.stderr or ""
        out = out.decode() if isinstance(out, bytes) else out
        err = err.decode() if isinstance(err, bytes) else err
    wall = time.monotonic() - t
    rows = []
    for line in out.splitlines():
        if line.startswith('{"rank"'):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    if rc != 0:
        print(f"[bench] mpirun -n {ranks} exited {rc}: {err.strip()[-500:]}", file=sys.stderr, flush=True)
    return {"rc": rc, "process_wall_s": wall, "ranks": sorted(rows, key=lambda r: r["rank"])}


def study_numbers(path: str) -> dict:
    """Wall time, makespan and counts of a finished study, from its results file only."""
    from rdhpo_hpc.api import load_results

    res = load_results(path)
    start, end = res.study.get("start_time"), (res.end or {}).get("end_time")
    starts = [a["start_time"] for a in res.attempts if a.get("start_time") is not None]
    ends = [a["end_time"] for a in res.attempts if a.get("end_time") is not None]
    return {
        "study_wall_s": (end - start) if start is not None and end is not None else None,
        "first_start_s": (min(starts) - start) if starts and start is not None else None,
        "makespan_s": (max(ends) - start) if ends and start is not None else None,
        "trials": len(res.trials),
        "complete": len(res.completed),
        "file_bytes": os.path.getsize(path) if os.path.exists(path) else None,
        "journal_bytes": os.path.getsize(path + ".journal") if os.path.exists(path + ".journal") else None,
    }


# -- the runner (every rank) ---------------------------------------------------------------------
def _objectives(trial_time: float) -> dict:
    def sleep(config: dict, ctx: Any) -> float:
        time.sleep(trial_time)
        return float(config["x"]) ** 2

    def trivial(config: dict, ctx: Any) -> float:
        return float(config["x"]) ** 2

    return {"sleep": sleep, "trivial": trivial}


def _main() -> int:
    p = argparse.ArgumentParser(description="one bench study (run under mpirun)")
    p.add_argument("--objective", default="sleep", choices=["sleep", "trivial"])
    p.add_argument("--trial-time", type=float, default=1.0)
    p.add_argument("--trials", type=int, default=32)
    p.add_argument("--output", required=True)
    p.add_argument("--t-fail", type=float, default=30.0)
    p.add_argument("--optimizer", default="random", help="optimizer passed to rd.optimize (default random)")
    a = p.parse_args()
    import resource

    import rdhpo_hpc as rd
    from rdhpo_hpc.comm.mpi import launched_under_mpi

    rank = 0
    if launched_under_mpi():
        from mpi4py import MPI

        rank = MPI.COMM_WORLD.Get_rank()
        import h5py  # noqa: F401 - imported before the clock starts on every rank
    space = rd.Space(x=rd.Float(-5.0, 5.0), y=rd.Int(1, 100), c=rd.Categorical(["a", "b", "c"]))
    cpu0, wall0 = time.process_time(), time.monotonic()
    res = rd.optimize(
        _objectives(a.trial_time)[a.objective],
        space,
        optimizer=a.optimizer,
        max_trials=a.trials,
        output=a.output,
        overwrite=True,
        seed=0,
        progress_interval=3600,
        t_fail=a.t_fail,
        gossip_interval=0.5,
    )
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    row = {"rank": rank, "cpu_s": cpu, "wall_s": wall, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    if res is not None:
        sys.stdout.flush()
        row.update(study_numbers(a.output))
        row["attempts"] = len(res.attempts)
    print(json.dumps(row), flush=True)
    if launched_under_mpi():
        from rdhpo_hpc.launch import exit_process

        exit_process(0, clean_finalize=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main())

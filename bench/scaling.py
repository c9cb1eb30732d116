"""Scaling bench: a sleep objective (fixed trial time) under real ``mpirun`` with 2..32 ranks.

For each rank count N (N-1 workers, rank 0 coordinates) it runs ``trials_per_worker * (N-1)``
trials and reports, from the results file: the study wall time (/study start_time to end_time),
the ideal ``trials * trial_time / workers``, parallel efficiency = ideal / wall, speed-up over the
1-worker run (throughput ratio), plus the whole ``mpirun`` process wall time (start-up included).

    python -m bench.scaling            # 1 s trials, 10 per worker, 2 4 8 16 32 ranks
    python -m bench.scaling --per-worker 4     # shorter studies: the start-up lag weighs more
    python -m bench.scaling --quick    # 0.3 s trials, 3 per worker
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import emit, run_mpi_study

B = "scaling"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--ranks", type=int, nargs="+", default=[2, 4, 8, 16, 32])
    p.add_argument("--trial-time", type=float)
    p.add_argument("--per-worker", type=int)
    a = p.parse_args(argv)
    tt = a.trial_time if a.trial_time is not None else (0.3 if a.quick else 1.0)
    per = a.per_worker or (3 if a.quick else 10)
    base_tput = None
    with tempfile.TemporaryDirectory(prefix="rdhpo-bench-") as tmp:
        for n in a.ranks:
            w = n - 1
            trials = per * w
            r = run_mpi_study(
                n, "sleep", trials, os.path.join(tmp, f"s{n}.h5"), trial_time=tt, timeout=120 + 3 * trials * tt
            )
            r0 = next((x for x in r["ranks"] if x["rank"] == 0), None)
            common = {"ranks": n, "workers": w, "trials": trials, "trial_time": tt}
            if r0 is None or not r0.get("study_wall_s"):
                emit(B, "error", r["rc"], "exit code", **common)
                continue
            wall = r0["study_wall_s"]
            ideal = trials * tt / w
            tput = trials / wall
            base_tput = base_tput or (tput if w == 1 else None)
            emit(B, "study_wall", round(wall, 3), "s", ideal_s=round(ideal, 3), **common)
            emit(B, "efficiency", round(ideal / wall, 4), "ratio", **common)
            emit(
                B,
                "efficiency_makespan",
                round(ideal / r0["makespan_s"], 4),
                "ratio",
                note="ideal / (last attempt end - study start)",
                **common,
            )
            if r0.get("first_start_s") is not None:
                emit(
                    B,
                    "first_dispatch_lag",
                    round(r0["first_start_s"], 3),
                    "s",
                    note="study start to the first attempt's start",
                    **common,
                )
                emit(
                    B,
                    "efficiency_steady",
                    round(ideal / (r0["makespan_s"] - r0["first_start_s"]), 4),
                    "ratio",
                    note="ideal / (last attempt end - first attempt start)",
                    **common,
                )
            if base_tput:
                emit(B, "speedup", round(tput / base_tput, 3), "x", **common)
            emit(
                B, "process_wall", round(r["process_wall_s"], 2), "s", note="whole mpirun, start-up included", **common
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

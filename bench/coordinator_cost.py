"""Coordinator cost bench: rank 0's CPU time and memory per trial, and results-file size per
trial, at 100, 1000 and 10000 trials (random optimizer, trivial objective, ``mpirun -n 3``).

    python -m bench.coordinator_cost [--quick]     # --quick skips 10000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import emit, run_mpi_study

B = "coordinator_cost"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--trials", type=int, nargs="+")
    a = p.parse_args(argv)
    sizes = a.trials or ([100, 1000] if a.quick else [100, 1000, 10000])
    prev = None
    with tempfile.TemporaryDirectory(prefix="rdhpo-bench-") as tmp:
        for n in sizes:
            r = run_mpi_study(3, "trivial", n, os.path.join(tmp, f"c{n}.h5"), timeout=60 + 0.1 * n)
            r0 = next((x for x in r["ranks"] if x["rank"] == 0), None)
            if r0 is None or not r0.get("study_wall_s"):
                emit(B, "error", r["rc"], "exit code", trials=n)
                continue
            c = {"trials": n, "ranks": 3}
            emit(B, "rank0_cpu_per_trial", round(1e3 * r0["cpu_s"] / n, 3), "ms", cpu_s=round(r0["cpu_s"], 2), **c)
            emit(B, "rank0_cpu_share", round(r0["cpu_s"] / r0["wall_s"], 3), "cores", **c)
            emit(B, "trials_per_s", round(n / r0["study_wall_s"], 1), "trials/s", **c)
            emit(B, "rank0_maxrss", round(r0["maxrss_kb"] / 1024, 1), "MiB", **c)
            if prev is not None:
                emit(
                    B,
                    "rank0_memory_per_trial",
                    round(1024 * (r0["maxrss_kb"] - prev[1]) / (n - prev[0]), 1),
                    "bytes",
                    note=f"maxrss growth from {prev[0]} to {n} trials",
                    **c,
                )
            prev = (n, r0["maxrss_kb"])
            emit(B, "hdf5_bytes_per_trial", round(r0["file_bytes"] / n, 1), "bytes", **c)
            if r0.get("journal_bytes"):
                emit(B, "journal_bytes_per_trial", round(r0["journal_bytes"] / n, 1), "bytes", **c)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A Python-API study for ``slurm/rdhpo-python.sbatch`` (tests/system/test_slurm_python.py):
``python python_study.py OUTPUT MAX_TRIALS``; every rank runs it under mpirun."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/system

from objectives import sleepy

import rdhpo_hpc as rd

result = rd.optimize(
    sleepy,
    rd.Space(x=rd.Float(0.0, 1.0)),
    max_trials=int(sys.argv[2]),
    output=sys.argv[1],
    progress_interval=1,
    gossip_interval=0.2,
    t_fail=5,
)
if result is not None:
    print(f"[python_study] rank 0 done: {len(result.trials)} trials, best {result.best_value:.4g}", flush=True)

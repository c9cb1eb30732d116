"""`sbatch slurm/rdhpo-python.sbatch SCRIPT.py` for real: a Python-API script under the common
SLURM body gets the warning signal, is requeued, and the script's rd.optimize resumes its
results file (RDHPO_REQUEUEABLE); and the script's argument checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from slurm_cluster import (
    REPO_ROOT,
    cancel,
    read_output,
    require_slurm,
    scancel_signal,
    setup_allowance,
    submit,
    wait_job,
)

SETUP_S = setup_allowance()
VENV = str(Path(sys.executable).parent.parent)
SBATCH = REPO_ROOT / "slurm" / "rdhpo-python.sbatch"
SCRIPT = Path(__file__).resolve().parent / "slurm" / "python_study.py"


@pytest.mark.slurm
@pytest.mark.timeout(SETUP_S + 240)
def test_sbatch_python_script_is_requeued_and_resumes_every_trial_once(tmp_path: Path) -> None:
    require_slurm()
    out, log = tmp_path / "py.h5", tmp_path / "job.out"
    job = submit(
        [SBATCH, SCRIPT, out, "12"],
        env={"RDHPO_VENV": VENV, "RDHPO_TEST_STEP_S": "0.1"},
        extra_sbatch_args=[f"--output={log}"],
        cwd=tmp_path,
    )
    journal = Path(f"{out}.journal")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # real progress first, then SLURM's warning signal
            if journal.exists() and sum('"k":"tell"' in line for line in journal.read_text().splitlines()) >= 3:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the study made no progress in 120 s:\n" + read_output(log))
        scancel_signal(job, "USR1", mode="batch")
        status = wait_job(job, timeout=180)
    finally:
        cancel(job)
    text = read_output(log)
    assert status == "COMPLETED" and status.restarts == 1, text
    assert "launch: mpirun -n 4" in text and str(SCRIPT) in text, text
    assert "requeueing job" in text and "resuming" in text and "rank 0 done: 12 trials" in text, text
    with h5py.File(out, "r") as f:
        t = f["trials"]
        done = sorted(int(i) for i, s in zip(t["trial_id"][:], t["state"][:]) if s.decode() == "COMPLETE")
    assert done == list(range(12)), "every trial exactly once after the requeue"
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert any(r.get("k") == "event" and r.get("kind") == "resume" for r in records)


def test_python_sbatch_refuses_a_missing_script(tmp_path: Path) -> None:
    for args, needle in (
        ([], "missing the study Python script"),
        (["nope.py"], "Python script 'nope.py' does not exist"),
    ):
        proc = subprocess.run(
            ["bash", str(SBATCH), *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 2, proc
        assert needle in proc.stderr, proc.stderr

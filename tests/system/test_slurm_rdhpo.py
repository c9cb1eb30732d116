"""`sbatch slurm/rdhpo.sbatch CONFIG` for real, on the one-node SLURM test cluster (issue 5.5).

The job runs the real package (no stand-in): the quickstart trains PyTorch models and writes
HDF5; a second job gets the SLURM warning signal, is requeued, and resumes from its results file.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import h5py
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from slurm_cluster import (
    RDHPO_SBATCH,
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
OBJECTIVES = Path(__file__).resolve().parent / "objectives.py"


def _trials(path: Path) -> list[tuple[int, str]]:
    with h5py.File(path, "r") as f:
        t = f["trials"]
        return [(int(i), s.decode()) for i, s in zip(t["trial_id"][:], t["state"][:])]


@pytest.mark.slurm
@pytest.mark.timeout(SETUP_S + 300)
def test_sbatch_quickstart_completes_and_writes_hdf5(tmp_path: Path) -> None:
    require_slurm()
    out, log = tmp_path / "quickstart.h5", tmp_path / "job.out"
    job = submit(
        [RDHPO_SBATCH, REPO_ROOT / "configs" / "quickstart.yaml", "--output", out],
        env={"RDHPO_VENV": VENV},
        extra_sbatch_args=[f"--output={log}"],
        cwd=tmp_path,
    )
    try:
        status = wait_job(job, timeout=240)
    finally:
        cancel(job)
    text = read_output(log)
    assert status == "COMPLETED", text
    assert "[rdhpo 00:00:" in text and "trials 24/24 done" in text, text  # progress lines
    assert "study finished" in text and str(out) in text, text
    trials = _trials(out)
    assert sorted(i for i, s in trials if s == "COMPLETE") == list(range(24))
    with h5py.File(out, "r") as f:
        assert sorted(f["workers"]["rank"][:].tolist()) == [1, 2, 3]


@pytest.mark.slurm
@pytest.mark.timeout(SETUP_S + 300)
def test_sbatch_warning_signal_requeues_and_resumes_every_trial_once(tmp_path: Path) -> None:
    require_slurm()
    cfg, out, log = tmp_path / "sleepy.yaml", tmp_path / "sleepy.h5", tmp_path / "job.out"
    cfg.write_text(
        f"name: sleepy\nobjective: {{function: '{OBJECTIVES}:sleepy'}}\n"
        "space: {x: {type: float, low: 0, high: 1}}\nbudget: {max_trials: 30}\n"
        "fault_tolerance: {gossip_interval: 0.2, t_fail: 5}\nprogress_interval: 1\n"
        f"output: {out}\n"
    )
    job = submit([RDHPO_SBATCH, cfg], env={"RDHPO_VENV": VENV}, extra_sbatch_args=[f"--output={log}"], cwd=tmp_path)
    journal = Path(f"{out}.journal")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait for real progress, then send the warning
            if journal.exists() and sum('"k":"tell"' in line for line in journal.read_text().splitlines()) >= 6:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the study made no progress in 120 s:\n" + read_output(log))
        scancel_signal(job, "USR1", mode="batch")
        status = wait_job(job, timeout=200)
    finally:
        cancel(job)
    text = read_output(log)
    assert status == "COMPLETED", text
    assert status.restarts == 1, text
    assert "study stopped" in text and "resuming" in text and "study finished" in text, text
    done = [i for i, s in _trials(out) if s == "COMPLETE"]
    assert sorted(done) == list(range(30)), "every trial exactly once after the requeue"
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert any(r.get("k") == "event" and r.get("kind") == "resume" for r in records)

"""The quick start as a user runs it: ``mpirun -n 4 rdhpo run configs/quickstart.yaml``."""

from __future__ import annotations

import math
import re

import h5py
import pytest

from mpi_helpers import REPO, describe, run_cli, run_mpi


@pytest.mark.system
@pytest.mark.timeout(300)
def test_quickstart_under_mpirun(mpirun, tmp_path):
    out = tmp_path / "qs.h5"
    proc = run_mpi(
        ["-m", "rdhpo_hpc", "run", str(REPO / "configs" / "quickstart.yaml"), "--output", str(out)],
        n=4,
        timeout=240,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, describe(proc)
    assert "[rdhpo] study finished" in proc.stdout, describe(proc)
    assert "trials: 24  COMPLETE=24" in proc.stdout, describe(proc)
    assert f"results: {out}" in proc.stdout
    best = re.search(r"best value: ([0-9.e+-]+)", proc.stdout)
    assert best and 0 < float(best.group(1)) < 1.0, describe(proc)  # digits val_loss, trained
    assert "Traceback" not in proc.stderr, describe(proc)

    with h5py.File(out, "r") as f:
        tids = f["trials"]["trial_id"][:].tolist()
        assert sorted(tids) == list(range(24))  # every trial once
        states = {s.decode() for s in f["trials"]["state"][:]}
        assert states == {"COMPLETE"}
        vals = f["trials"]["value"][:]
        assert all(math.isfinite(v) and v > 0 for v in vals)
        ranks = f["trials"]["rank"][:].tolist()
        assert set(ranks) == {1, 2, 3}  # each worker rank did work
        assert f["workers"]["rank"].shape[0] == 3
        assert sorted(f["workers"]["rank"][:].tolist()) == [1, 2, 3]
        assert f["study"].attrs["end_status"] == "complete"
        assert "quickstart" in f["study"].attrs["config"]
        assert f["reports"]["trial_id"].shape[0] == 24 * 12  # one report per epoch

    show = run_cli(["show", str(out)], timeout=60)
    assert show.returncode == 0, describe(show)
    assert "finished" in show.stdout and "trials: 24" in show.stdout and "best value" in show.stdout
    for r in (1, 2, 3):
        assert f"rank {r}:" in show.stdout

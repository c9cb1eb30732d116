"""Runs the pytest-mpi tier (tests/mpi) under a real 4-rank mpirun."""

from __future__ import annotations

import pytest

from mpi_helpers import REPO, describe, run_mpi


@pytest.mark.system
@pytest.mark.timeout(200)
def test_mpi_tier_passes_under_mpirun(mpirun):
    proc = run_mpi(
        ["-m", "pytest", "--with-mpi", "-q", "-p", "no:cacheprovider", "tests/mpi"], n=4, timeout=180, cwd=REPO
    )
    assert proc.returncode == 0, describe(proc)
    assert "passed" in proc.stdout and "failed" not in proc.stdout, describe(proc)

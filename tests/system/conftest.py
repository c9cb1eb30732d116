"""System-test fixtures: real ``mpirun`` jobs.  The helpers live in ``mpi_helpers.py``
(``run_mpi``, ``mpirun_path``, ``run_cli``, ``describe``, ``MPI_ENV``) and are re-exported here.

Fixtures:

* ``run_mpi`` / ``mpirun`` — the :func:`mpi_helpers.run_mpi` function
  (``run_mpi(args, n, timeout, env=None, cwd=None)``); the test is skipped with a clear reason
  only when no ``mpirun`` exists.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mpi_helpers import MPI_ENV, REPO, describe, kill_group, mpi_env, mpirun_path, run_cli  # noqa: F401
from mpi_helpers import run_mpi as _run_mpi

run_mpi_function = _run_mpi


def _need_mpirun() -> None:
    if mpirun_path() is None:
        pytest.skip("mpirun not found (install the 'local' extra: Open MPI from the package index)")


@pytest.fixture(name="run_mpi")
def run_mpi_fixture():
    """``run_mpi(args, n, timeout, env=None, cwd=None) -> CompletedProcess`` (see mpi_helpers)."""
    _need_mpirun()
    return _run_mpi


@pytest.fixture
def mpirun():
    """Alias of the ``run_mpi`` fixture."""
    _need_mpirun()
    return _run_mpi

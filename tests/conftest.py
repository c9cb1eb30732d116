"""Suite-wide pytest configuration.

* ``tests/mpi`` holds pytest-mpi tests that only make sense under
  ``mpirun -n 4 python -m pytest --with-mpi tests/mpi``.  Without ``--with-mpi`` the directory
  is not collected at all (rather than reported as skipped), so a plain ``pytest tests`` neither
  counts them nor hides anything: ``tests/system/test_mpi_tier.py`` runs that tier under mpirun.
"""

from __future__ import annotations

import os
from pathlib import Path

_MPI_DIR = Path(__file__).parent / "mpi"


def _with_mpi(config) -> bool:
    try:
        return bool(config.getoption("with_mpi"))
    except ValueError:  # pytest-mpi not installed: the option does not exist
        return False


def pytest_ignore_collect(collection_path: Path, config):
    if _with_mpi(config):
        return None
    p = Path(os.path.abspath(collection_path))
    if p == _MPI_DIR or _MPI_DIR in p.parents:
        return True
    return None

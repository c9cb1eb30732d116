"""pytest-mpi tier: collected only with ``--with-mpi`` (see tests/conftest.py), run as

    mpirun --with-ft ulfm -n 4 python -m pytest --with-mpi tests/mpi

Every rank runs every test; rank 0 is the coordinator.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def comm():
    from mpi4py import MPI

    return MPI.COMM_WORLD


@pytest.fixture
def shared_tmp(comm, tmp_path):
    """A directory every rank agrees on (rank 0's tmp_path, broadcast)."""
    return comm.bcast(str(tmp_path) if comm.Get_rank() == 0 else None, root=0)

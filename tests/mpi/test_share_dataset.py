"""The data set is read once per node and handed to the node's other ranks (issue 5.4)."""

from __future__ import annotations

import numpy as np
import pytest

from rdhpo_hpc.comm.mpi import MPITransport
from rdhpo_hpc.config import from_dict
from rdhpo_hpc.launch import share_dataset
from rdhpo_hpc.training import datasets


@pytest.mark.mpi(min_size=2)
@pytest.mark.timeout(120)
def test_one_rank_reads_the_others_map_shared_memory(comm, monkeypatch):
    calls = []
    real = datasets.export_dataset
    monkeypatch.setattr(datasets, "export_dataset", lambda *a: calls.append(a) or real(*a))
    datasets.clear_cache()
    cfg = from_dict(
        {
            "objective": {"builtin": {"model": "mlp", "dataset": "digits"}},
            "space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2}},
        }
    )
    transport = MPITransport()
    assert share_dataset(cfg, transport) is True
    ds = datasets.load_dataset("digits", 0)  # served from the shared copy, no new read
    readers = comm.allgather(len(calls))
    assert sum(readers) == 1, f"expected one read on this node, got {readers}"
    # every rank sees the same bytes
    digest = float(ds.x_train.sum()) + float(ds.y_val.sum())
    assert len(set(comm.allgather(round(digest, 3)))) == 1
    assert ds.x_train.shape == (1437, 64) and ds.n_classes == 10
    assert np.isfinite(ds.x_train).all()

"""rd.optimize under mpirun: rank 0 coordinates and returns the result, ranks 1..N-1 work."""

from __future__ import annotations

import os

import pytest

import rdhpo_hpc as rd

SPACE = rd.Space(x=rd.Float(0.0, 1.0), k=rd.Int(1, 8))


def objective(config, ctx):
    for step in range(2):
        ctx.report(step, config["x"] + step)
    if config["k"] == 8:
        raise ValueError("k=8 is cursed")
    return (config["x"] - 0.5) ** 2 + os.getpid() * 0.0


@pytest.mark.mpi(min_size=4)
@pytest.mark.timeout(120)
def test_optimize_returns_on_rank0_only_and_all_workers_work(comm, shared_tmp):
    rank, size = comm.Get_rank(), comm.Get_size()
    out = os.path.join(shared_tmp, "mpi.h5")
    res = rd.optimize(
        objective, SPACE, max_trials=18, seed=3, output=out, progress_interval=1000, gossip_interval=0.2, t_fail=5.0
    )
    # gather what every rank got (a collective on COMM_WORLD after the study: no failures here)
    got = comm.gather(res is None, root=0)
    if rank != 0:
        assert res is None
        return
    assert got == [False] + [True] * (size - 1)
    assert res.finished
    assert [t.trial_id for t in res.trials] == list(range(18))
    assert all(t.state in ("COMPLETE", "FAILED") for t in res.trials)
    for t in res.trials:
        if t.params["k"] == 8:
            assert t.state == "FAILED" and "k=8 is cursed" in t.error
        else:
            assert t.state == "COMPLETE" and t.value == pytest.approx((t.params["x"] - 0.5) ** 2)
    util = res.utilisation()
    assert set(util) == set(range(1, size)), util  # every worker rank got work
    assert sum(u["attempts"] for u in util.values()) == 18
    assert len(res.reports) == 36
    loaded = rd.load_results(out)
    assert loaded.trials == res.trials


@pytest.mark.mpi(min_size=4)
@pytest.mark.timeout(60)
def test_bad_argument_fails_on_every_rank(comm):
    with pytest.raises(rd.ConfigError) as err:
        rd.optimize(objective, SPACE, max_trials=5, optimizer="no_such_optimizer")
    if comm.Get_rank() == 0:
        assert "no_such_optimizer" in str(err.value)
    comm.Barrier()  # nobody hangs: every rank got here

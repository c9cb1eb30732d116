"""Randomized chaos: for each fixed seed, a random victim rank (rank 0 included: takeover), a
random moment and a random failure (SIGKILL = crash, SIGSTOP = hang), from outside the job.
The study must still finish with every trial COMPLETE exactly once, in bounded time."""

from __future__ import annotations

import os
import random
import signal
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_reliability import T_FAIL, Job, _rank0_pid, check, results, write_config

pytestmark = [pytest.mark.timeout(150)]

SEEDS = [2, 5, 23]  # rank 0 SIGKILL (takeover), rank 4 SIGSTOP, rank 2 SIGKILL
N, TRIALS = 6, 16


@pytest.mark.parametrize("seed", SEEDS)
def test_chaos(tmp_path, seed):
    rng = random.Random(seed)
    victim = rng.randrange(0, N)
    sig = rng.choice([signal.SIGKILL, signal.SIGSTOP]) if victim else signal.SIGKILL
    after = rng.uniform(0.2, 2.5)
    job = Job(write_config(tmp_path, TRIALS), N)
    pids = job.pids(range(1, N))
    job.dispatched(N)
    time.sleep(after)
    pid = _rank0_pid(job) if victim == 0 else pids[victim]
    t = time.time()
    os.kill(pid, sig)
    try:
        job.finish()
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    what = f"seed {seed}: {signal.Signals(sig).name} rank {victim} at +{after:.2f}s"
    ev = check(results(job.out), TRIALS)
    if victim == 0:
        assert [e["rank"] for e in ev["takeover"]] == [1], what
    else:
        (e,) = [e for e in ev["rank-dead"] if e["rank"] == victim]
        assert e["latency"] is not None, what
        limit = T_FAIL if sig == signal.SIGKILL else 2 * T_FAIL + 1
        assert e["time"] - t < limit, (what, e)
    assert job.wall < 75, what


# the CI subset of `python -m bench.chaos`: compound faults at start-up, mid-study and shutdown
BENCH_SEEDS = [7, 16, 34]  # stop-worker+kill-rank0 at start-up / mid-study / shutdown


@pytest.mark.timeout(200)
@pytest.mark.parametrize("seed", BENCH_SEEDS)
def test_bench_chaos_schedule(tmp_path, seed):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from bench.chaos import run_schedule

    o = run_schedule(seed, tmp_path)
    assert o.ended, o
    assert o.lost == 0 and o.twice == 0, o
    assert o.exit_codes[-1] == 0, o  # after at most one requeue (exit 5 / 6)

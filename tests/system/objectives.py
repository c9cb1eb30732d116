"""Cheap objectives for the reliability tests (no torch): sleep-based, report every 0.2 s."""

from __future__ import annotations

import os
import time

STEP_S = float(os.environ.get("RDHPO_TEST_STEP_S", "0.2"))


def _value(config: dict) -> float:
    return (float(config.get("x", 0.5)) - 0.3) ** 2


def sleepy(config: dict, ctx) -> float:
    """``steps`` reports (default 5), one every 0.2 s; value = (x - 0.3)^2."""
    steps = int(config.get("steps", os.environ.get("RDHPO_TEST_STEPS", 5)))
    v = _value(config)
    for step in range(steps):
        time.sleep(STEP_S)
        ctx.report(step, v + 1.0 / (step + 1))
    return v


def epochs(config: dict, ctx) -> float:
    """Multi-fidelity and resumable: from the epoch saved in ``ctx.checkpoint_from`` (0 without one)
    to ``ctx.budget``, one report per epoch (``STEP_S`` each), the last epoch saved in
    ``ctx.checkpoint_dir``; value = (x - 0.3)^2 + 1 / epoch."""
    start = 0
    if ctx.checkpoint_from:
        with open(os.path.join(ctx.checkpoint_from, "epoch"), encoding="utf-8") as fh:
            start = int(fh.read())
    end = int(ctx.budget)
    v = _value(config)
    for epoch in range(start + 1, end + 1):
        time.sleep(STEP_S)
        ctx.report(epoch, v + 1.0 / epoch)
        if ctx.checkpoint_dir:
            with open(os.path.join(ctx.checkpoint_dir, "epoch"), "w", encoding="utf-8") as fh:
                fh.write(str(epoch))
    return v + 1.0 / end


def busy(config: dict, ctx) -> float:
    """Busy-loops in pure Python (holds the GIL) for ``RDHPO_TEST_BUSY_S`` seconds, no reports."""
    seconds = float(os.environ.get("RDHPO_TEST_BUSY_S", "3.0"))
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return _value(config)


def hang_first(config: dict, ctx) -> float:
    """Trial 0's first attempt never returns (and ignores stops); everything else is ``sleepy``."""
    if ctx.trial_id == 0 and ctx.attempt == 0:
        while True:
            time.sleep(0.05)
    return sleepy(config, ctx)


def quick(config: dict, ctx) -> float:
    """Sleeps ``RDHPO_TEST_QUICK_S`` (default 0.003 s), no reports: short enough to be pipelined."""
    time.sleep(float(os.environ.get("RDHPO_TEST_QUICK_S", "0.003")))
    return _value(config)

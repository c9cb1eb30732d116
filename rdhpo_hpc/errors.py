"""Exceptions shared by every layer."""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad user input (config file, search space, options).

    The message always quotes the key (or path), the bad value and what is allowed.
    Raised on rank 0 before any work starts; the CLI prints it once and every rank exits non-zero.
    """


class TrialPruned(Exception):
    """Raised by ``ctx.report(step, value)`` when the scheduler decided to stop the trial.

    Objectives normally let it propagate: the worker catches it and records the attempt as PRUNED
    with the last reported value.  An objective that wants to clean up may catch it and re-raise.
    """


class TrialFailed(RuntimeError):
    """Raised by ``rd.optimize(..., fail_fast=True)`` on rank 0 under MPI (the objective's own
    exception happened on another rank) or when the first FAILED trial raised no exception (it
    returned None, a dict, NaN, or hit the time limit); the message holds the trial's error."""

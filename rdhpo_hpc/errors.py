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

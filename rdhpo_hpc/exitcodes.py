"""The exit codes of a study — one table for every rank, the CLI, the supervisor and the SLURM
scripts (``slurm/rdhpo-common.sh`` requeues on the ones marked resumable)."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0  # the study finished (or reached max_wall_time)
    FAILED = 1  # it ran, but failed: every trial FAILED, or an internal error
    CONFIG = 2  # bad input: refused before anything was run or written
    STOPPED = 3  # stopped early on request (signal): resumable, the SLURM script requeues
    COORDINATOR_LOST = 4  # a worker's own code: its coordinator died and none took over
    STARTUP = 5  # start-up did not finish in time (a rank died or hung before the study
    # began): nothing lost, the SLURM script requeues
    UNFINISHED = 6  # the job ended, the study did not (no end record: rank 0 lost, a node
    # gone, no live workers): resumable, the SLURM script requeues


#: codes after which ``--resume`` continues the study (the SLURM script requeues the job)
RESUMABLE = frozenset({ExitCode.STOPPED, ExitCode.STARTUP, ExitCode.UNFINISHED})

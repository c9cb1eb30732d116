"""The Python API: ``rd.optimize`` and ``rd.load_results``.

The same script runs serially or under ``mpirun``: rank 0 returns the :class:`StudyResult`, the
other ranks work and return None.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import tempfile
from typing import Any, Callable, Optional

from .config import FT_DEFAULTS, StudyConfig, check_strategy, fault_tolerance
from .errors import ConfigError
from .results import StudyResult, result_from_records
from .space import Space

_CONFIG_KEYS = {"max_wall_time", "output", "progress_interval", "checkpoints", "device", "name", "faults"}


def optimize(
    objective: Callable[[dict, Any], float],
    space: Space,
    optimizer: str = "random",
    max_trials: int = 20,
    direction: str = "minimize",
    seed: int = 0,
    output: Optional[str] = None,
    resume: bool = False,
    overwrite: bool = False,
    workers: int = 1,
    **options: Any,
) -> Optional[StudyResult]:
    """Run a study; returns the result on rank 0 (and in a serial run), None on worker ranks.

    ``options``: the strategy's options (``degree=5``, ``min_budget=1``, ...), the fault-tolerance
    keys (``gossip_interval``, ``fanout``, ``t_fail``, ``max_retries``, ``trial_time_limit``, ...)
    and ``max_wall_time``, ``progress_interval``, ``checkpoints``, ``device``, ``name``.
    ``workers`` is the number of worker threads of a serial (non-MPI) run.
    """
    from .comm.mpi import launched_under_mpi
    from .launch import run_inprocess, run_mpi

    def make_cfg() -> StudyConfig:
        return build_config(objective, space, optimizer, max_trials, direction, seed, output, options)

    if launched_under_mpi():
        from .comm.mpi import MPITransport

        outcome = run_mpi(make_cfg, MPITransport(), resume, overwrite, local_objective=objective)
        if outcome.exit_code == 2:  # every rank raises, as a serial run does
            raise ConfigError(
                outcome.error
                if outcome.rank == 0 and outcome.error
                else "the study's configuration was rejected on rank 0 (see its message)"
            )
        return outcome.result
    cfg = make_cfg()
    # no results file to put them next to: trial checkpoints (PBT, promotions) live for the study
    temporary = cfg.output is None and cfg.checkpoints is None
    with (
        tempfile.TemporaryDirectory(prefix="rdhpo-checkpoints-")
        if temporary
        else contextlib.nullcontext(cfg.checkpoints) as checkpoints
    ):
        cfg = dataclasses.replace(cfg, checkpoints=checkpoints)
        return run_inprocess(cfg, workers=workers, resume=resume, overwrite=overwrite).result


def build_config(
    objective: Any,
    space: Any,
    optimizer: str,
    max_trials: int,
    direction: str,
    seed: int,
    output: Optional[str],
    options: dict,
) -> StudyConfig:
    if not callable(objective):
        raise ConfigError(f"objective must be a callable objective(config, ctx), got {objective!r}")
    if isinstance(space, dict):
        space = Space.from_dict(space)
    if not isinstance(space, Space) or not space.dims:
        raise ConfigError(f"space must be a non-empty rd.Space, got {space!r}")
    if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1:
        raise ConfigError(f"max_trials must be an integer >= 1, got {max_trials!r}")
    if direction not in ("minimize", "maximize"):
        raise ConfigError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
    ft = fault_tolerance({k: options.pop(k) for k in list(options) if k in FT_DEFAULTS})
    extra = {k: options.pop(k) for k in list(options) if k in _CONFIG_KEYS}
    if output is not None:
        output = os.path.abspath(output)
    cfg = StudyConfig(
        space=space,
        objective=objective,
        seed=seed,
        direction=direction,
        optimizer=optimizer,
        options=dict(options),
        max_trials=max_trials,
        output=output,
        ft=ft,
        source_text=f"# created by rd.optimize from {os.path.basename(sys.argv[0] or 'python')}\n",
    )
    cfg = dataclasses.replace(cfg, **extra)
    check_strategy(cfg)
    return cfg


def load_results(path: str) -> StudyResult:
    """Read a results file back (from its journal when the study is running or crashed)."""
    from .launch import existing_records

    if not os.path.exists(path) and not os.path.exists(path + ".journal"):
        raise FileNotFoundError(f"results file {path!r} does not exist")
    records = existing_records(path)
    if records is None:
        raise ValueError(f"{path!r} is not an rdhpo results file (no /study group and no journal)")
    return result_from_records(records, path)

"""The Python API: ``rd.optimize`` and ``rd.load_results``.

The same script runs serially or under ``mpirun``: rank 0 returns the :class:`StudyResult`, the
other ranks work and return None.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import sys
import tempfile
from typing import Any, Callable, Optional

from . import validate
from .config import FT_DEFAULTS, StudyConfig, check_strategy, fault_tolerance
from .config import max_failures as config_max_failures
from .context import check_objective
from .errors import ConfigError, TrialFailed, TrialPruned
from .callbacks import callback_list
from .results import StudyResult, result_from_records
from .retention import checkpoint_settings
from .space import Space

_CONFIG_KEYS = {
    "max_failures",
    "max_wall_time",
    "output",
    "progress_interval",
    "checkpoints",
    "device",
    "name",
    "faults",
}


def _speaks_python(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Bad-input messages name ``rd.optimize``'s arguments (``resume=True``), not the CLI's flags."""
    words = {
        "--resume": "resume=True",
        "--overwrite": "overwrite=True",
        "--output": "output",
        "--max-trials": "max_trials",
    }
    flags = re.compile("|".join(re.escape(k) + r"(?![\w-])" for k in words))

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            raise ConfigError(flags.sub(lambda m: words[m.group(0)], str(exc))) from None

    return wrapper


def _keep_first_error(objective: Callable[..., Any], raised: list[BaseException]) -> Callable[..., Any]:
    """``fail_fast``: the objective, remembering the first exception it raises (not TrialPruned)."""

    @functools.wraps(objective)
    def kept(config: dict, ctx: Any) -> Any:
        try:
            return objective(config, ctx)
        except TrialPruned:
            raise
        except Exception as exc:
            if not raised:
                raised.append(exc)
            raise

    return kept


def _fail_fast(result: Optional[StudyResult], raised: list[BaseException]) -> Optional[StudyResult]:
    """``fail_fast``: re-raise the first objective error (its own exception in a serial run; on rank 0
    under MPI, where it happened on another rank, :class:`TrialFailed` with its text)."""
    if raised:
        raise raised[0]
    failed = [t for t in (result.trials if result is not None else []) if t.state == "FAILED"]
    if failed:
        raise TrialFailed(f"trial {failed[0].trial_id} FAILED (fail_fast=True): {failed[0].error}")
    return result


@_speaks_python
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
    max_failures: Optional[int] = None,
    fail_fast: bool = False,
    **options: Any,
) -> Optional[StudyResult]:
    """Run a study; returns the result on rank 0 (and in a serial run), None on worker ranks.

    ``options``: the strategy's options (``degree=5``, ``min_budget=1``, ...), the fault-tolerance
    keys (``gossip_interval``, ``fanout``, ``t_fail``, ``max_retries``, ``trial_time_limit``, ...)
    and ``max_wall_time``, ``progress_interval``, ``checkpoints``, ``device``, ``name``.
    ``workers`` is the number of worker threads of a serial (non-MPI) run.
    ``callbacks=[f, ...]``: ``f(trial, study)`` on rank 0 after every trial; ``enqueue=[{...}, ...]``:
    configurations evaluated first; ``checkpoints={"keep": "best"}`` (or ``"last"``, N, ``"dir"``):
    which trials' checkpoints are kept (docs/callbacks.md).
    ``max_failures``: stop the study (``rdhpo`` exit code 1) after this many FAILED trials; by
    default it stops when its first 5 trials all FAILED.  ``fail_fast=True``: stop at the first
    FAILED trial and re-raise the objective's exception (as Optuna does).
    """
    from .comm.mpi import launched_under_mpi
    from .launch import run_inprocess, run_mpi

    options = {**options, "max_failures": 1 if validate.flag(fail_fast, "fail_fast") else max_failures}
    raised: list[BaseException] = []
    if fail_fast and callable(objective):
        objective = _keep_first_error(objective, raised)  # keeps its signature (functools.wraps)

    def make_cfg() -> StudyConfig:
        return build_config(objective, space, optimizer, max_trials, direction, seed, output, options)

    if launched_under_mpi():
        from .comm.mpi import MPITransport

        requeueable = os.environ.get("RDHPO_REQUEUEABLE") == "1"  # set by slurm/rdhpo-python.sbatch
        rule = _resume_if_exists if requeueable and not (resume or overwrite) else None
        outcome = run_mpi(make_cfg, MPITransport(), resume, overwrite, resume_rule=rule, local_objective=objective)
        _exit_if_resumable(outcome, requeueable)
        if outcome.exit_code == 2:  # every rank raises, as a serial run does
            raise ConfigError(
                outcome.error
                if outcome.rank == 0 and outcome.error
                else "the study's configuration was rejected on rank 0 (see its message)"
            )
        return _fail_fast(outcome.result, raised) if fail_fast and outcome.rank == 0 else outcome.result
    cfg = make_cfg()
    # no results file to put them next to: trial checkpoints (PBT, promotions) live for the study
    temporary = cfg.output is None and cfg.checkpoints is None
    with (
        tempfile.TemporaryDirectory(prefix="rdhpo-checkpoints-")
        if temporary
        else contextlib.nullcontext(cfg.checkpoints) as checkpoints
    ):
        cfg = dataclasses.replace(cfg, checkpoints=checkpoints)
        result = run_inprocess(cfg, workers=workers, resume=resume, overwrite=overwrite, out=sys.stdout).result
    return _fail_fast(result, raised) if fail_fast else result


def _resume_if_exists(output: str) -> bool:
    """Under ``slurm/rdhpo-python.sbatch`` (``RDHPO_REQUEUEABLE=1``): a requeued job's script
    continues its results file, as ``rdhpo run --resume-if-exists`` does."""
    from .launch import existing_records

    return existing_records(output) is not None


def _exit_if_resumable(outcome: Any, requeueable: bool) -> None:
    """Under ``RDHPO_REQUEUEABLE=1``: a study that stopped resumably (exit 3, 5, 6) ends the
    script's process with that code, so that the SLURM script requeues the job."""
    from .exitcodes import RESUMABLE

    if requeueable and outcome.exit_code in RESUMABLE:
        from .launch import exit_process

        exit_process(outcome.exit_code, outcome.finalize)


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
    check_objective(objective)
    if isinstance(space, dict):
        space = Space.from_dict(space)
    if not isinstance(space, Space) or not space.dims:
        raise ConfigError(f"space must be a non-empty rd.Space, got {space!r}")
    validate.integer(max_trials, "max_trials", 1)
    if direction not in ("minimize", "maximize"):
        raise ConfigError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
    ft = fault_tolerance({k: options.pop(k) for k in list(options) if k in FT_DEFAULTS})
    extra = {k: options.pop(k) for k in list(options) if k in _CONFIG_KEYS}
    if "max_failures" in extra:
        extra["max_failures"] = config_max_failures(extra["max_failures"], "max_failures")
    extra["callbacks"] = callback_list(options.pop("callbacks", None))  # docs/callbacks.md
    extra["initial_points"] = options.pop("enqueue", None) or []  # checked with the strategy
    extra["checkpoints"], extra["checkpoint_keep"] = checkpoint_settings(extra.pop("checkpoints", None))
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

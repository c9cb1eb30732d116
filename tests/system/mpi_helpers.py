"""Helpers for system tests that start real ``mpirun`` jobs (Open MPI 5 from the venv, ULFM).

Reusable by every system test (``tests/system`` is on ``sys.path`` while pytest runs them)::

    from mpi_helpers import run_mpi, mpirun_path, describe     # or the fixtures of conftest.py
    proc = run_mpi(["-m", "rdhpo_hpc", "run", "cfg.yaml"], n=4, timeout=120)

``run_mpi`` runs ``mpirun --with-ft ulfm -n N <python> ARGS`` with the environment Open MPI needs
here (root, more ranks than cores, shared-memory transport), captures text output, and on timeout
kills the whole process group (mpirun, prted and every rank) before raising
``subprocess.TimeoutExpired``.  ``args`` are the arguments of the Python interpreter (``-m ...`` or
a script); pass ``python=False`` to give a complete command instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import pytest

REPO = Path(__file__).resolve().parents[2]

MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",
    "OMPI_MCA_btl": "self,sm,tcp",
}


def mpirun_path() -> Optional[str]:
    """``mpirun`` next to ``sys.executable`` (the venv's Open MPI), else the one on PATH, else None."""
    here = Path(sys.executable).parent / "mpirun"
    if here.exists() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which("mpirun")


def mpi_env(env: Optional[Mapping[str, str]] = None) -> dict:
    """The current environment plus :data:`MPI_ENV` plus ``env``; MPI rank variables of an outer
    mpirun (when the test itself runs under one) are removed so the child is a fresh job."""
    out = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OMPI_COMM_WORLD", "PMIX_", "PMI_", "OMPI_MCA_orte", "PRTE_MCA_ess"))
    }
    out.update(MPI_ENV)
    out["PYTHONUNBUFFERED"] = "1"
    out.setdefault("PYTHONPATH", "")
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), out["PYTHONPATH"]) if p)
    if env:
        out.update(env)
    return out


def run_mpi(
    args: Sequence[str],
    n: int,
    timeout: float,
    env: Optional[Mapping[str, str]] = None,
    cwd: Union[str, os.PathLike, None] = None,
    python: bool = True,
    mpirun_args: Sequence[str] = ("--with-ft", "ulfm"),
) -> subprocess.CompletedProcess:
    """Run ``mpirun <mpirun_args> -n n [sys.executable] *args``; output captured as text.

    On timeout the whole process group is SIGKILLed and ``subprocess.TimeoutExpired`` is raised
    (with whatever output was produced).  ``proc.wall_s`` holds the elapsed seconds.
    """
    mpirun = mpirun_path()
    if mpirun is None:
        pytest.skip("mpirun not found (install the 'local' extra: Open MPI from the package index)")
    cmd = [mpirun, *mpirun_args, "-n", str(n)] + ([sys.executable] if python else []) + list(args)
    t0 = time.monotonic()
    p = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=mpi_env(env),
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(p)
        out, err = p.communicate()
        raise subprocess.TimeoutExpired(cmd, timeout, output=out, stderr=err) from None
    finally:
        if p.poll() is None:
            kill_group(p)
    proc = subprocess.CompletedProcess(cmd, p.returncode, out, err)
    proc.wall_s = time.monotonic() - t0  # type: ignore[attr-defined]
    return proc


def kill_group(p: subprocess.Popen) -> None:
    """SIGKILL the process group of ``p`` (started with ``start_new_session=True``)."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def run_cli(
    args: Sequence[str],
    timeout: float,
    cwd: Union[str, os.PathLike, None] = None,
    env: Optional[Mapping[str, str]] = None,
) -> subprocess.CompletedProcess:
    """``python -m rdhpo_hpc ARGS`` without mpirun (e.g. ``show``), with a timeout."""
    e = mpi_env(env)
    return subprocess.run(
        [sys.executable, "-m", "rdhpo_hpc", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=e
    )


def describe(proc: subprocess.CompletedProcess) -> str:
    """rc, stdout and stderr tails, for assertion messages."""
    return (
        f"rc={proc.returncode}\n--- stdout (tail) ---\n{(proc.stdout or '')[-3000:]}\n"
        f"--- stderr (tail) ---\n{(proc.stderr or '')[-3000:]}"
    )

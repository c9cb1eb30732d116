"""A broken objective under a real 4-rank mpirun: the study stops after its first 5 trials (not
the whole budget), exit code 1 from every rank's job, the error printed once with its params, the
job ends at once; `rdhpo show` then lists the error with its trial ids."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from mpi_helpers import describe, run_mpi


@pytest.mark.system
@pytest.mark.timeout(90)
def test_broken_objective_fails_fast_under_mpirun(mpirun, tmp_path):
    (tmp_path / "obj.py").write_text("def f(config, ctx):\n    return config['x'] / 0\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        textwrap.dedent(f"""\
        name: broken
        objective: {{function: '{tmp_path / "obj.py"}:f'}}
        space:
          x: {{type: float, low: 0.0, high: 1.0}}
        budget: {{max_trials: 500}}
        progress_interval: 100
        """)
    )
    out = tmp_path / "b.h5"
    proc = run_mpi(["-m", "rdhpo_hpc", "run", str(cfg), "--output", str(out)], n=4, timeout=60, cwd=tmp_path)
    assert proc.returncode == 1, describe(proc)
    assert proc.wall_s < 30, f"took {proc.wall_s:.1f}s\n" + describe(proc)
    assert proc.stderr.count("FAILED: ZeroDivisionError: float division by zero") == 1, describe(proc)
    assert proc.stderr.count("params: {'x':") == 1 and "in f" in proc.stderr, describe(proc)
    assert proc.stdout.count("[rdhpo] stopping the study: the first") == 1, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)

    show = subprocess.run(
        [sys.executable, "-m", "rdhpo_hpc", "show", str(out), "--trials"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert show.returncode == 0, show.stderr
    lines = show.stdout.splitlines()
    failed = [ln for ln in lines if " FAILED " in ln and "| ZeroDivisionError" in ln]
    assert 5 <= len(failed) <= 8, show.stdout  # the study stopped at 5 (a batch may add a few)
    assert any(ln.strip().startswith(f"{len(failed)} x ZeroDivisionError") for ln in lines), show.stdout
    assert "stopped (max_failures" in lines[0], show.stdout


@pytest.mark.system
@pytest.mark.timeout(90)
def test_fail_fast_raises_on_rank_0_and_the_job_ends_under_mpirun(mpirun, tmp_path):
    script = tmp_path / "ff.py"
    script.write_text(
        textwrap.dedent("""\
        import rdhpo_hpc as rd

        def f(config, ctx):
            if ctx.trial_id == 2:
                raise KeyError("no such column")
            return config["x"]

        rd.optimize(f, rd.Space(x=rd.Float(0, 1)), max_trials=200, fail_fast=True, progress_interval=100)
        """)
    )
    proc = run_mpi([str(script)], n=3, timeout=60, cwd=tmp_path)
    assert proc.returncode != 0, describe(proc)
    assert proc.wall_s < 30, f"took {proc.wall_s:.1f}s\n" + describe(proc)
    assert proc.stderr.count("rdhpo_hpc.errors.TrialFailed: trial 2 FAILED (fail_fast=True): KeyError") == 1, describe(
        proc
    )
    assert proc.stdout.count("[rdhpo] stopping the study: FAILED trials reached max_failures=1") == 1, describe(proc)

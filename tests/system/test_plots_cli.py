"""``rdhpo plot`` and the analysis/ scripts as subprocesses (each with a timeout)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import rdhpo_hpc as rd
from mpi_helpers import REPO, run_cli

pytestmark = pytest.mark.timeout(90)


def _objective(cfg: dict, ctx) -> float:
    for step in range(3):
        ctx.report(step, cfg["x"] ** 2 / (step + 1))
    if cfg["model"] == "b" and cfg["x"] > 4:
        raise ValueError("bad x")
    return cfg["x"] ** 2


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("cli") / "study.h5")
    space = rd.Space(x=rd.Float(-5, 5), model=rd.Categorical(["a", "b"]))
    rd.optimize(_objective, space, max_trials=16, output=path, workers=2, progress_interval=3600, end_grace=2.0)
    return path


def test_rdhpo_plot_writes_pngs(results, tmp_path) -> None:
    out = tmp_path / "plots"
    p = run_cli(["plot", results, "--out", str(out), "--format", "png"], timeout=60)
    assert p.returncode == 0, p.stderr
    files = p.stdout.split()
    assert {"study_history.png", "study_timeline.png", "study_curves.png", "study_families.png"} <= {
        os.path.basename(f) for f in files
    }
    for f in files:
        with open(f, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(f) > 4000


def test_rdhpo_plot_missing_file_is_a_clear_error(tmp_path) -> None:
    p = run_cli(["plot", str(tmp_path / "nope.h5"), "--out", str(tmp_path)], timeout=30)
    assert p.returncode == 2 and "does not exist" in p.stderr and "Traceback" not in p.stderr


def test_analysis_scripts(results, tmp_path) -> None:
    scripts = [
        "plot_history.py",
        "plot_params.py",
        "plot_curves.py",
        "plot_timeline.py",
        "plot_scaling.py",
        "plot_all.py",
    ]
    for s in scripts:
        h = subprocess.run(
            [sys.executable, str(REPO / "analysis" / s), "--help"], capture_output=True, text=True, timeout=30
        )
        assert h.returncode == 0 and "usage" in h.stdout, (s, h.stderr)
    p = subprocess.run(
        [sys.executable, str(REPO / "analysis" / "plot_params.py"), results, "--out", str(tmp_path), "--format", "svg"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert sorted(os.path.basename(f) for f in p.stdout.split()) == [
        "study_importance.svg",
        "study_parallel.svg",
        "study_slices.svg",
    ]

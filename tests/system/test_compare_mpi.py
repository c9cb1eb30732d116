"""configs/compare_classifiers.yaml under a real ``mpirun -n 4`` (8 trials), then ``rdhpo show``
prints one row per model family.  Bounded: pytest-timeout plus a subprocess timeout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("sklearn")
h5py = pytest.importorskip("h5py")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MPIRUN = os.path.join(os.path.dirname(sys.executable), "mpirun")
if not os.path.exists(MPIRUN):
    MPIRUN = shutil.which("mpirun") or ""
ENV = {
    **os.environ,
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",
    "OMP_NUM_THREADS": "1",
}
FAMILIES = ("mlp", "cnn", "svm", "random_forest", "gradient_boosting", "logistic_regression")

pytestmark = [pytest.mark.system, pytest.mark.skipif(not MPIRUN, reason="mpirun not found")]


@pytest.mark.timeout(240)
def test_compare_config_under_mpirun_and_show_per_family(tmp_path) -> None:
    out = tmp_path / "compare.h5"
    cmd = [
        MPIRUN,
        "--with-ft",
        "ulfm",
        "-n",
        "4",
        sys.executable,
        "-m",
        "rdhpo_hpc",
        "run",
        os.path.join(ROOT, "configs", "compare_classifiers.yaml"),
        "--max-trials",
        "8",
        "--output",
        str(out),
        "--overwrite",
    ]
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=200)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"mpirun did not finish in 200 s: {e.stdout!r} {e.stderr!r}")
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-3000:])
    assert "study finished" in p.stdout

    with h5py.File(out, "r") as f:
        params = [json.loads(s) for s in f["trials"]["params"].asstr()[:]]
        states = list(f["trials"]["state"].asstr()[:])
    assert len(params) == 8 and set(states) == {"COMPLETE"}, states
    for prm in params:  # only the chosen family's parameters (plus the shared lr, batch_size)
        assert prm["model"] in FAMILIES and {"lr", "batch_size"} <= set(prm)
        others = {"width", "channels", "gamma", "n_estimators", "learning_rate"} - set(prm)
        assert len(others) >= 4, prm
    seen = {prm["model"] for prm in params}

    s = subprocess.run(
        [sys.executable, "-m", "rdhpo_hpc", "show", str(out)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert s.returncode == 0, s.stderr
    assert "per model:" in s.stdout
    rows = [ln.split(":")[0].strip() for ln in s.stdout.split("per model:")[1].splitlines() if ln.strip()]
    assert set(rows) == seen and len(rows) == len(seen) >= 2, s.stdout
    for fam in seen:
        line = next(ln for ln in s.stdout.splitlines() if ln.strip().startswith(f"{fam}:"))
        assert " trials, compute " in line and "best " in line and "best -" not in line, line

"""Bad input under a real 4-rank mpirun: one clear message, every rank exits non-zero, no hang,
no traceback; and a study already in the output file is never clobbered."""
from __future__ import annotations

import hashlib
import textwrap

import pytest

from mpi_helpers import REPO, describe, run_mpi

GOOD_SPACE = "space:\n  x: {type: float, low: 0.0, high: 1.0}\n"
FN_OBJ = "objective: {function: 'math:sqrt'}\n"
CASES = {
    "malformed_yaml": ("name: broken\nspace:\n  x: {type: float, low: 0, high: 1\n" + FN_OBJ, ["YAML", "line"]),
    "unknown_optimizer": (FN_OBJ + GOOD_SPACE + "optimizer: hillclimb\n", ["hillclimb"]),
    "empty_space": (FN_OBJ + "space: {}\n", ["space", "{}"]),
    "low_gt_high": (FN_OBJ + "space:\n  lr: {type: float, low: 0.5, high: 0.1}\n", ["space.lr", "0.5", "0.1"]),
    "missing_dataset": ("objective: {builtin: {model: mlp, dataset: /no/such/dir/data.npz}}\n" + GOOD_SPACE,
                        ["/no/such/dir/data.npz"]),
    "missing_function": ("objective: {function: 'nosuchpkg.mod:fn'}\n" + GOOD_SPACE, ["nosuchpkg.mod"]),
}


@pytest.mark.system
@pytest.mark.timeout(90)
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_one_message_all_ranks_exit(mpirun, tmp_path, case):
    text, words = CASES[case]
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    proc = run_mpi(["-m", "rdhpo_hpc", "run", str(cfg), "--output", str(tmp_path / "out.h5")],
                   n=4, timeout=60, cwd=tmp_path)
    assert proc.returncode != 0, describe(proc)
    assert proc.wall_s < 30, f"took {proc.wall_s:.1f}s\n" + describe(proc)
    lines = [ln for ln in proc.stderr.splitlines() if "rdhpo: error:" in ln]
    assert len(lines) == 1, describe(proc)
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, describe(proc)
    assert not (tmp_path / "out.h5").exists()            # nothing was started


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.system
@pytest.mark.timeout(150)
def test_existing_results_are_not_clobbered_without_resume(mpirun, tmp_path):
    (tmp_path / "userobj.py").write_text("def f(config, ctx):\n    return (config['x'] - 0.5) ** 2\n")
    cfg = tmp_path / "ok.yaml"
    cfg.write_text(textwrap.dedent(f"""\
        name: keep
        objective: {{function: '{tmp_path / "userobj.py"}:f'}}
        space:
          x: {{type: float, low: 0.0, high: 1.0}}
        budget: {{max_trials: 4}}
        progress_interval: 100
        """))
    out = tmp_path / "keep.h5"
    first = run_mpi(["-m", "rdhpo_hpc", "run", str(cfg), "--output", str(out)], n=4, timeout=60, cwd=tmp_path)
    assert first.returncode == 0, describe(first)
    assert "trials: 4  COMPLETE=4" in first.stdout, describe(first)
    before = digest(out), digest(tmp_path / "keep.h5.journal")

    again = run_mpi(["-m", "rdhpo_hpc", "run", str(cfg), "--output", str(out)], n=4, timeout=60, cwd=tmp_path)
    assert again.returncode != 0, describe(again)
    assert again.wall_s < 30, describe(again)
    lines = [ln for ln in again.stderr.splitlines() if "rdhpo: error:" in ln]
    assert len(lines) == 1 and "already holds a study" in lines[0] and str(out) in lines[0], describe(again)
    assert "--resume" in lines[0]
    assert "Traceback" not in again.stderr, describe(again)
    assert (digest(out), digest(tmp_path / "keep.h5.journal")) == before

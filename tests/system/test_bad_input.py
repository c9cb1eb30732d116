"""Bad input under a real 4-rank mpirun: one clear message, every rank exits non-zero, no hang,
no traceback; and a study already in the output file is never clobbered."""

from __future__ import annotations

import hashlib
import textwrap

import pytest

from mpi_helpers import describe, run_mpi

GOOD_SPACE = "space:\n  x: {type: float, low: 0.0, high: 1.0}\n"
FN_OBJ = "objective: {function: 'math:sqrt'}\n"
CASES = {
    "malformed_yaml": ("name: broken\nspace:\n  x: {type: float, low: 0, high: 1\n" + FN_OBJ, ["YAML", "line"]),
    "unknown_optimizer": (FN_OBJ + GOOD_SPACE + "optimizer: hillclimb\n", ["hillclimb"]),
    "empty_space": (FN_OBJ + "space: {}\n", ["space", "{}"]),
    "low_gt_high": (FN_OBJ + "space:\n  lr: {type: float, low: 0.5, high: 0.1}\n", ["space.lr", "0.5", "0.1"]),
    "missing_dataset": (
        "objective: {builtin: {model: mlp, dataset: /no/such/dir/data.npz}}\n" + GOOD_SPACE,
        ["/no/such/dir/data.npz"],
    ),
    "missing_function": ("objective: {function: 'nosuchpkg.mod:fn'}\n" + GOOD_SPACE, ["nosuchpkg.mod"]),
}


@pytest.mark.system
@pytest.mark.timeout(90)
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_one_message_all_ranks_exit(mpirun, tmp_path, case):
    text, words = CASES[case]
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    proc = run_mpi(
        ["-m", "rdhpo_hpc", "run", str(cfg), "--output", str(tmp_path / "out.h5")], n=4, timeout=60, cwd=tmp_path
    )
    assert proc.returncode != 0, describe(proc)
    assert proc.wall_s < 30, f"took {proc.wall_s:.1f}s\n" + describe(proc)
    lines = [ln for ln in proc.stderr.splitlines() if "rdhpo: error:" in ln]
    assert len(lines) == 1, describe(proc)
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, describe(proc)
    assert not (tmp_path / "out.h5").exists()  # nothing was started


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.system
@pytest.mark.timeout(150)
def test_existing_results_are_not_clobbered_without_resume(mpirun, tmp_path):
    (tmp_path / "userobj.py").write_text("def f(config, ctx):\n    return (config['x'] - 0.5) ** 2\n")
    cfg = tmp_path / "ok.yaml"
    cfg.write_text(
        textwrap.dedent(f"""\
        name: keep
        objective: {{function: '{tmp_path / "userobj.py"}:f'}}
        space:
          x: {{type: float, low: 0.0, high: 1.0}}
        budget: {{max_trials: 4}}
        progress_interval: 100
        """)
    )
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


# -- bad input that used to destroy a file, end in a traceback, or run a study of FAILED trials -----
# Each case: (config text, setup(tmp_path) -> the pre-existing files to keep, extra run args,
# words the one error line must hold).  Checked without mpirun and under mpirun -n 3.
OK_SPACE = "space:\n  x: {type: float, low: 0.0, high: 1.0}\nbudget: {max_trials: 2}\nprogress_interval: 100\n"
DATA_OBJ = "objective: {builtin: {model: mlp, dataset: DATA, epochs: 1}}\n"
NESTED = "x: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n"


def _text_at(name, text="precious notes: do not lose me\n"):
    def setup(tmp_path):
        (tmp_path / name).write_text(text)
        return [tmp_path / name]

    return setup


def _foreign_h5(tmp_path):
    import h5py
    import numpy as np

    with h5py.File(tmp_path / "out.h5", "w") as f:  # someone's data, with a /study group even
        f["signal"] = np.arange(100.0)
        f.create_group("study").attrs["subject"] = "S01"
    return [tmp_path / "out.h5"]


def _out_dir(tmp_path):
    (tmp_path / "out.h5").mkdir()
    (tmp_path / "out.h5" / "keep.txt").write_text("inside the directory\n")
    return [tmp_path / "out.h5" / "keep.txt"]


def _junk_npz(tmp_path):
    import os

    (tmp_path / "data.npz").write_bytes(os.urandom(8192))
    return [tmp_path / "data.npz"]


def _npz_without_arrays(tmp_path):
    import numpy as np

    np.savez(tmp_path / "data.npz", features=np.zeros((20, 4)), labels=np.zeros(20, dtype=np.int64))
    return [tmp_path / "data.npz"]


FOREIGN = "exists and is not an rdhpo results file"
ARRAYS = "x_train, y_train, x_val, y_val"
STARTUP_CASES = {
    "text_at_output": (FN_OBJ + OK_SPACE, _text_at("out.h5"), [], ["out.h5", FOREIGN]),
    "text_at_output_overwrite": (
        FN_OBJ + OK_SPACE,
        _text_at("out.h5"),
        ["--overwrite"],
        ["out.h5", FOREIGN, "--overwrite"],
    ),
    "text_at_output_resume": (FN_OBJ + OK_SPACE, _text_at("out.h5"), ["--resume"], ["out.h5", FOREIGN]),
    "foreign_hdf5_overwrite": (FN_OBJ + OK_SPACE, _foreign_h5, ["--overwrite"], ["out.h5", FOREIGN]),
    "text_at_journal_overwrite": (
        FN_OBJ + OK_SPACE,
        _text_at("out.h5.journal"),
        ["--overwrite"],
        ["out.h5.journal", "is not an rdhpo journal"],
    ),
    "output_is_directory": (FN_OBJ + OK_SPACE, _out_dir, ["--overwrite"], ["out.h5", "is a directory"]),
    "yaml_nested_5000_deep": (
        FN_OBJ + OK_SPACE + NESTED,
        lambda tmp_path: [],
        [],
        ["bad.yaml", "nested too deeply", "line 6"],
    ),
    "dataset_random_bytes": (DATA_OBJ + OK_SPACE, _junk_npz, [], ["data.npz", "not a .npz archive", ARRAYS]),
    "dataset_without_arrays": (
        DATA_OBJ + OK_SPACE,
        _npz_without_arrays,
        [],
        ["data.npz", "missing arrays", ARRAYS, "['features', 'labels']"],
    ),
}


def run_serial(args, timeout, cwd):
    """``python -m rdhpo_hpc ARGS`` without mpirun, in its own session: on timeout the whole
    process group is SIGKILLed (as run_mpi does) and TimeoutExpired is raised."""
    import subprocess
    import sys
    import time

    from mpi_helpers import kill_group, mpi_env

    env = {k: v for k, v in mpi_env().items() if not k.startswith(("OMPI_", "PMIX_", "PRTE_"))}
    t0 = time.monotonic()
    p = subprocess.Popen(
        [sys.executable, "-m", "rdhpo_hpc", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(p)
        out, err = p.communicate()
        raise subprocess.TimeoutExpired(p.args, timeout, output=out, stderr=err) from None
    finally:
        if p.poll() is None:
            kill_group(p)
    proc = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    proc.wall_s = time.monotonic() - t0
    return proc


def snapshot(root):
    """Every file under ``root`` with its digest (what must not change)."""
    return {str(p.relative_to(root)): digest(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.system
@pytest.mark.timeout(150)
@pytest.mark.parametrize("mode", ["serial", "mpirun"])
@pytest.mark.parametrize("case", sorted(STARTUP_CASES))
def test_bad_input_refused_at_startup_touching_no_file(mpirun, tmp_path, case, mode):
    text, setup, extra, words = STARTUP_CASES[case]
    kept = setup(tmp_path)
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text.replace("DATA", str(tmp_path / "data.npz")))
    before = snapshot(tmp_path)
    assert all(str(p.relative_to(tmp_path)) in before for p in kept)
    args = ["run", str(cfg), "--output", str(tmp_path / "out.h5"), *extra]
    if mode == "serial":
        proc = run_serial(args, timeout=90, cwd=tmp_path)
    else:
        proc = run_mpi(["-m", "rdhpo_hpc", *args], n=3, timeout=90, cwd=tmp_path)
    assert proc.returncode == 2, describe(proc)
    assert proc.wall_s < 60, f"took {proc.wall_s:.1f}s\n" + describe(proc)
    lines = [ln for ln in proc.stderr.splitlines() if "rdhpo: error:" in ln]
    assert len(lines) == 1, describe(proc)
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, describe(proc)
    assert "trials" not in proc.stdout, describe(proc)  # no study was run
    assert snapshot(tmp_path) == before, "a file was created, changed or removed"

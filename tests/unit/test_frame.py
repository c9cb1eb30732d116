"""StudyResult.to_dataframe() and `rdhpo export`: one row per trial (or attempt), states as text,
params flattened; export refuses to replace a file; the snippet of docs/results.md runs as written."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")

from rdhpo_hpc import cli
from rdhpo_hpc.results import result_from_records

REPO = Path(__file__).resolve().parents[2]


def attempt(tid, att, state, value=None, rank=1, start=10.0, end=11.0, params=None, error="", budget=None):
    return {
        "k": "attempt",
        "trial_id": tid,
        "attempt": att,
        "state": state,
        "value": value,
        "rank": rank,
        "host": f"h{rank}",
        "device": "cpu",
        "start_time": start,
        "end_time": end,
        "params": params if params is not None else {"model": "svm", "C": 1.0 + tid},
        "error": error,
        "budget": budget,
        "metrics": {},
        "info": {},
    }


def result():
    return result_from_records(
        [
            {"k": "study", "direction": "minimize", "name": "t", "start_time": 10.0},
            attempt(0, 0, "COMPLETE", 0.5, params={"model": "mlp", "width": 64}, budget=3),
            attempt(1, 0, "LOST", None, rank=2, error="rank 2 declared dead"),
            attempt(1, 1, "COMPLETE", 0.2, start=12.0, end=14.5),
            attempt(2, 0, "FAILED", None, error="RuntimeError: boom\nTraceback ..."),
            attempt(3, 0, "PRUNED", 0.1, budget=1),
            {"k": "end", "end_status": "complete", "end_time": 20.0},
        ]
    )


def test_one_row_per_trial_states_as_text_params_flattened():
    df = result().to_dataframe()
    assert list(df.trial_id) == [0, 1, 2, 3]
    assert list(df.state) == ["COMPLETE", "COMPLETE", "FAILED", "PRUNED"]
    assert list(df[df.state == "COMPLETE"].trial_id) == [0, 1]  # the README's filter works
    row1 = df[df.trial_id == 1].iloc[0]
    assert row1.attempt == 1 and row1.value == 0.2 and row1["rank"] == 1 and row1.host == "h1"
    assert row1.duration == pytest.approx(2.5)
    assert row1.end - row1.start == pd.Timedelta(seconds=2.5)
    assert str(row1.start.tz) == "UTC"
    # the mlp trial has no C, the svm ones no width: NaN where a parameter was not active
    assert math.isnan(df.loc[df.trial_id == 0, "params_C"].iloc[0])
    assert df.loc[df.trial_id == 0, "params_width"].iloc[0] == 64
    assert list(df.params_model) == ["mlp", "svm", "svm", "svm"]
    assert df.loc[df.trial_id == 2, "error"].iloc[0].startswith("RuntimeError: boom")
    assert math.isnan(df.loc[df.trial_id == 2, "value"].iloc[0])
    assert "params" not in df.columns and not any(isinstance(s, bytes) for s in df.state)


def test_attempts_true_has_every_attempt_and_marks_the_counted_one():
    df = result().to_dataframe(attempts=True)
    assert len(df) == 5
    t1 = df[df.trial_id == 1]
    assert list(t1.state) == ["LOST", "COMPLETE"] and list(t1.counted) == [False, True]
    assert df.counted.sum() == 4  # one counted attempt per trial


def test_export_csv_and_parquet_and_never_replace_without_overwrite(tmp_path, capsys):
    from rdhpo_hpc.frame import export

    out = tmp_path / "t.csv"
    assert export(result(), str(out), "csv") == 4
    back = pd.read_csv(out)
    assert list(back.state) == ["COMPLETE", "COMPLETE", "FAILED", "PRUNED"]
    assert "params_model" in back.columns
    out.write_text("mine\n")
    from rdhpo_hpc.errors import ConfigError

    with pytest.raises(ConfigError, match="already exists.*--overwrite"):
        export(result(), str(out), "csv")
    assert out.read_text() == "mine\n"
    export(result(), str(out), "csv", overwrite=True)
    assert len(pd.read_csv(out)) == 4
    pytest.importorskip("pyarrow")
    pq = tmp_path / "a.parquet"
    assert export(result(), str(pq), "parquet", attempts=True) == 5
    assert list(pd.read_parquet(pq).state)[:2] == ["COMPLETE", "LOST"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet", "t.csv"]  # no temp file left


def test_cli_export_of_a_missing_file_or_existing_output_is_one_error(tmp_path, capsys):
    assert cli.main(["export", str(tmp_path / "none.h5"), "--csv", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("rdhpo: error:") == 1 and "none.h5" in err


def test_version(capsys):
    import rdhpo_hpc

    with pytest.raises(SystemExit) as ex:
        cli.main(["--version"])
    assert ex.value.code == 0
    assert capsys.readouterr().out.strip() == f"rdhpo {rdhpo_hpc.__version__}"


@pytest.mark.timeout(120)
def test_docs_results_snippet_runs_as_written(tmp_path):
    text = (REPO / "docs" / "results.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 1
    proc = subprocess.run([sys.executable, "-c", blocks[0]], cwd=tmp_path, capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "study.h5").exists()
    assert "diverged at x=" in proc.stdout  # the FAILED trials' errors were printed from the DataFrame


def test_a_view_built_trial_by_trial_has_the_same_rows():
    """The study a callback gets is built one trial at a time, without the counted-attempt map."""
    from rdhpo_hpc.results import StudyResult

    full = result()
    view = StudyResult(full.direction, list(full.trials), list(full.attempts), [], [], {})
    assert view.to_dataframe().equals(full.to_dataframe())

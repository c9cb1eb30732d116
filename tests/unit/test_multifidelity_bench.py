"""The targets and ERT of bench.multifidelity: what its tables are computed from."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.multifidelity import ert, main, paired, resolve_target


def _by(traces: dict[int, list[float]]) -> dict:
    return {("random", s): {"trace": t} for s, t in traces.items()}


def test_auto_targets_are_random_searchs_median_best_at_the_cap_or_at_n_epochs() -> None:
    by = _by({0: [0.5, 0.91, 0.93], 1: [0.6, 0.88, 0.95], 2: [0.7, 0.90, 0.92]})
    assert resolve_target("auto", 3, [0, 1, 2], by)[0] == 0.93  # bests 0.93, 0.95, 0.92
    assert resolve_target("auto@2", 3, [0, 1, 2], by)[0] == 0.9  # bests 0.91, 0.88, 0.90
    assert resolve_target("auto", 3, [0, 1], by)[0] == 0.94  # median 0.94, on the 0.005 grid
    assert resolve_target("0.925", 3, [0], by) == (0.925, "given")


def test_ert_counts_a_censored_seed_whole_and_divides_by_the_seeds_that_got_there() -> None:
    assert ert([10, None, 20], [50, 60, 70]) == (10 + 60 + 20) / 2
    assert ert([None, None], [5, 5]) is None


@pytest.mark.parametrize("bad", ["--target=high", "--more-targets=auto@0", "--more-targets=0.9,x"])
def test_a_bad_target_is_named_before_anything_trains(bad: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        main([bad])
    assert e.value.code == 2
    assert bad.split("=")[1].split(",")[-1] in capsys.readouterr().err


def test_stored_rows_are_read_back_plain_or_gzipped(tmp_path: Path) -> None:
    import gzip
    import json

    from bench.multifidelity import read_rows

    lines = [json.dumps({"run": {"method": "random", "seed": s, "trace": [0.5]}}) for s in (0, 1)]
    (tmp_path / "a.jsonl").write_text(lines[0] + "\n[rdhpo] a progress line\n")
    with gzip.open(tmp_path / "b.jsonl.gz", "wt") as f:
        f.write(lines[1] + "\n")
    rows, _ = read_rows([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl.gz")])
    assert [r["seed"] for r in rows] == [0, 1]


def test_paired_counts_faster_seeds_and_bounds_the_ert_ratio_over_seeds() -> None:
    hit = {"a": [10, 20, 30, 40], "b": [20, 40, 60, 80]}  # a needs half the epochs on every seed
    spent = {"a": [100] * 4, "b": [100] * 4}
    wins, ties, r, lo, hi = paired("a", "b", hit, spent)
    assert (wins, ties, r) == (4, 0, 0.5) and lo == hi == 0.5  # the same ratio in every resample
    hit = {"a": [10, None, 30, 40], "b": [20, 40, 30, 10]}  # a censored seed counts its whole study
    wins, ties, r, lo, hi = paired("a", "b", hit, spent)
    assert (wins, ties) == (1, 1) and r == pytest.approx(((10 + 100 + 30 + 40) / 3) / (100 / 4))
    assert lo is not None and hi is not None and lo <= r <= hi and lo < hi


def test_paired_needs_one_of_the_methods(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--methods", "random,asha-promote", "--paired", "mobster-promote"])
    assert e.value.code == 2 and "'mobster-promote'" in capsys.readouterr().err

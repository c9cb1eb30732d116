"""Analysis plots (rdhpo_hpc.plots): rendered from real, small in-process studies' results files."""

from __future__ import annotations

import json
import math
import os
import pathlib
import shutil

import pytest

import rdhpo_hpc as rd
from rdhpo_hpc.errors import TrialPruned
from rdhpo_hpc.plots import data as D
from rdhpo_hpc.plots import plot_all, plot_lineage, plot_scaling, plot_timeline
from rdhpo_hpc.results import result_from_records

pytestmark = pytest.mark.timeout(60)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SPACE = rd.Space(
    model=rd.Choice(
        {
            "mlp": rd.Space(lr=rd.Float(1e-4, 1e-1, log=True), act=rd.Categorical(["relu", "tanh"])),
            "svm": rd.Space(C=rd.Float(1e-2, 1e2, log=True)),
            "linear": None,
        }
    ),
    wd=rd.Float(1e-6, 1e-2, log=True),
    layers=rd.Int(1, 4),
)


def objective(cfg: dict, ctx) -> float:
    """Reports every step; fails for large C; prunes itself on every 5th trial at step 2."""
    if cfg["model"] == "svm" and cfg["C"] > 30:
        raise RuntimeError("diverged")
    base = {"mlp": 1.0, "svm": 0.8, "linear": 1.5}[cfg["model"]] + 0.05 * cfg["layers"]
    v = base
    for step in range(5):
        v = base * math.exp(-0.3 * step) + cfg.get("lr", 0.01)
        ctx.report(step, v)
        if step == 2 and ctx.trial_id % 5 == 0:
            raise TrialPruned("cut")
    return v


def _study(path: str, trials: int, seed: int = 0) -> str:
    rd.optimize(
        objective,
        SPACE,
        max_trials=trials,
        output=path,
        overwrite=True,
        workers=2,
        seed=seed,
        progress_interval=3600,
        end_grace=2.0,
    )
    return path


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("plots")
    return _study(str(d / "a.h5"), 24, 0), _study(str(d / "b.h5"), 8, 1)


def _is_png(p: str, min_bytes: int = 4000) -> bool:
    with open(p, "rb") as fh:
        head = fh.read(8)
    return head == PNG_MAGIC and os.path.getsize(p) > min_bytes


def test_plot_all_renders_every_applicable_plot(studies, tmp_path) -> None:
    written = plot_all(list(studies), str(tmp_path / "out"))
    names = {os.path.basename(p) for p in written}
    for stem in ("a", "b"):
        for kind in ("history", "parallel", "slices", "importance", "curves", "timeline", "families"):
            if (stem, kind) != ("b", "importance"):
                assert f"{stem}_{kind}.png" in names, (kind, sorted(names))
    assert "b_importance.png" not in names  # 8 trials, 5 COMPLETE: below D.MIN_IMPORTANCE_TRIALS
    assert "history_all.png" in names
    assert not any("lineage" in n for n in names)  # no PBT trials here
    for p in written:
        assert _is_png(p), p


def test_study_data_has_pruned_failed_and_conditional_params(studies) -> None:
    res = rd.load_results(studies[0])
    states = {t.state for t in res.trials}
    assert {"COMPLETE", "PRUNED"} <= states
    cs = D.curves(res)
    pruned = [c for c in cs if c["state"] == "PRUNED"]
    assert pruned and all(c["step"][-1] == 2 for c in pruned)  # cut at the step it was pruned
    tab = D.param_table(res)
    assert tab["columns"]["model"]["kind"] == "cat"
    assert tab["columns"]["model"]["labels"][:3] == ["mlp", "svm", "linear"]
    assert tab["columns"]["lr"]["log"] is True
    lr = tab["columns"]["lr"]["x"]
    assert any(math.isnan(v) for v in lr) and any(not math.isnan(v) for v in lr)  # absent = NaN
    imp, method = D.importance(tab)
    assert method == "random-forest permutation"
    assert abs(sum(imp.values()) - 1.0) < 1e-9 and set(imp) == set(tab["names"])


def test_importance_fallback_finds_the_parameter_that_matters() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    x, noise = rng.uniform(0, 1, 6), rng.uniform(0, 1, 6)
    table = {
        "names": ["x", "noise"],
        "value": 10 * x + 0.01 * noise,
        "columns": {"x": {"kind": "num", "x": x}, "noise": {"kind": "num", "x": noise}},
    }
    imp, method = D.importance(table)  # < 8 trials: main-effect variance
    assert method == "main-effect variance" and imp["x"] > imp["noise"]


def test_crashed_study_is_plotted_from_its_journal(studies, tmp_path) -> None:
    src = studies[0]
    dst = str(tmp_path / "crashed.h5")
    shutil.copy(src + ".journal", dst + ".journal")
    with open(src, "rb") as fh:
        blob = fh.read()
    with open(dst, "wb") as fh:  # a torn HDF5 file, as after a SIGKILL
        fh.write(blob[: len(blob) // 3])
    with open(dst + ".journal") as fh:  # and the study never wrote its end record
        lines = [ln for ln in fh if '"k":"end"' not in ln]
    with open(dst + ".journal", "w") as fh:
        fh.writelines(lines)
    res = rd.load_results(dst)
    assert not res.finished and len(res.trials) == 24
    written = plot_all([dst], str(tmp_path / "out"))
    names = {os.path.basename(p) for p in written}
    assert {"crashed_history.png", "crashed_timeline.png", "crashed_curves.png"} <= names
    assert all(_is_png(p) for p in written)
    os.remove(dst)  # journal alone (file never created)
    assert plot_all([dst + ".journal"], str(tmp_path / "out2"), only=("history",))


def _synthetic_faults() -> list[dict]:
    t = 1000.0
    recs = [{"k": "study", "direction": "minimize", "start_time": t, "space": {}, "name": "faults"}]
    for rank in (1, 2, 3):
        recs.append({"k": "worker", "rank": rank, "host": "h", "pid": rank, "device": "cpu", "time": t})
    rows = [
        (0, 0, 1, "COMPLETE", 0.0, 2.0),
        (1, 0, 2, "LOST", 0.0, 3.5),
        (1, 1, 3, "COMPLETE", 3.6, 5.0),
        (2, 0, 1, "PRUNED", 2.1, 3.0),
        (3, 0, 1, "FAILED", 3.1, 3.3),
    ]
    for tid, att, rank, state, s, e in rows:
        recs.append(
            {
                "k": "attempt",
                "trial_id": tid,
                "attempt": att,
                "rank": rank,
                "state": state,
                "value": None if state in ("LOST", "FAILED") else 1.0 + tid,
                "params": {"x": tid},
                "start_time": t + s,
                "end_time": t + e,
                "info": {},
            }
        )
    for kind, rank, at, lat in (
        ("rank-dead", 2, 3.4, 0.21),
        ("requeue", 2, 3.45, None),
        ("shrink", -1, 3.5, None),
        ("takeover", 1, 4.0, None),
        ("resume", 0, 4.1, None),
    ):
        recs.append({"k": "event", "time": t + at, "kind": kind, "rank": rank, "detail": "", "latency": lat})
    recs.append({"k": "end", "end_status": "complete", "end_time": t + 5.2})
    return recs


def test_timeline_marks_attempt_outcomes_and_fault_events(tmp_path) -> None:
    res = result_from_records(_synthetic_faults(), "faults.h5")
    tl = D.timeline(res)
    assert {b["state"] for b in tl["bars"]} == {"COMPLETE", "LOST", "PRUNED", "FAILED"}
    assert [e["kind"] for e in tl["events"]] == ["rank-dead", "requeue", "shrink", "takeover", "resume"]
    assert tl["ranks"] == [0, 1, 2, 3]
    (p,) = plot_timeline(res, str(tmp_path / "tl"))
    assert _is_png(p)


def test_pbt_lineage(tmp_path) -> None:
    t = 50.0
    recs = [{"k": "study", "direction": "maximize", "start_time": t, "space": {}}]
    tid = 0
    for gen in range(3):
        for m in range(4):
            parent = None if gen == 0 else (tid - 4 if m % 2 == 0 else tid - 4 - (m % 2))
            recs.append(
                {
                    "k": "attempt",
                    "trial_id": tid,
                    "attempt": 0,
                    "rank": 1 + m,
                    "state": "COMPLETE",
                    "value": 0.5 + 0.1 * gen + 0.01 * m,
                    "params": {"lr": 0.1 / (m + 1)},
                    "start_time": t + gen,
                    "end_time": t + gen + 0.9,
                    "info": {"member": m, **({} if parent is None else {"parent": parent})},
                }
            )
            tid += 1
    res = result_from_records(recs)
    rows = D.lineage(res)
    assert len(rows) == 12 and {r["member"] for r in rows} == {0, 1, 2, 3}
    (p,) = plot_lineage(res, str(tmp_path / "lin"))
    assert _is_png(p)
    for r in recs[1:]:  # members unknown: rows follow the parent chain
        r["info"].pop("member")
        if "parent" in r["info"]:  # the PBT scheduler's key
            r["info"]["parent_trial"] = r["info"].pop("parent")
    assert {r["member"] for r in D.lineage(result_from_records(recs))} == {0, 1, 2, 3}


def test_scaling_plot_from_bench_jsonl_and_other_formats(tmp_path) -> None:
    path = tmp_path / "results.jsonl"
    lines = ["not json", json.dumps({"bench": "dispatch", "metric": "trials_per_s", "value": 1, "unit": "x"})]
    for w, eff in ((1, 0.97), (3, 0.96), (7, 0.95), (15, 0.93), (31, 0.9)):
        for metric, v in (("efficiency", eff), ("speedup", eff * w)):
            lines.append(
                json.dumps(
                    {
                        "bench": "scaling",
                        "metric": metric,
                        "value": v,
                        "unit": "",
                        "workers": w,
                        "ranks": w + 1,
                        "trial_time": 1.0,
                    }
                )
            )
    path.write_text("\n".join(lines) + "\n")
    written = plot_scaling([str(path)], str(tmp_path / "scaling"), fmt="png,pdf,svg")
    assert [pathlib.Path(p).suffix for p in written] == [".png", ".pdf", ".svg"]
    assert _is_png(written[0])
    assert open(written[1], "rb").read(5) == b"%PDF-"
    assert b"<svg" in open(written[2], "rb").read(2000)
    with pytest.raises(ValueError, match="'gif'"):
        plot_scaling([str(path)], str(tmp_path / "x"), fmt="gif")


def test_matplotlib_is_imported_only_by_the_plots_package() -> None:
    pkg = pathlib.Path(rd.__file__).parent
    offenders = [
        str(p)
        for p in pkg.rglob("*.py")
        if "plots" not in p.parts
        and ("import matplotlib" in p.read_text(encoding="utf-8") or "from matplotlib" in p.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_learning_curves_join_a_promoted_configurations_trials(tmp_path) -> None:
    """mode: promote — each rung is a trial; the curve of a promoted trial starts at its previous
    trial's last point, so a configuration's rungs read as one line."""

    def resuming(cfg: dict, ctx) -> float:
        start = 0
        if ctx.checkpoint_from:
            start = int(pathlib.Path(ctx.checkpoint_from, "epoch").read_text())
        v = math.nan
        for epoch in range(start + 1, int(ctx.budget) + 1):
            v = cfg["wd"] * 100 + 1.0 / epoch
            pathlib.Path(ctx.checkpoint_dir, "epoch").write_text(str(epoch))
            ctx.report(epoch, v)
        return v

    out = str(tmp_path / "p.h5")
    res = rd.optimize(
        resuming,
        rd.Space(wd=rd.Float(1e-6, 1e-2, log=True)),
        optimizer="asha",
        mode="promote",
        min_budget=1,
        max_budget=9,
        eta=3,
        max_trials=20,
        output=out,
        progress_interval=1000,
    )
    info = {t.trial_id: t.extra["info"] for t in res.trials}
    budget = {t.trial_id: t.budget for t in res.trials}
    promoted = [t for t in info if "promoted_from" in info[t]]
    assert promoted
    curves = {c["trial_id"]: c for c in D.curves(rd.load_results(out))}
    for t in promoted:
        prev = info[t]["promoted_from"]
        assert curves[t]["step"][0] == budget[prev] and curves[t]["value"][0] == curves[prev]["value"][-1]
        assert curves[t]["step"][-1] == budget[t]
    written = plot_all(out, str(tmp_path / "plots"), only=["curves", "lineage"])
    assert len(written) == 2 and all(open(p, "rb").read(8) == PNG_MAGIC for p in written)

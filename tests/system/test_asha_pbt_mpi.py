"""ASHA on MNIST-1D and PBT on digits under a real ``mpirun -n 4`` (rank 0 coordinates, 3
workers), then the HDF5 file read with plain h5py: rungs in /reports, PRUNED trials (ASHA's
stop mode), promoted trials resumed from checkpoints (its promote mode), lineage in /trials info.  Small studies
derived from configs/mnist1d_asha.yaml and configs/pbt.yaml.
Bounded: pytest-timeout plus a subprocess timeout that kills the whole mpirun process group."""

from __future__ import annotations

import json
import os
from collections import defaultdict

import pytest

yaml = pytest.importorskip("yaml")
h5py = pytest.importorskip("h5py")
pytest.importorskip("torch")

from mpi_helpers import REPO, describe, run_mpi

pytestmark = pytest.mark.system


def small_config(tmp_path, name: str, optimizer: dict, max_trials: int) -> tuple[str, str]:
    with open(REPO / "configs" / f"{name}.yaml", encoding="utf-8") as fh:
        cfg = yaml.safe_load(fh)
    out = str(tmp_path / f"{name}.h5")
    cfg.update(
        optimizer=optimizer, output=out, progress_interval=5, budget={"max_trials": max_trials, "max_wall_time": 150}
    )
    cfg["checkpoints"] = str(tmp_path / "ckpt")
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return str(path), out


def read(out: str) -> tuple[list[dict], dict[int, list[tuple[int, str]]]]:
    with h5py.File(out, "r") as f:
        t, r = f["trials"], f["reports"]
        trials = [
            {"trial_id": int(i), "state": s, "budget": float(b), "info": json.loads(inf), "checkpoint_from": int(c)}
            for i, s, b, inf, c in zip(
                t["trial_id"][:], t["state"].asstr()[:], t["budget"][:], t["info"].asstr()[:], t["checkpoint_from"][:]
            )
        ]
        curves = defaultdict(list)
        for i, step, dec in zip(r["trial_id"][:], r["step"][:], r["decision"].asstr()[:]):
            curves[int(i)].append((int(step), dec))
    return trials, curves


@pytest.mark.timeout(150)
def test_asha_on_mnist1d_under_mpirun(tmp_path) -> None:
    cfg, out = small_config(tmp_path, "mnist1d_asha", {"name": "asha", "min_budget": 1, "max_budget": 4, "eta": 2}, 10)
    p = run_mpi(["-m", "rdhpo_hpc", "run", cfg, "--overwrite"], n=4, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, describe(p)
    trials, curves = read(out)
    assert len(trials) == 10 and {t["state"] for t in trials} <= {"COMPLETE", "PRUNED"}
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    assert pruned and complete, [t["state"] for t in trials]
    for t in trials:
        assert t["budget"] == 4 and t["info"]["rungs"] == [1, 2, 4]
    for t in pruned:  # stopped at a rung (epoch 1 or 2), the curve up to it stored
        steps = [s for s, _ in curves[t["trial_id"]]]
        assert steps == list(range(1, steps[-1] + 1)) and steps[-1] in (1, 2)
        assert curves[t["trial_id"]][-1][1] == "stop"
    for t in complete:
        assert [s for s, _ in curves[t["trial_id"]]] == [1, 2, 3, 4]


@pytest.mark.timeout(150)
def test_asha_promote_mode_resumes_checkpoints_across_ranks_under_mpirun(tmp_path) -> None:
    """mode: promote — one trial per rung; a promoted trial resumes the checkpoint its previous trial
    wrote, often on another rank (the shared checkpoint directory), and trains only the new epochs."""
    cfg, out = small_config(
        tmp_path, "mnist1d_asha", {"name": "asha", "min_budget": 1, "max_budget": 4, "eta": 2, "mode": "promote"}, 14
    )
    p = run_mpi(["-m", "rdhpo_hpc", "run", cfg, "--overwrite"], n=4, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, describe(p)
    trials, curves = read(out)
    assert len(trials) == 14 and {t["state"] for t in trials} == {"COMPLETE"}, [t["state"] for t in trials]
    by_id = {t["trial_id"]: t for t in trials}
    promoted = [t for t in trials if "promoted_from" in t["info"]]
    assert promoted, [t["info"] for t in trials]
    for t in trials:
        assert t["budget"] == t["info"]["rungs"][t["info"]["rung"]] and t["info"]["rungs"] == [1, 2, 4]
    for t in promoted:
        prev = by_id[t["info"]["promoted_from"]]
        assert t["checkpoint_from"] == prev["trial_id"] and t["info"]["config"] == prev["info"]["config"]
        assert os.path.isfile(os.path.join(tmp_path, "ckpt", f"trial-{prev['trial_id']}", "ckpt.pt"))
        # resumed at the previous trial's last epoch: only the new epochs are trained and reported
        assert [s for s, _ in curves[t["trial_id"]]] == list(range(int(prev["budget"]) + 1, int(t["budget"]) + 1))
    epochs = sum(len(c) for c in curves.values())
    assert epochs < 14 * 2  # vs 14 trials x 4 epochs without promotion by rung


@pytest.mark.timeout(150)
def test_pbt_on_digits_under_mpirun(tmp_path) -> None:
    # 4 members, 1 epoch per trial, lineages end at 4 epochs: at most 16 trials.  Members are
    # compared at every trial end once all four are scored: the worst one then exploits.
    cfg, out = small_config(tmp_path, "pbt", {"name": "pbt", "population": 4, "interval": 1, "max_budget": 4}, 16)
    p = run_mpi(["-m", "rdhpo_hpc", "run", cfg, "--overwrite"], n=4, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, describe(p)
    trials, curves = read(out)
    assert {t["state"] for t in trials} == {"COMPLETE"}, [t["state"] for t in trials]
    # the study ends when every lineage is done (it reached max_budget = 4, or it would exploit a
    # donor already there); an exploit skips generations, so there are at most 16 trials
    members = defaultdict(int)
    for t in trials:
        members[t["info"]["member"]] = max(members[t["info"]["member"]], int(t["budget"]))
    assert len(trials) <= 16 and set(members) == {0, 1, 2, 3} and max(members.values()) == 4
    by_id = {t["trial_id"]: t for t in trials}
    later = [t for t in trials if t["info"]["generation"] > 0]
    assert later
    for t in later:  # each later trial resumed its parent's checkpoint: one new epoch
        parent = t["info"]["parent_trial"]
        assert t["checkpoint_from"] == parent and parent in by_id
        assert t["budget"] == t["info"]["generation"] + 1
        assert [s for s, _ in curves[t["trial_id"]]] == [int(t["budget"])]
        assert os.path.isfile(os.path.join(tmp_path, "ckpt", f"trial-{parent}", "ckpt.pt"))
    assert any(t["info"]["exploited_from"] is not None for t in later), [t["info"] for t in trials]

"""``checkpoints: {keep: best|last|N}``: rank 0 deletes finished trials' checkpoints that nothing
needs any more, never one that a promotion or a PBT exploit still starts from."""

from __future__ import annotations

import json
import os

import pytest

import rdhpo_hpc as rd
from rdhpo_hpc.config import from_dict
from rdhpo_hpc.errors import ConfigError

SPACE = rd.Space(x=rd.Float(0.0, 1.0))
KW = dict(progress_interval=1000, seed=1)


def obj(config, ctx):
    """Saves its state; a trial told to start from a checkpoint fails when it is gone."""
    start = 0
    if ctx.checkpoint_from is not None:
        with open(os.path.join(ctx.checkpoint_from, "state.json")) as fh:  # FileNotFoundError: FAILED
            start = json.load(fh)["step"]
    budget = int(ctx.budget or 3)
    value = config["x"]
    for step in range(start + 1, budget + 1):
        value = config["x"] + 1.0 / step
        ctx.report(step, value)
    os.makedirs(ctx.checkpoint_dir, exist_ok=True)
    with open(os.path.join(ctx.checkpoint_dir, "state.json"), "w") as fh:
        json.dump({"step": budget}, fh)
    return value


def on_disk(root):
    return sorted(int(d.split("-")[1]) for d in os.listdir(root)) if os.path.isdir(root) else []


@pytest.mark.parametrize("keep, expect", [("all", "all"), ("best", "best"), ("last", 1), (3, 3)])
def test_keep_policy_on_a_plain_study(tmp_path, keep, expect):
    root = str(tmp_path / "ckpt")
    res = rd.optimize(obj, SPACE, max_trials=10, checkpoints={"dir": root, "keep": keep}, **KW)
    assert len(res.completed) == 10
    if expect == "all":
        assert on_disk(root) == list(range(10))
    elif expect == "best":
        assert on_disk(root) == [res.best_trial.trial_id]
    else:
        ended = sorted(res.trials, key=lambda t: t.trial_id)  # one worker: trials end in id order
        assert on_disk(root) == [t.trial_id for t in ended[-expect:]]


@pytest.mark.parametrize(
    "strategy, opts",
    [
        ("asha", dict(mode="promote", min_budget=1, max_budget=9, eta=3)),
        ("pbt", dict(population=3, interval=1, max_budget=4)),
    ],
)
def test_never_deletes_what_a_promotion_or_exploit_still_needs(tmp_path, strategy, opts):
    root = str(tmp_path / "ckpt")
    res = rd.optimize(
        obj,
        SPACE,
        optimizer=strategy,
        max_trials=18,
        workers=2,
        checkpoints={"dir": root, "keep": "best"},
        **KW,
        **opts,
    )
    assert [t for t in res.trials if t.state == "FAILED"] == []  # every start-from checkpoint was there
    started_from = [t for t in res.attempts if t.get("checkpoint_from") is not None]
    assert started_from, "the study should resume trials from checkpoints"
    kept = on_disk(root)
    assert res.best_trial.trial_id in kept
    assert len(kept) < len(res.trials)  # others were deleted


def test_resume_keeps_the_policy(tmp_path):
    out, root = str(tmp_path / "s.h5"), str(tmp_path / "s_checkpoints")
    rd.optimize(obj, SPACE, max_trials=5, output=out, checkpoints={"keep": 2}, **KW)
    assert on_disk(root) == [3, 4]  # default directory beside the results file
    rd.optimize(obj, SPACE, max_trials=9, output=out, resume=True, checkpoints={"keep": 2}, **KW)
    assert on_disk(root) == [7, 8]


@pytest.mark.parametrize(
    "value, words",
    [
        ({"keep": "newest"}, ["checkpoints.keep", "'newest'"]),
        ({"keep": 0}, ["checkpoints.keep", "0"]),
        ({"keep": True}, ["checkpoints.keep", "True"]),
        ({"kept": "best"}, ["kept", "checkpoints"]),
        (5, ["checkpoints", "5"]),
    ],
)
def test_bad_checkpoints_setting_is_named(value, words):
    with pytest.raises(ConfigError) as exc:
        from_dict({"space": {"x": [1, 2]}, "objective": {"function": "m:f"}, "checkpoints": value})
    assert all(w in str(exc.value) for w in words), str(exc.value)
    with pytest.raises(ConfigError):
        rd.optimize(obj, SPACE, max_trials=2, checkpoints=value, **KW)


def test_checkpoints_as_a_directory_still_works(tmp_path):
    cfg = from_dict({"space": {"x": [1, 2]}, "objective": {"function": "m:f"}, "checkpoints": str(tmp_path)})
    assert (cfg.checkpoints, cfg.checkpoint_keep) == (str(tmp_path), "all")

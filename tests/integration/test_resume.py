"""Resume: a study continues from its log; a damaged HDF5 view is rebuilt from the journal."""

from __future__ import annotations

import os

import h5py
import pytest

import rdhpo_hpc as rd

SPACE = rd.Space(x=rd.Float(0.0, 1.0), c=rd.Categorical(["a", "b", "c"]))
KW = dict(seed=5, workers=4, progress_interval=1000)


def obj(config, ctx):
    ctx.report(0, config["x"])
    return (config["x"] - 0.3) ** 2 + (config["c"] == "b") * 0.1


def snapshot(res):
    return [(t.trial_id, t.params, t.value, t.state) for t in res.trials]


@pytest.mark.timeout(90)
def test_resume_extends_study_and_keeps_first_trials(tmp_path):
    out = str(tmp_path / "r.h5")
    r10 = rd.optimize(obj, SPACE, max_trials=10, output=out, **KW)
    assert len(r10.trials) == 10
    r20 = rd.optimize(obj, SPACE, max_trials=20, output=out, resume=True, **KW)
    assert [t.trial_id for t in r20.trials] == list(range(20))
    assert snapshot(r20)[:10] == snapshot(r10)  # first 10 unchanged
    assert r20.finished
    # the optimizer state was replayed: the same 20 configs as an uninterrupted study
    fresh = rd.optimize(obj, SPACE, max_trials=20, output=str(tmp_path / "f.h5"), **KW)
    assert [t.params for t in fresh.trials] == [t.params for t in r20.trials]
    with h5py.File(out, "r") as f:
        assert sorted(f["trials"]["trial_id"][:].tolist()) == list(range(20))
    assert snapshot(rd.load_results(out)) == snapshot(r20)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete"])
def test_damaged_hdf5_with_journal_is_loadable_and_resumable(tmp_path, damage):
    out = str(tmp_path / "r.h5")
    r8 = rd.optimize(obj, SPACE, max_trials=8, output=out, **KW)
    if damage == "truncate":
        size = os.path.getsize(out)
        with open(out, "r+b") as fh:
            fh.truncate(size // 3)
    elif damage == "garbage":
        with open(out, "wb") as fh:
            fh.write(b"\x89HDF\r\n" + b"\0garbage" * 64)
    else:
        os.remove(out)
    loaded = rd.load_results(out)
    assert snapshot(loaded) == snapshot(r8)
    r12 = rd.optimize(obj, SPACE, max_trials=12, output=out, resume=True, **KW)
    assert [t.trial_id for t in r12.trials] == list(range(12))
    assert snapshot(r12)[:8] == snapshot(r8)
    with h5py.File(out, "r") as f:  # the HDF5 view is whole again
        assert sorted(f["trials"]["trial_id"][:].tolist()) == list(range(12))


@pytest.mark.timeout(90)
def test_resume_refuses_a_different_space(tmp_path):
    out = str(tmp_path / "r.h5")
    rd.optimize(obj, SPACE, max_trials=3, output=out, **KW)
    other = rd.Space(x=rd.Float(0.0, 2.0), c=rd.Categorical(["a", "b", "c"]))
    with pytest.raises(rd.ConfigError, match="different space"):
        rd.optimize(obj, other, max_trials=6, output=out, resume=True, **KW)
    assert len(rd.load_results(out).trials) == 3


@pytest.mark.timeout(90)
def test_resume_after_crash_reruns_interrupted_trials(tmp_path):
    """A journal cut after some dispatches (coordinator killed): resume re-runs what was running."""
    from rdhpo_hpc.storage.journal import read_journal

    out = str(tmp_path / "r.h5")
    rd.optimize(obj, SPACE, max_trials=10, output=out, **KW)
    recs = read_journal(out + ".journal")
    # keep everything up to the 6th 'tell': later trials were dispatched or not yet created
    tells = [i for i, r in enumerate(recs) if r["k"] == "tell"]
    cut = recs[: tells[5] + 1]
    with open(out + ".journal", "w") as fh:
        import json

        for r in cut:
            fh.write(json.dumps(r) + "\n")
        fh.write('{"k":"dispatch","trial_id":')  # torn last line
    os.remove(out)
    partial = rd.load_results(out)
    assert not partial.finished and len([t for t in partial.trials if t.state != "LOST"]) == 6
    res = rd.optimize(obj, SPACE, max_trials=10, output=out, resume=True, **KW)
    assert [t.trial_id for t in res.trials] == list(range(10))
    assert all(t.state == "COMPLETE" for t in res.trials) and res.finished
    loaded = rd.load_results(out)
    assert snapshot(loaded) == snapshot(res)

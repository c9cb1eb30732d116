"""Fast resume: the optimizer's state comes from the journal's ``snapshot`` records, so a resumed
``bayes`` study asks nothing again and still continues exactly as the uninterrupted one; the
HDF5 view is caught up (kept, rows appended, or rebuilt) instead of always rewritten."""

from __future__ import annotations

import json
import os

import pytest

import rdhpo_hpc as rd
from rdhpo_hpc.storage.hdf5 import catch_up, read_records, rebuild_from_records
from rdhpo_hpc.storage.journal import read_journal

SPACE = rd.Space(x=rd.Float(0.0, 1.0), c=rd.Categorical(["a", "b", "c"]))
KW = dict(seed=5, workers=1, progress_interval=1000, optimizer="bayes", n_initial=4)  # 1 worker: fixed order

pytestmark = pytest.mark.timeout(120)


def obj(config, ctx):
    return (config["x"] - 0.3) ** 2 + (config["c"] == "b") * 0.1


def rows(res):
    return [(t.trial_id, t.params, t.value, t.state) for t in res.trials]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return rd.optimize(obj, SPACE, max_trials=12, output=str(tmp_path_factory.mktemp("u") / "u.h5"), **KW)


def events(path, kind):
    return [r["detail"] for r in read_journal(path + ".journal") if r["k"] == "event" and r["kind"] == kind]


def test_resumed_bayes_study_asks_nothing_again_and_matches_the_uninterrupted_one(tmp_path, uninterrupted):
    out = str(tmp_path / "r.h5")
    first = rd.optimize(obj, SPACE, max_trials=8, output=out, **KW)
    snaps = [r for r in read_journal(out + ".journal") if r["k"] == "snapshot"]
    assert [r["trial_id"] for r in snaps] == list(range(8))  # bayes: one after every ask
    res = rd.optimize(obj, SPACE, max_trials=12, output=out, resume=True, **KW)
    assert rows(res)[:8] == rows(first)
    assert [t.params for t in res.trials] == [t.params for t in uninterrupted.trials]
    (note,) = events(out, "resume")
    assert "from the snapshot of trial 7, 0 asks run again" in note
    assert rows(rd.load_results(out)) == rows(res)  # the HDF5 view holds every trial


@pytest.mark.parametrize("where", ["after its snapshot", "snapshot torn"])
def test_coordinator_killed_mid_trial_resumes_exactly(tmp_path, uninterrupted, where):
    """The journal of a coordinator killed while trial 6 ran: it runs again, and every later
    suggestion is the uninterrupted study's — also when the kill tore trial 6's snapshot (the one
    of trial 5 is restored and trial 6's suggestion asked again)."""
    out = str(tmp_path / "r.h5")
    rd.optimize(obj, SPACE, max_trials=12, output=out, **KW)
    recs = read_journal(out + ".journal")
    at = next(i for i, r in enumerate(recs) if r["k"] == "dispatch" and r["trial_id"] == 6)
    assert recs[at + 1]["k"] == "snapshot"
    keep = recs[: at + 2] if where == "after its snapshot" else recs[: at + 1]
    with open(out + ".journal", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in keep)
        if where == "snapshot torn":
            fh.write(json.dumps(recs[at + 1])[:40])
    os.remove(out)  # the HDF5 view is rebuilt from the journal
    res = rd.optimize(obj, SPACE, max_trials=12, output=out, resume=True, **KW)
    assert [t.params for t in res.trials] == [t.params for t in uninterrupted.trials]
    assert all(t.state == "COMPLETE" for t in res.trials)
    (note,) = events(out, "resume")
    trial, asked = (6, 0) if where == "after its snapshot" else (5, 1)
    assert f"from the snapshot of trial {trial}, {asked} asks run again" in note


def test_hdf5_view_is_kept_caught_up_or_rebuilt(tmp_path):
    out = str(tmp_path / "v.h5")
    rd.optimize(obj, SPACE, max_trials=6, output=out, seed=1, workers=2, progress_interval=1000)
    recs = [r for r in read_journal(out + ".journal") if r["k"] != "end"]

    def view(path):
        return [{k: v for k, v in r.items() if k != "seq"} for r in read_records(path)]

    whole = str(tmp_path / "whole.h5")
    rebuild_from_records(whole, recs)
    assert catch_up(out, recs) == "kept" and view(out) == view(whole)
    cut = next(i for i, r in enumerate(recs) if r["k"] == "tell" and r["trial_id"] == 2)
    rebuild_from_records(out, recs[:cut])  # the writer's last flush was here
    assert catch_up(out, recs) == "appended" and view(out) == view(whole)
    with open(out, "wb") as fh:
        fh.write(b"\x89HDF\r\n" + b"\0garbage" * 64)
    assert catch_up(out, recs) == "rebuilt" and view(out) == view(whole)
    rebuild_from_records(out, [r for r in recs if r["k"] != "report"] + recs[1:3])  # not a prefix
    assert catch_up(out, recs) == "rebuilt" and view(out) == view(whole)


def test_bench_resume_small_run(monkeypatch, capsys):
    """``python -m bench.resume`` end to end on a small study: ready, exact, takeover adopts."""
    from bench.resume import main
    from rdhpo_hpc.optimizers.random import RandomSearch

    monkeypatch.setattr(RandomSearch, "snapshot_every", 50)
    assert main(["--trials", "400", "--workers", "20", "--optimizer", "asha", "bayes", "--json"]) == 0
    rows = {r["optimizer"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(rows) == {"asha", "bayes"}
    for r in rows.values():
        assert r["resume"]["done"] == r["trials_told"] == 400 and r["resume"]["requeued"] == 0
        assert r["resume"]["snapshot_trial"] is not None and r["resume"]["asks_rerun"] <= 50
        assert r["takeover"]["orphans"] > 0 and r["takeover"]["done"] < 400
    assert rows["bayes"]["resume"]["asks_rerun"] == 0 and rows["bayes"]["snapshots"] >= 400
    assert rows["asha"]["full"]["exact"] is True


def test_enqueued_configurations_and_snapshots_resume_exactly(tmp_path):
    """User-given configurations first (``enqueue``), then the model: the resumed study restores
    the wrapped optimizer's snapshot and continues as the uninterrupted one."""
    kw = dict(KW, enqueue=[{"x": 0.9, "c": "a"}, {"x": 0.1, "c": "c"}])
    whole = rd.optimize(obj, SPACE, max_trials=10, output=str(tmp_path / "w.h5"), **kw)
    out = str(tmp_path / "r.h5")
    rd.optimize(obj, SPACE, max_trials=7, output=out, **kw)
    res = rd.optimize(obj, SPACE, max_trials=10, output=out, resume=True, **kw)
    assert [t.params for t in res.trials] == [t.params for t in whole.trials]
    assert res.trials[0].params == {"x": 0.9, "c": "a"}
    (note,) = events(out, "resume")
    assert "from the snapshot of trial 6, 0 asks run again" in note


def test_hdf5_view_that_reads_but_cannot_be_written_is_rebuilt(tmp_path, monkeypatch):
    """CI, 2026-12-04: after a SIGKILLed coordinator the HDF5 view opened and its rows were a
    prefix of the journal, but appending raised ``OSError: bad heap index`` and the resume exited
    6.  The journal is the record: a view that cannot be appended to is rebuilt from it."""
    from rdhpo_hpc.storage import hdf5

    out = str(tmp_path / "v.h5")
    rd.optimize(obj, SPACE, max_trials=6, output=out, seed=1, workers=2, progress_interval=1000)
    recs = [r for r in read_journal(out + ".journal") if r["k"] != "end"]
    whole = str(tmp_path / "whole.h5")
    rebuild_from_records(whole, recs)
    cut = next(i for i, r in enumerate(recs) if r["k"] == "tell" and r["trial_id"] == 2)
    rebuild_from_records(out, recs[:cut])
    real = hdf5.HDF5Store._write_rows

    def torn(self, kind, rows):
        if self.path == out:  # the damaged view; the rebuild's temp file writes normally
            raise OSError("Can't synchronously write data (bad heap index, heap object = {800, 72})")
        return real(self, kind, rows)

    monkeypatch.setattr(hdf5.HDF5Store, "_write_rows", torn)
    assert catch_up(out, recs) == "rebuilt"
    monkeypatch.setattr(hdf5.HDF5Store, "_write_rows", real)
    strip = lambda p: [{k: v for k, v in r.items() if k != "seq"} for r in read_records(p)]  # noqa: E731
    assert strip(out) == strip(whole)

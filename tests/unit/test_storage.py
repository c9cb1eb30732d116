"""Results stores: HDF5 view and JSON-lines journal round trips, torn journals, rebuilds, and the
file layout a user reads with plain h5py."""
from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest

from rdhpo_hpc.storage.base import MemoryStore, MultiStore
from rdhpo_hpc.storage.hdf5 import HDF5Store, SCHEMA_VERSION, can_open, read_records, rebuild_from_records
from rdhpo_hpc.storage.journal import JournalStore, journal_path, read_journal


def sample_records(n_trials=3):
    recs = [{"k": "study", "name": "s", "direction": "minimize", "optimizer": "random", "seed": 0,
             "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}}, "config": "name: s\n",
             "start_time": 100.0}]
    recs.append({"k": "worker", "rank": 1, "host": "h", "pid": 11, "device": "cpu", "device_name": "",
                 "memory_bytes": None, "time": 100.5})
    recs.append({"k": "worker", "rank": 2, "host": "h", "pid": 12, "device": "cpu", "device_name": "",
                 "memory_bytes": None, "time": 100.6})
    for t in range(n_trials):
        params = {"x": 0.1 * t, "act": "relu", "nested": [1, 2]}
        recs.append({"k": "dispatch", "trial_id": t, "attempt": 0, "rank": 1 + t % 2, "time": 101.0 + t,
                     "new": True, "params": params, "budget": None, "checkpoint_from": None, "info": {}})
        for step in range(2):
            recs.append({"k": "report", "trial_id": t, "attempt": 0, "step": step, "value": 1.0 / (step + 1),
                         "metrics": {"acc": 0.5}, "time": 101.5 + t, "decision": "continue"})
        state = "FAILED" if t == 1 else "COMPLETE"
        value = None if t == 1 else 0.25 * t
        recs.append({"k": "attempt", "trial_id": t, "attempt": 0, "params": params, "budget": None,
                     "state": state, "value": value, "rank": 1 + t % 2, "host": "h", "device": "cpu",
                     "start_time": 101.0 + t, "end_time": 101.9 + t,
                     "error": "ValueError: bad ünïcode" if t == 1 else "", "metrics": {"last_step": 1},
                     "info": {}, "checkpoint_from": None})
        recs.append({"k": "tell", "trial_id": t, "state": state, "value": value})
    recs.append({"k": "event", "time": 110.0, "kind": "rank-dead", "rank": 2, "detail": "gossip-timeout",
                 "latency": 1.5})
    recs.append({"k": "end", "end_status": "complete", "end_time": 120.0})
    return recs


def comparable(recs):
    """Drop the seq numbers the HDF5 view adds; JSON-normalise."""
    out = []
    for r in recs:
        r = {k: v for k, v in r.items() if k != "seq"}
        out.append(json.loads(json.dumps(r, sort_keys=True)))
    return out


def test_hdf5_round_trip_via_read_records(tmp_path):
    p = str(tmp_path / "r.h5")
    recs = sample_records()
    s = HDF5Store(p, "w")
    for r in recs:
        s.append(r)
    s.close()
    back = read_records(p)
    assert [r["k"] for r in back] == [r["k"] for r in recs]
    got = comparable(back)
    want = comparable(recs)
    for g, w in zip(got, want):
        for k, v in w.items():
            assert g.get(k) == v, (w["k"], k, g.get(k), v)


def test_journal_round_trip_and_nonfinite_becomes_null(tmp_path):
    p = str(tmp_path / "r.h5.journal")
    recs = sample_records()
    recs.append({"k": "event", "time": 1.0, "kind": "x", "rank": 0, "detail": "", "latency": float("nan")})
    j = JournalStore(p)
    for r in recs:
        j.append(r)
    j.close()
    back = read_journal(p)
    assert back[:-1] == comparable(recs[:-1])
    assert back[-1]["latency"] is None


def test_journal_torn_last_line_is_skipped(tmp_path):
    p = str(tmp_path / "j")
    j = JournalStore(p)
    recs = sample_records()
    for r in recs:
        j.append(r)
    j.close()
    with open(p, "a") as fh:
        fh.write('{"k":"attempt","trial_id":9,"sta')           # killed mid-write
    back = read_journal(p)
    assert len(back) == len(recs) and back[-1]["k"] == "end"
    # a writer reopening the journal after the crash (--resume) must not glue its first record
    # onto the torn fragment: everything it appends is read back
    j = JournalStore(p)
    j.append({"k": "event", "time": 1.0, "kind": "resume", "rank": 0, "detail": "", "latency": None})
    j.close()
    back = read_journal(p)
    assert len(back) == len(recs) + 1 and back[-1]["kind"] == "resume"


def test_rebuild_from_records_replaces_a_corrupt_file_atomically(tmp_path):
    p = str(tmp_path / "r.h5")
    with open(p, "wb") as fh:
        fh.write(b"not an hdf5 file at all" * 10)
    assert not can_open(p)
    recs = sample_records(5)
    rebuild_from_records(p, recs)
    assert can_open(p)
    assert [r["k"] for r in read_records(p)] == [r["k"] for r in recs]
    assert not [f for f in tmp_path.iterdir() if ".tmp-" in f.name]      # no temp file left behind


def test_file_layout_readable_with_plain_h5py(tmp_path):
    p = str(tmp_path / "r.h5")
    s = HDF5Store(p, "w")
    for r in sample_records(4):
        s.append(r)
    s.close()
    with h5py.File(p, "r") as f:
        for g in ("study", "trials", "reports", "events", "workers"):
            assert g in f, g
        st = f["study"].attrs
        assert st["schema_version"] == SCHEMA_VERSION
        assert st["optimizer"] == "random" and st["end_status"] == "complete"
        assert json.loads(st["space"]) == {"x": {"type": "float", "low": 0.0, "high": 1.0}}
        # pandas-like column access: one 1-D dataset per column, equal lengths
        trials = {c: f["trials"][c][:] for c in f["trials"]}
        assert len({len(v) for v in trials.values()}) == 1
        assert trials["trial_id"].tolist() == [0, 1, 2, 3]
        assert trials["trial_id"].dtype == np.int64 and trials["value"].dtype == np.float64
        states = [s.decode() for s in trials["state"]]
        assert states == ["COMPLETE", "FAILED", "COMPLETE", "COMPLETE"]
        assert math.isnan(trials["value"][1]) and trials["value"][2] == 0.5
        assert f["trials"]["error"][1].decode() == "ValueError: bad ünïcode"
        assert json.loads(f["trials"]["params"][3]) == {"x": pytest.approx(0.3), "act": "relu", "nested": [1, 2]}
        assert f["reports"]["step"][:].tolist() == [0, 1] * 4
        assert f["workers"]["rank"][:].tolist() == [1, 2]
        assert f["events"]["kind"][0].decode() == "rank-dead"


def test_hdf5_appends_across_reopen_keep_order(tmp_path):
    p = str(tmp_path / "r.h5")
    recs = sample_records(4)
    half = len(recs) // 2
    s = HDF5Store(p, "w")
    for r in recs[:half]:
        s.append(r)
    s.close()
    s = HDF5Store(p, "a")
    for r in recs[half:]:
        s.append(r)
    s.close()
    assert [r["k"] for r in read_records(p)] == [r["k"] for r in recs]


def test_flushed_rows_survive_without_close(tmp_path):
    p = str(tmp_path / "r.h5")
    s = HDF5Store(p, "w")
    for r in sample_records(2):
        s.append(r)
    s.flush()                     # the coordinator flushes after each loop turn
    with h5py.File(p, "r") as f:  # another reader sees the flushed rows while the writer is open
        assert f["trials"]["trial_id"][:].tolist() == [0, 1]
    s.close()


def test_multistore_and_memory_store(tmp_path):
    p = str(tmp_path / "r.h5")
    j = JournalStore(journal_path(p))
    h = HDF5Store(p, "w")
    m = MultiStore(j, h)
    for r in sample_records(2):
        m.append(r)
    m.close()
    assert comparable(read_journal(journal_path(p))) == comparable(sample_records(2))
    assert [r["k"] for r in read_records(p)] == [r["k"] for r in sample_records(2)]
    mem = MemoryStore()
    mem.append({"k": "x"})
    assert mem.records() == [{"k": "x"}]

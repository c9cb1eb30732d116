"""Results stores: HDF5 view and JSON-lines journal round trips, torn journals, rebuilds, and the
file layout a user reads with plain h5py."""

from __future__ import annotations

import json
import math
import os

import h5py
import numpy as np
import pytest

from rdhpo_hpc.storage.base import MemoryStore, MultiStore
from rdhpo_hpc.storage.hdf5 import HDF5Store, SCHEMA_VERSION, can_open, read_records, rebuild_from_records
from rdhpo_hpc.storage.journal import JournalStore, journal_path, read_journal


def sample_records(n_trials=3):
    recs = [
        {
            "k": "study",
            "name": "s",
            "direction": "minimize",
            "optimizer": "random",
            "seed": 0,
            "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
            "config": "name: s\n",
            "start_time": 100.0,
        }
    ]
    recs.append(
        {
            "k": "worker",
            "rank": 1,
            "host": "h",
            "pid": 11,
            "device": "cpu",
            "device_name": "",
            "memory_bytes": None,
            "time": 100.5,
        }
    )
    recs.append(
        {
            "k": "worker",
            "rank": 2,
            "host": "h",
            "pid": 12,
            "device": "cpu",
            "device_name": "",
            "memory_bytes": None,
            "time": 100.6,
        }
    )
    for t in range(n_trials):
        params = {"x": 0.1 * t, "act": "relu", "nested": [1, 2]}
        recs.append(
            {
                "k": "dispatch",
                "trial_id": t,
                "attempt": 0,
                "rank": 1 + t % 2,
                "time": 101.0 + t,
                "new": True,
                "params": params,
                "budget": None,
                "checkpoint_from": None,
                "info": {},
            }
        )
        for step in range(2):
            recs.append(
                {
                    "k": "report",
                    "trial_id": t,
                    "attempt": 0,
                    "step": step,
                    "value": 1.0 / (step + 1),
                    "metrics": {"acc": 0.5},
                    "time": 101.5 + t,
                    "decision": "continue",
                }
            )
        state = "FAILED" if t == 1 else "COMPLETE"
        value = None if t == 1 else 0.25 * t
        recs.append(
            {
                "k": "attempt",
                "trial_id": t,
                "attempt": 0,
                "params": params,
                "budget": None,
                "state": state,
                "value": value,
                "rank": 1 + t % 2,
                "host": "h",
                "device": "cpu",
                "start_time": 101.0 + t,
                "end_time": 101.9 + t,
                "error": "ValueError: bad ünïcode" if t == 1 else "",
                "metrics": {"last_step": 1},
                "info": {},
                "checkpoint_from": None,
            }
        )
        recs.append({"k": "tell", "trial_id": t, "state": state, "value": value})
    recs.append(
        {"k": "event", "time": 110.0, "kind": "rank-dead", "rank": 2, "detail": "gossip-timeout", "latency": 1.5}
    )
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
        fh.write('{"k":"attempt","trial_id":9,"sta')  # killed mid-write
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
    assert not [f for f in tmp_path.iterdir() if ".tmp-" in f.name]  # no temp file left behind


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
    s.flush()  # the coordinator flushes after each loop turn
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


# -- the output path guard: rdhpo never replaces a file that is not its own -----------------------
def _study_pair(tmp_path, name="r.h5"):
    """A results file and its journal as a finished study leaves them."""
    p = str(tmp_path / name)
    j = JournalStore(journal_path(p))
    s = HDF5Store(p, "w")
    for r in sample_records(2):
        j.append(r)
        s.append(r)
    j.close()
    s.close()
    return p


def _foreign(tmp_path, kind, name="r.h5"):
    p = tmp_path / name
    if kind == "text":
        p.write_text("precious notes\n")
    elif kind == "binary":
        p.write_bytes(bytes(range(256)) * 40)
    elif kind == "hdf5":
        with h5py.File(p, "w") as f:
            f["data"] = np.arange(5)
    elif kind == "hdf5_study_group":  # a /study group, but not rdhpo's (no schema_version)
        with h5py.File(p, "w") as f:
            f.create_group("study").attrs["owner"] = "someone"
    return str(p)


def _digests(*paths):
    import hashlib

    return [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths]


@pytest.mark.parametrize("kind", ["text", "binary", "hdf5", "hdf5_study_group"])
def test_guard_refuses_a_foreign_output_file(tmp_path, kind):
    from rdhpo_hpc.errors import ConfigError
    from rdhpo_hpc.storage.paths import check_output_path

    p = _foreign(tmp_path, kind)
    assert not can_open(p)
    with pytest.raises(ConfigError) as err:
        check_output_path(p)
    msg = str(err.value)
    assert repr(p) in msg and "is not an rdhpo results file" in msg and "--overwrite" in msg, msg


@pytest.mark.parametrize("kind", ["text", "binary", "json_without_kind"])
def test_guard_refuses_a_foreign_journal(tmp_path, kind):
    from rdhpo_hpc.errors import ConfigError
    from rdhpo_hpc.storage.journal import is_journal
    from rdhpo_hpc.storage.paths import check_output_path

    p = str(tmp_path / "r.h5")
    jp = journal_path(p)
    with open(jp, "wb") as fh:
        fh.write(
            {"text": b"lab notebook\nline 2\n", "binary": bytes(range(256)) * 8, "json_without_kind": b'{"a": 1}\n'}[
                kind
            ]
        )
    assert not is_journal(jp)
    with pytest.raises(ConfigError) as err:
        check_output_path(p)
    assert repr(jp) in str(err.value) and "is not an rdhpo journal" in str(err.value)


def test_guard_accepts_rdhpo_files_and_absent_paths(tmp_path):
    from rdhpo_hpc.storage.journal import is_journal
    from rdhpo_hpc.storage.paths import check_output_path

    check_output_path(str(tmp_path / "new" / "deeper" / "r.h5"))  # parents are created later
    p = _study_pair(tmp_path)
    assert can_open(p) and is_journal(journal_path(p))
    check_output_path(p)
    # a results file torn by a crash, beside its (complete) journal, is rdhpo's: --resume rebuilds it
    with open(p, "wb") as fh:
        fh.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 20)
    check_output_path(p)
    # a journal whose first record was torn by a kill, and an empty one, are rdhpo's
    with open(journal_path(p), "wb") as fh:
        fh.write(b'{"k":"study","name":"s","sp')
    assert is_journal(journal_path(p))
    open(journal_path(p), "wb").close()
    assert is_journal(journal_path(p))


def test_guard_an_empty_journal_does_not_vouch_for_a_foreign_file(tmp_path):
    from rdhpo_hpc.errors import ConfigError
    from rdhpo_hpc.storage.paths import check_output_path

    p = _foreign(tmp_path, "text")
    open(journal_path(p), "w").close()
    with pytest.raises(ConfigError, match="is not an rdhpo results file"):
        check_output_path(p)


def test_guard_refuses_directories_and_a_parent_that_is_a_file(tmp_path):
    from rdhpo_hpc.errors import ConfigError
    from rdhpo_hpc.storage.paths import check_output_path

    d = tmp_path / "outdir"
    d.mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        check_output_path(str(d))
    with pytest.raises(ConfigError, match="is a directory"):
        check_output_path(str(tmp_path / "missing") + "/")
    (tmp_path / "j.h5.journal").mkdir()
    with pytest.raises(ConfigError, match=r"journal .*j\.h5\.journal.* is a directory"):
        check_output_path(str(tmp_path / "j.h5"))
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(ConfigError, match="afile.* is not a directory"):
        check_output_path(str(f / "sub" / "r.h5"))


@pytest.mark.parametrize("resume, overwrite", [(False, False), (False, True), (True, False)])
@pytest.mark.parametrize("where", ["output", "journal"])
def test_open_store_never_replaces_a_foreign_file(tmp_path, resume, overwrite, where):
    from rdhpo_hpc.config import from_dict
    from rdhpo_hpc.errors import ConfigError
    from rdhpo_hpc.launch import check_output, existing_records, open_store

    p = str(tmp_path / "r.h5")
    target = p if where == "output" else journal_path(p)
    with open(target, "w") as fh:
        fh.write("precious notes\n")
    before = _digests(target)
    cfg = from_dict(
        {
            "objective": {"function": "math:sqrt"},
            "output": p,
            "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        }
    )
    assert existing_records(p) is None  # no study there, and reading it does not fail
    for call in (lambda: check_output(cfg, resume, overwrite), lambda: open_store(cfg, resume, overwrite)):
        with pytest.raises(ConfigError) as err:
            call()
        assert repr(target) in str(err.value) and "rdhpo" in str(err.value)
    assert _digests(target) == before
    assert sorted(f.name for f in tmp_path.iterdir()) == [os.path.basename(target)]


def test_open_store_overwrites_an_rdhpo_study_when_asked(tmp_path):
    from rdhpo_hpc.config import from_dict
    from rdhpo_hpc.errors import ConfigError
    from rdhpo_hpc.launch import open_store

    p = _study_pair(tmp_path)
    cfg = from_dict(
        {
            "objective": {"function": "math:sqrt"},
            "output": p,
            "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        }
    )
    with pytest.raises(ConfigError, match="already holds a study"):
        open_store(cfg, False, False)
    store, old = open_store(cfg, False, True)
    store.close()
    assert old == [] and read_journal(journal_path(p)) == []


def test_guard_accepts_the_empty_hdf5_file_of_a_study_killed_before_its_first_write(tmp_path):
    from rdhpo_hpc.storage.paths import check_output_path

    p = str(tmp_path / "r.h5")
    open(journal_path(p), "w").close()
    HDF5Store(p, "w").file.close()  # created, never written
    check_output_path(p)

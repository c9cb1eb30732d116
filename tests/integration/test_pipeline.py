"""Pipelined dispatch of very short trials (in-process transport): a worker is handed its next
attempts before the current one ends, every trial still counts exactly once, and a worker that
dies with queued attempts loses them to a re-run, not to the void."""

from __future__ import annotations

import collections
import io

import pytest

from rdhpo_hpc.launch import run_inprocess
from rdhpo_hpc.storage.journal import journal_path, read_journal

from test_faults import cfg_of, check_once

pytestmark = pytest.mark.timeout(60)


def outstanding_at_dispatch(records: list[dict]) -> list[int]:
    """For each dispatch: how many earlier attempts of the same rank had not ended yet (by the
    attempts' own end times)."""
    ends = {(a["trial_id"], a["attempt"]): a["end_time"] for a in records if a.get("k") == "attempt"}
    sent: dict[int, list] = collections.defaultdict(list)
    out = []
    for d in (r for r in records if r.get("k") == "dispatch"):
        mine = sent[d["rank"]]
        out.append(sum(1 for key in mine if ends.get(key, float("inf")) > d["time"]))
        mine.append((d["trial_id"], d["attempt"]))
    return out


def run(tmp_path, n, fn="quick", faults=(), workers=3):
    cfg = cfg_of(n, fn=fn, faults=faults, output=tmp_path / "p.h5")
    out = run_inprocess(cfg, workers=workers, out=io.StringIO())
    return out, read_journal(journal_path(str(tmp_path / "p.h5")))


def test_short_trials_are_pipelined_and_counted_once(tmp_path):
    out, recs = run(tmp_path, 300)
    assert out.exit_code == 0
    check_once(out.result, 300)
    depth = outstanding_at_dispatch(recs)
    assert max(depth) >= 2, "no worker ever held more than one attempt"
    assert sum(d >= 1 for d in depth) > len(depth) // 2, depth


def test_long_trials_get_one_attempt_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setenv("RDHPO_TEST_QUICK_S", "0.08")
    out, recs = run(tmp_path, 30)
    check_once(out.result, 30)
    assert max(outstanding_at_dispatch(recs)) == 0


def test_one_worker_is_never_pipelined(tmp_path):
    out, recs = run(tmp_path, 60, workers=1)
    check_once(out.result, 60)
    assert max(outstanding_at_dispatch(recs)) == 0


def test_worker_killed_with_queued_attempts_loses_none(tmp_path):
    out, recs = run(tmp_path, 600, faults=[{"kill": 2, "at": 0.6}])
    assert out.exit_code == 0
    ev = check_once(out.result, 600)
    (dead,) = ev["rank-dead"]
    assert dead["rank"] == 2
    lost = [a for a in out.result.attempts if a["state"] == "LOST" and a["rank"] == 2]
    assert lost and len(ev["requeue"]) == len(lost)
    assert all(
        a["rank"] != 2 for a in out.result.attempts if a["state"] == "COMPLETE" and a["start_time"] > dead["time"]
    )

"""``rdhpo watch`` off a terminal and its journal reader: ``--once`` snapshots, one line per change
while the journal grows (read by offset, a torn last line left for later, a replaced journal
read again), the end of the study ending the command, bad input refused with exit 2 and nothing
touched, and the rich screen's text."""

from __future__ import annotations

import io
import os

import pytest

from rdhpo_hpc.cli import main
from rdhpo_hpc.coordination import records as rec
from rdhpo_hpc.storage.journal import JournalStore, journal_path, read_from
from rdhpo_hpc.trial import Suggestion, TrialState
from rdhpo_hpc.watch import plain
from rdhpo_hpc.watch.snapshot import take
from rdhpo_hpc.watch.source import JournalSource

T0 = 1_700_000_000.0


def study_records(max_trials=4):
    return [
        {
            "k": "study",
            "name": "w",
            "direction": "minimize",
            "optimizer": "random",
            "metric": "value",
            "max_trials": max_trials,
            "fault_tolerance": {"t_fail": 2.0},
            "start_time": T0,
        },
        rec.event(T0, "coordinator-start", 0, "size=3 pid=1 host=c0"),
        rec.worker(1, "n1", 11, {"device": "cpu"}, T0),
        rec.worker(2, "n2", 12, {"device": "cpu"}, T0),
    ]


def trial_records(tid, rank, value, state=TrialState.COMPLETE, error=""):
    s = Suggestion({"x": 0.1 * tid})
    out = [
        rec.dispatch(tid, 0, rank, T0 + tid, True, s),
        rec.report(tid, 0, 1, 2.0, {}, T0 + tid + 0.5, "continue"),
        rec.ended(tid, 0, s, rank, state, value, error, T0 + tid, T0 + tid + 1),
    ]
    return out + [rec.tell(tid, state.value, value)]


def write(path, records):
    store = JournalStore(journal_path(str(path)))
    for r in records:
        store.append(r)
    store.close()


def test_once_prints_a_snapshot_of_a_finished_study(tmp_path, capsys):
    res = tmp_path / "s.h5"
    recs = study_records() + trial_records(0, 1, 0.5) + trial_records(1, 2, 0.25)
    recs += trial_records(2, 1, None, TrialState.FAILED, "ValueError: bad x\n  File ...") + trial_records(3, 2, 0.75)
    write(res, recs + [rec.end("complete", T0 + 9, 0)])
    assert main(["watch", str(res), "--once"]) == 0
    out = capsys.readouterr().out
    assert "study 'w' · random · minimize value" in out
    assert "status: finished (ended: complete, exit code 0)" in out
    assert "progress: 4/4 trials done (100%), 0 running" in out
    assert "counts: complete 3 pruned 0 failed 1 lost 0" in out
    assert "best: 0.25 (trial 1)  params: x=0.1" in out
    assert "trial 2 attempt 0 on rank 1: ValueError: bad x" in out
    assert "coordinator-start rank 0: size=3" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("  1 ") or line.startswith("  2 ")]
    assert [r[:3] for r in rows] == [["1", "n1", "live"], ["2", "n2", "live"]]


def test_once_on_a_running_study_lists_trials_per_rank(tmp_path, capsys):
    res = tmp_path / "r.h5"
    recs = study_records(10) + trial_records(0, 1, 0.5)
    recs += [
        rec.dispatch(1, 0, 2, T0 + 2, True, Suggestion({"x": 0.3})),
        rec.report(1, 0, 4, 0.125, {}, T0 + 3, "continue"),
    ]
    write(res, recs)
    assert main(["watch", str(res) + ".journal", "--once"]) == 0  # the journal's path works too
    out = capsys.readouterr().out
    assert "progress: 1/10 trials done (10%), 1 running" in out
    row = next(line.split() for line in out.splitlines() if line.startswith("  2 "))
    assert row[:6] == ["2", "n2", "live", "1", "4", "0.125"]  # rank, host, status, trial, step, value


def test_reader_leaves_a_torn_line_and_rereads_a_replaced_journal(tmp_path):
    jp = tmp_path / "t.h5.journal"
    jp.write_bytes(b'{"k":"tell","trial_id":0,"state":"COMPLETE","value":1.0}\n{"k":"tell","tri')
    recs, off = read_from(str(jp), 0)
    assert [r["trial_id"] for r in recs] == [0] and off == jp.read_bytes().index(b"\n") + 1
    with open(jp, "ab") as fh:  # the writer finishes the line
        fh.write(b'al_id":1,"state":"FAILED","value":null}\nnot json\n')
    recs, off2 = read_from(str(jp), off)
    assert [r["trial_id"] for r in recs] == [1] and off2 == jp.stat().st_size  # "not json" skipped

    src = JournalSource(str(tmp_path / "t.h5"))
    src.poll()
    assert src.view.done == 2
    os.unlink(jp)  # --overwrite: a new journal under the same name
    write(tmp_path / "t.h5", study_records())
    assert src.poll() and src.view.done == 0 and src.view.name == "w"


def test_follow_prints_lines_as_the_journal_grows_and_ends_with_the_study(tmp_path):
    res = tmp_path / "g.h5"
    write(res, study_records(3))
    store = JournalStore(journal_path(str(res)))
    more = [
        trial_records(0, 1, 0.5),
        [rec.event(T0 + 2, "rank-dead", 2, "gossip-timeout", 2.0)]
        + trial_records(1, 1, None, TrialState.FAILED, "RuntimeError: nan loss"),
        trial_records(2, 1, 0.25) + [rec.end("complete", T0 + 5, 0)],
    ]

    def sleep(_):  # the study moves on between two refreshes
        assert more, "follow did not stop at the end record"
        for r in more.pop(0):
            store.append(r)

    out = io.StringIO()
    src = JournalSource(str(res))
    assert plain.follow(src, out, 0.01, clock=lambda: T0 + 6, sleep=sleep) == 0
    store.close()
    lines = out.getvalue().splitlines()
    summaries = [line for line in lines if line.startswith("[rdhpo watch")]
    assert [s.split("trials ")[1].split(" done")[0] for s in summaries] == ["0/3", "1/3", "2/3", "3/3"]
    assert "finished" in summaries[-1] and "best 0.25 (trial 2)" in summaries[-1]
    assert any(line.startswith("event ") and "rank-dead rank 2: gossip-timeout" in line for line in lines)
    assert sum(line.startswith("failure ") and "RuntimeError: nan loss" in line for line in lines) == 1
    assert "status: finished (ended: complete, exit code 0)" in lines[lines.index(summaries[-1]) + 1 :][1]


@pytest.mark.parametrize("case", ["missing", "not-results", "bad-journal", "directory", "interval"])
def test_bad_input_exits_2_with_one_message_and_touches_nothing(tmp_path, capsys, case):
    target = tmp_path / "x.h5"
    args = ["watch", str(target), "--once"]
    if case == "not-results":
        target.write_text("a: 1\n")
    elif case == "bad-journal":
        target.write_bytes(b"HDF")
        (tmp_path / "x.h5.journal").write_text("not a journal\n")
    elif case == "directory":
        target.mkdir()
    elif case == "interval":
        write(target, study_records())
        args = ["watch", str(target), "--interval", "-1"]
    before = {p.name: (p.stat().st_mtime_ns, p.is_file() and p.read_bytes()) for p in tmp_path.iterdir()}
    assert main(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rdhpo: error:") and captured.out == ""
    expect = {
        "missing": f"no results file '{target}'",
        "not-results": "is not a results file",
        "bad-journal": "is not a study journal",
        "directory": "is a directory",
        "interval": "--interval must be a number of seconds > 0, got -1.0",
    }[case]
    assert expect in err[0]
    assert {p.name: (p.stat().st_mtime_ns, p.is_file() and p.read_bytes()) for p in tmp_path.iterdir()} == before


def test_rich_screen_shows_ranks_progress_and_best(tmp_path):
    from rich.console import Console

    from rdhpo_hpc.watch.view import render

    res = tmp_path / "v.h5"
    recs = study_records(8) + trial_records(0, 1, 0.5)
    recs += [
        rec.dispatch(1, 0, 2, T0 + 2, True, Suggestion({"x": 0.3})),
        rec.report(1, 0, 7, 0.375, {}, T0 + 3, "continue"),
    ]
    write(res, recs)
    src = JournalSource(str(res))
    src.poll()
    console = Console(record=True, width=120, color_system=None)
    console.print(render(take(src.view, (T0 + 4, 0), T0 + 4), height=40))
    screen = console.export_text()
    assert "RUNNING" in screen and "1/8 trials done (12%)" in screen
    assert "best 0.5 (trial 0)" in screen
    row = next(line.split() for line in screen.splitlines() if line.split()[:1] == ["2"])
    assert row[:6] == ["2", "n2", "live", "1", "7", "0.375"]

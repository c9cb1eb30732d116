"""Snapshots of the optimizer's state in the journal (fast ``--resume`` / takeover): the codec,
the optimizer contract (restoring a snapshot after a replay that does not ask equals asking
again), and the coordinator's replay from a real simulated journal, fallbacks included."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from bench.simulate import simulate
from rdhpo_hpc.coordination.replay import replay
from rdhpo_hpc.coordination.study import Study
from rdhpo_hpc.coordination.table import TrialTable
from rdhpo_hpc.optimizers import REGISTRY, make_optimizer
from rdhpo_hpc.optimizers.random import RandomSearch
from rdhpo_hpc.snapshot import pack, unpack
from rdhpo_hpc.storage.journal import JournalStore, read_journal
from rdhpo_hpc.strategy import make_strategy
from rdhpo_hpc.trial import TrialState

from test_optimizer_contract import mixed_space, objective

pytestmark = pytest.mark.timeout(120)


def through_journal(tmp_path, value):
    """``value`` written by the journal's encoder and read back by its reader."""
    path = str(tmp_path / "codec.journal")
    store = JournalStore(path)
    store.append({"k": "snapshot", "v": pack(value)})
    store.close()
    return unpack(read_journal(path)[-1]["v"])


# -- the codec -----------------------------------------------------------------------------------
def test_codec_round_trips_state_values_exactly(tmp_path):
    rng = np.random.default_rng(11)
    rng.random(3)
    value = {
        "array": np.array([[0.1, math.nan], [math.inf, -0.0]]),
        "ints": np.arange(5, dtype=np.int64),
        "big": 2**100 + 7,  # PCG64 states are 128-bit integers
        "floats": [math.nan, -math.inf, 1e-300, 0.1],
        "tuple": (1, "a", None, True),
        3: {"nested": (2.5,)},
        "np_scalar": np.float64(0.25),
        "rng": rng,
    }
    back = through_journal(tmp_path, value)
    assert set(back) == set(value)
    assert np.array_equal(back["array"], value["array"], equal_nan=True) and back["array"].shape == (2, 2)
    assert back["ints"].dtype == np.int64 and back["ints"].tolist() == [0, 1, 2, 3, 4]
    assert back["big"] == 2**100 + 7
    assert math.isnan(back["floats"][0]) and back["floats"][1:] == [-math.inf, 1e-300, 0.1]
    assert back["tuple"] == (1, "a", None, True) and back[3] == {"nested": (2.5,)}
    assert back["np_scalar"] == 0.25
    assert back["rng"].random(4).tolist() == rng.random(4).tolist()  # the same stream from here on


def test_codec_refuses_what_it_cannot_hold_and_malformed_input():
    with pytest.raises(TypeError, match="object"):
        pack(object())
    bad_values = [
        {"$a": "!!", "dtype": "<f8", "shape": [1]},
        {"$rng": {"bit_generator": "Nope"}},
        {"$x": 1},
        {"$i": "z"},
    ]
    for bad in bad_values:
        with pytest.raises(ValueError, match="snapshot"):
            unpack(bad)


# -- the optimizer contract ------------------------------------------------------------------------
SNAPSHOTTING = sorted(n for n, path in REGISTRY.items() if make_optimizer(n, mixed_space()).snapshot_every)
# hedge: the arms' gains and last proposals; refit_every: asks that do not refit (_fit_n)
VARIANTS = [(n, {}) for n in SNAPSHOTTING] + [("bayes", {"acq": "hedge", "initial_design": "lhs", "refit_every": 3})]


def drive_with_snapshots(opt, n: int):
    """The asynchronous pattern of test_optimizer_contract (3 pending, every 5th FAILED); the
    snapshot (as read back from JSON) after every ask."""
    log, snaps, pending, tid = [], [], [], 0
    while tid < n or pending:
        while tid < n and len(pending) < 3:
            p = opt.ask(tid)
            log.append(("ask", tid, p))
            snaps.append(json.loads(json.dumps(opt.snapshot_state())))
            if p is not None:
                pending.append((tid, p))
            tid += 1
        if not pending:
            break
        t, p = pending.pop(0)
        told = (TrialState.FAILED, None) if t % 5 == 4 else (TrialState.COMPLETE, objective(p))
        opt.tell(t, *told)
        log.append(("tell", t, told))
    return log, snaps


@pytest.mark.parametrize("name,options", VARIANTS, ids=[n + "".join(f"-{v}" for v in o.values()) for n, o in VARIANTS])
def test_restored_snapshot_continues_as_the_uninterrupted_optimizer(name, options):
    """Replay a prefix of the log with logged answers (no suggestion computed), restore the
    snapshot taken at its last ask, then ask for real: every later suggestion is the logged one,
    and the next one is what the uninterrupted optimizer suggests."""
    n = 16
    live = make_optimizer(name, mixed_space(), seed=4, **options)
    log, snaps = drive_with_snapshots(live, n)
    nxt = live.ask(n)
    ask_at = [i for i, e in enumerate(log) if e[0] == "ask"]
    for k in (2, 11, 14):  # in the initial design, right after it, with a model
        fresh = make_optimizer(name, mixed_space(), seed=4, **options)
        cut = ask_at[k]
        for kind, tid, x in log[: cut + 1]:
            if kind == "ask":
                with fresh.logged_answer(tid, x):
                    assert fresh.ask(tid) == x
            else:
                fresh.tell(tid, *x)
        fresh.set_state(fresh.decode_state(snaps[k]))
        for kind, tid, x in log[cut + 1 :]:
            if kind == "ask":
                assert fresh.ask(tid) == x, f"{name}: ask {tid} after the snapshot of ask {k}"
            else:
                fresh.tell(tid, *x)
        assert fresh.ask(n) == nxt


def test_a_snapshot_of_other_state_is_refused_and_changes_nothing():
    opt = make_optimizer("bayes", mixed_space(), seed=0)
    opt.ask(0)
    good = json.loads(json.dumps(opt.snapshot_state()))
    before = opt.rng.bit_generator.state
    for bad in [{**good, "_n_asked": {"$a": "?"}}, {k: v for k, v in good.items() if k != "gp_theta"}, "junk"]:
        with pytest.raises(ValueError):
            opt.decode_state(bad)
    assert opt.rng.bit_generator.state == before
    with pytest.raises(ValueError, match="fields"):
        make_optimizer("random", mixed_space()).decode_state(good)


# -- the coordinator's replay, from a simulated study's real journal -------------------------------
def journal_of(tmp_path, optimizer: str, trials: int, **options):
    path = str(tmp_path / f"{optimizer}.journal")
    r = simulate(6, trials, optimizer, fail=0.2, charge=False, seed=3, journal=path, options=options)
    assert r["each_trial_once"]
    return read_journal(path), r


def resumed(records, optimizer: str, **options):
    from bench.simulate import DEFAULT_OPTIONS, SPACE

    opt, sched = make_strategy(optimizer, SPACE, "minimize", 3, **{**DEFAULT_OPTIONS.get(optimizer, {}), **options})
    table, study = TrialTable(), Study(opt, sched)
    done = replay(records, table, study, {})
    done.total_asks = opt.asks  # type: ignore[attr-defined]
    nexts = []
    for tid in range(table.next_id, table.next_id + 4):
        s = study.suggest(tid)
        nexts.append(None if s is None else (s.params, s.budget, s.checkpoint_from, s.info))
    state = (table.next_id, table.done, list(table.requeue), sorted(opt.pending), [h[:3] for h in opt.history])
    return done, nexts, state, dict(study.counts)


def cut_before_end(records, frac: float):
    """The journal of a coordinator killed after ``frac`` of the records (trials still running)."""
    return records[: int(len(records) * frac)]


@pytest.mark.parametrize(
    "optimizer,trials,options",
    [("random", 120, {}), ("asha", 120, {}), ("bayes", 24, {"n_initial": 6}), ("pbt", 120, {})],
)
def test_fast_replay_rebuilds_the_state_of_a_full_replay(tmp_path, monkeypatch, optimizer, trials, options):
    monkeypatch.setattr(RandomSearch, "snapshot_every", 7)  # several snapshots in a short study
    records, _ = journal_of(tmp_path, optimizer, trials, **options)
    cut = cut_before_end(records, 0.8)
    snaps = [r for r in cut if r["k"] == "snapshot"]
    assert snaps, "the coordinator wrote no snapshot"
    full = [r for r in cut if r["k"] != "snapshot"]  # what an old journal holds
    fast_done, fast_next, fast_state, fast_counts = resumed(cut, optimizer, **options)
    full_done, full_next, full_state, full_counts = resumed(full, optimizer, **options)
    assert fast_done.snapshot_trial == snaps[-1]["trial_id"] and full_done.snapshot_trial is None
    # asks run again: by a full replay every ask of the study, by a fast one those after the snapshot
    assert full_done.asked == full_done.total_asks == fast_done.total_asks > 7 and fast_done.asked <= 7
    assert (fast_state, fast_counts) == (full_state, full_counts)
    assert fast_next == full_next and any(x is not None for x in fast_next)


def test_unusable_snapshots_fall_back_to_an_older_one_or_to_a_full_replay(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(RandomSearch, "snapshot_every", 7)
    records, _ = journal_of(tmp_path, "random", 80)
    cut = cut_before_end(records, 0.9)
    expected = resumed([r for r in cut if r["k"] != "snapshot"], "random")
    positions = [i for i, r in enumerate(cut) if r["k"] == "snapshot"]
    assert len(positions) >= 3
    # the newest one torn (malformed state), the one before it separated from its trial's record
    damaged = list(cut)
    damaged[positions[-1]] = {**cut[positions[-1]], "optimizer": {"rng": {"$a": "??"}}}
    damaged.insert(positions[-2], {"k": "event", "time": 0.0, "kind": "x", "rank": -1, "detail": "", "latency": None})
    done, *rest = resumed(damaged, "random")
    assert done.snapshot_trial == cut[positions[-3]]["trial_id"]
    assert tuple(rest) == expected[1:]
    assert "2 newer snapshot(s) not usable" in caplog.text
    # another seed (or other options) wrote them: none is used, the replay asks again for every trial
    other_seed = Study(*make_strategy("random", mixed_space(), "minimize", 99)).fingerprint()
    other = [{**r, "strategy": other_seed} if r["k"] == "snapshot" else r for r in cut]
    done, *rest = resumed(other, "random")
    assert done.snapshot_trial is None and tuple(rest) == expected[1:]
    assert "replaying every ask" in caplog.text


def test_snapshots_are_due_every_snapshot_every_asks_and_never_without_it():
    opt, sched = make_strategy("random", mixed_space(), "minimize", 0)
    study = Study(opt, sched)
    due = []
    for tid in range(2001):
        study.suggest(tid)
        due.append(study.snapshot() is not None)
    assert [i for i, d in enumerate(due) if d] == [999, 1999]  # every 1000 asks
    no_snap = [n for n in REGISTRY if not make_optimizer(n, mixed_space()).snapshot_every]
    for n in no_snap:
        o = make_optimizer(n, mixed_space())
        s = Study(o, make_strategy("random", mixed_space())[1])
        s.suggest(0)
        assert s.snapshot() is None


def test_journal_reader_reads_every_line_as_the_json_module_does():
    """The journal's fast reader (orjson where installed) gives what json.loads gives, also for
    what orjson reads otherwise: integers beyond 64 bits, NaN literals."""
    from rdhpo_hpc.storage.journal import parse_lines

    lines = [
        {"k": "x", "big": 2**64 + 1, "neg": -(2**63) - 5, "max": 2**63 - 1, "frac": 0.00012345678901234567},
        {"k": "x", "tiny": 1e-300, "s": "1234567890123456789012", "nested": [0.1, [2**70, "a"]], "u": "é"},
        {"k": "x", "f": 1.2345678901234567e19, "t": 1733100000.123456, "n": None, "b": True},
    ]
    data = b"".join(json.dumps(r).encode() + b"\n" for r in lines) + b'{"k": "x", "v": NaN}\n'
    out, used = parse_lines(data, stop_at_bad=True)
    assert out[:3] == lines and used == len(data)
    assert type(out[0]["big"]) is int and out[0]["big"] == 2**64 + 1 and out[1]["nested"][1][0] == 2**70
    assert math.isnan(out[3]["v"])


# -- rung schedulers: the replay applies the logged decisions instead of judging again ------------
def rung_state(sched):
    """Everything a rung scheduler knows, comparable (rankings in order)."""
    configs = {
        root: (t.group, t.rungs, t.values, t.settled, t.stopped, t.ended, t.current, t.waiting)
        for root, t in sched.configs.items()
    }
    ranked = {key: list(r) for key, r in sched.ranked.items()}
    trials = {tid: t.root for tid, t in sched.trials.items()}
    return configs, trials, sched.rung_of, sched.tables, ranked, sched.members, sorted(sched.waiting)


def replayed_rungs(records, optimizer: str, options: dict, monkeypatch, judge_all: bool):
    """(state after replay, answers to the same later reports, state after them, next
    suggestions, judgements made during the replay)."""
    from bench.simulate import DEFAULT_OPTIONS, SPACE, curve
    from rdhpo_hpc.schedulers.rungs import RungScheduler

    with monkeypatch.context() as m:
        if judge_all:  # the full replay: every report judged again
            m.setattr(RungScheduler, "replay_report", lambda s, tid, step, v, proceed: s.on_report(tid, step, v))
        judged = []
        real_judge = type(make_strategy(optimizer, SPACE)[1])._judge
        m.setattr(
            type(make_strategy(optimizer, SPACE)[1]), "_judge", lambda s, t, k: judged.append(k) or real_judge(s, t, k)
        )
        opt, sched = make_strategy(optimizer, SPACE, "minimize", 3, **{**DEFAULT_OPTIONS[optimizer], **options})
        table, study = TrialTable(), Study(opt, sched)
        replay(records, table, study, {})
        n_judged = len(judged)
    state = rung_state(sched)
    running = sorted(tid for tid, e in table.trials.items() if not e.done)
    answers = [
        [sched.on_report(tid, step, curve(table.trials[tid].suggestion.params, step)) for step in range(1, 12)]
        for tid in running
    ]
    for tid in running:  # they end, best of all: promote mode promotes them
        study.tell(tid, TrialState.COMPLETE, -1.0, None)
    nexts = [(s.params, s.budget, s.info) if s else None for s in (study.suggest(table.next_id + i) for i in range(6))]
    return state, answers, rung_state(sched), nexts, n_judged


@pytest.mark.parametrize(
    "optimizer,options",
    [
        ("asha", {}),
        ("asha", {"eta": 1.3, "max_budget": 9}),  # a report reaches several rungs at once
        ("asha", {"mode": "promote"}),
        ("hyperband", {}),
    ],
    ids=["asha", "asha-eta1.3", "asha-promote", "hyperband"],
)
def test_replay_with_logged_decisions_equals_judging_every_report(tmp_path, monkeypatch, optimizer, options):
    """Exactness of the fast path of ``replay_report``: the scheduler's whole state after the
    replay, its answers to the same later reports and its next suggestions equal those of a
    replay that judges every report again — with far fewer judgements where ASHA decided at once."""
    records, _ = journal_of(tmp_path, optimizer, 150, **options)
    cut = cut_before_end(records, 0.8)
    fast = replayed_rungs(cut, optimizer, options, monkeypatch, judge_all=False)
    full = replayed_rungs(cut, optimizer, options, monkeypatch, judge_all=True)
    assert fast[:4] == full[:4]
    if "mode" in options:  # promote: reports are not judged, values wait for promotion
        assert any("promoted_from" in s[2] for s in fast[3])
    else:
        assert any(False in a for a in fast[1]) and any(all(a) for a in fast[1]), "some later reports stop, some not"
    if optimizer == "asha" and "mode" not in options:
        assert full[4] > 100 and fast[4] < full[4] / 10  # judged again only when a stop left doubt
    else:
        assert fast[4] == full[4]


@pytest.mark.parametrize("name,options", [("asha", {}), ("asha", {"eta": 2}), ("hyperband", {})])
def test_replay_report_leaves_the_state_of_the_live_scheduler(name, options):
    """Scheduler level, with reports that reach several rungs at once and FAILED trials: fed the
    live scheduler's (report, answer) pairs through ``replay_report``, a fresh one ends in the
    live one's state and answers the next reports alike."""
    from bench.simulate import SPACE

    rnd = random.Random(7)
    (opt, live), (opt2, again) = (make_strategy(name, SPACE, "minimize", 1, max_budget=27, **options) for _ in "ab")
    judged: list[int] = []
    judged_live: list[int] = []
    for sched, log in ((again, judged), (live, judged_live)):
        sched._judge = lambda t, k, real=sched._judge, log=log: log.append(k) or real(t, k)  # type: ignore[method-assign]
    steps: dict[int, int] = {}
    for tid in range(400):
        if len(steps) < 8:
            assert live.next_trial(opt, tid) is not None and again.next_trial(opt2, tid) is not None
            steps[tid] = 0
        t = rnd.choice(sorted(steps))
        if rnd.random() < 0.03:  # it fails: out of every rung table
            live.on_result(t, TrialState.FAILED, None), again.on_result(t, TrialState.FAILED, None)
            del steps[t]
            continue
        steps[t] += rnd.choice([1, 1, 2, 3, 6, 9])
        value = rnd.choice([rnd.random(), 0.5])  # ties too
        proceed = live.on_report(t, steps[t], value)
        again.replay_report(t, steps[t], value, proceed)
        if not proceed or steps[t] >= 27:
            state = TrialState.COMPLETE if proceed else TrialState.PRUNED
            live.on_result(t, state, value), again.on_result(t, state, value)
            del steps[t]
    assert rung_state(again) == rung_state(live)
    if name == "asha":  # judged again only after a stop with two rungs undecided: there were some
        assert 0 < len(judged) < sum(1 for k in judged_live)
    later = [(t, s, rnd.random()) for t in sorted(steps) for s in range(steps[t] + 1, 28, 2)]
    answers = [live.on_report(*r) for r in later]
    assert [again.on_report(*r) for r in later] == answers and False in answers and True in answers

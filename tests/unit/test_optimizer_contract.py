"""Contract every optimizer in ``rdhpo_hpc.optimizers.REGISTRY`` must honour.

Parametrised over the registry, so optimizers added later are covered automatically.
"""

from __future__ import annotations

import math

import pytest

from rdhpo_hpc.errors import ConfigError
from rdhpo_hpc.optimizers import REGISTRY, make_optimizer
from rdhpo_hpc.space import Categorical, Choice, Float, Int, Space
from rdhpo_hpc.trial import TrialState

NAMES = sorted(REGISTRY)


def mixed_space() -> Space:
    return Space(
        lr=Float(1e-4, 1e-1, log=True),
        width=Int(8, 64, step=8),
        act=Categorical(["relu", "tanh"]),
        drop=Float(0.0, 0.5, step=0.1),
    )


def conditional_space() -> Space:
    return Space(
        lr=Float(1e-3, 1.0, log=True),
        model=Choice(
            {
                "mlp": Space(width=Int(16, 256, log=True), act=Categorical(["relu", "tanh"])),
                "svm": Space(C=Float(0.01, 100.0, log=True)),
                "linear": None,
            }
        ),
    )


def objective(cfg: dict) -> float:
    """A deterministic loss using whatever params are present."""
    v = 0.0
    for _k, x in sorted(cfg.items()):
        if isinstance(x, (int, float)) and not isinstance(x, bool):
            v += (math.log10(abs(x) + 1e-3) + 1.0) ** 2
        else:
            v += 0.3 * (len(str(x)) % 3)
    return v


def drive(opt, n: int = 14, fail_every: int = 5) -> list:
    """Asynchronous pattern: keep up to 3 trials pending, tell the oldest; every 5th fails.
    Returns the logged (kind, trial_id, params or (state, value)) sequence."""
    log, pending, tid = [], [], 0
    while tid < n or pending:
        while tid < n and len(pending) < 3:
            p = opt.ask(tid)
            log.append(("ask", tid, p))
            if p is not None:
                pending.append((tid, p))
            tid += 1
            if p is None:
                break
        if not pending:
            break
        t, p = pending.pop(0)
        if t % fail_every == fail_every - 1:
            state, value = TrialState.FAILED, None
        else:
            state, value = TrialState.COMPLETE, objective(p)
        opt.tell(t, state, value)
        log.append(("tell", t, (state, value)))
    return log


def replay(opt, log: list) -> list:
    out = []
    for kind, tid, x in log:
        if kind == "ask":
            out.append(("ask", tid, opt.ask(tid)))
        else:
            opt.tell(tid, *x)
            out.append(("tell", tid, x))
    return out


@pytest.fixture(params=NAMES)
def name(request):
    return request.param


@pytest.mark.parametrize("space_fn", [mixed_space, conditional_space])
def test_ask_returns_valid_config(name, space_fn):
    space = space_fn()
    opt = make_optimizer(name, space, seed=1)
    asked = [x for kind, _, x in drive(opt) if kind == "ask" and x is not None]
    assert asked, f"{name} suggested nothing"
    for cfg in asked:
        space.validate(cfg)  # active params only, values inside their ranges and steps


def test_same_seed_same_sequence(name):
    a = drive(make_optimizer(name, conditional_space(), seed=7))
    b = drive(make_optimizer(name, conditional_space(), seed=7))
    assert a == b


def test_replay_gives_same_next_suggestion(name):
    """A fresh optimizer fed the logged ask/tell sequence suggests what the original suggests next."""
    space = mixed_space()
    live = make_optimizer(name, space, seed=3)
    log = drive(live, n=12)
    fresh = make_optimizer(name, space, seed=3)
    assert replay(fresh, log) == log
    assert fresh.ask(100) == live.ask(100)


def test_failed_tell_leaves_no_pending(name):
    opt = make_optimizer(name, mixed_space(), seed=0)
    ids = [t for t in range(4) if opt.ask(t) is not None]
    assert ids
    for t in ids:
        opt.tell(t, TrialState.FAILED, None)
    opt.tell(99, TrialState.FAILED, None)  # unknown trial: ignored
    assert opt.pending == {}
    nxt = opt.ask(10)
    if nxt is not None:
        opt.space.validate(nxt)
        opt.tell(10, TrialState.COMPLETE, float("nan"))  # NaN counts as a failure
    assert opt.pending == {}


def test_conditional_params_present_only_when_active(name):
    space = conditional_space()
    opt = make_optimizer(name, space, seed=5)
    for kind, _, cfg in drive(opt, n=12):
        if kind != "ask" or cfg is None:
            continue
        branch = {"mlp": {"width", "act"}, "svm": {"C"}, "linear": set()}[cfg["model"]]
        assert set(cfg) == {"lr", "model"} | branch


def test_unknown_option_is_rejected_by_name(name):
    with pytest.raises(ConfigError, match="no_such_option"):
        make_optimizer(name, mixed_space(), seed=0, no_such_option=1)


# -- evolution specifics ---------------------------------------------------------------------
def test_evolution_mutates_tournament_winner_and_ages_population():
    space = Space(x=Float(0.0, 1.0), y=Int(0, 100))
    opt = make_optimizer("evolution", space, seed=0, population_size=6, sample_size=3)
    for t in range(40):
        cfg = opt.ask(t)
        opt.tell(t, TrialState.COMPLETE, (cfg["x"] - 0.3) ** 2 + ((cfg["y"] - 70) / 100) ** 2)
    assert len(opt.population) == 6  # aging: only the 6 most recent
    assert [p for p, _ in opt.population] == [h[1] for h in opt.history[-6:]]
    best = min(v for *_, v in opt.history)
    assert best < 0.01  # evolution made progress on a bowl


def test_evolution_can_switch_branch_and_respects_step():
    space = Space(model=Choice({"a": Space(u=Float(0.0, 1.0, step=0.25)), "b": Space(v=Int(1, 9, step=2))}))
    opt = make_optimizer("evolution", space, seed=2, population_size=4, sample_size=2, branch_switch=0.5)
    seen_switch = False
    for t in range(30):
        cfg = opt.ask(t)
        space.validate(cfg)
        seen_switch |= t >= 4 and cfg["model"] == "b"
        opt.tell(t, TrialState.COMPLETE, 0.0 if cfg["model"] == "a" else 1.0)
    assert seen_switch


@pytest.mark.parametrize("opts", [{"sample_size": 30}, {"population_size": 1}, {"branch_switch": 2.0}])
def test_evolution_bad_option_values(opts):
    with pytest.raises(ConfigError, match=list(opts)[0]):
        make_optimizer("evolution", mixed_space(), **opts)

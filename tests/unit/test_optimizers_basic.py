"""Grid and random search: exhaustion, ordering and seeding."""

from __future__ import annotations

import pytest

import rdhpo_hpc as rd
from rdhpo_hpc.errors import ConfigError
from rdhpo_hpc.optimizers import make_optimizer
from rdhpo_hpc.strategy import make_strategy
from rdhpo_hpc.trial import TrialState

SPACE = rd.Space(
    lr=rd.Float(1e-4, 1e-1, log=True), width=rd.Int(16, 256, log=True), act=rd.Categorical(["relu", "tanh", "gelu"])
)


def drain(opt, limit=10_000):
    out = []
    for tid in range(limit):
        p = opt.ask(tid)
        if p is None:
            break
        out.append(p)
        opt.tell(tid, TrialState.COMPLETE, float(tid))
    return out


def key(p):
    return tuple(sorted(p.items()))


def test_grid_degree_gives_every_point_once_then_exhausts():
    opt = make_optimizer("grid", SPACE, seed=0, degree=3)
    pts = drain(opt)
    assert len(pts) == 3 * 3 * 3
    assert len({key(p) for p in pts}) == len(pts)
    assert opt.exhausted and opt.ask(999) is None
    for p in pts:
        SPACE.validate(p)


def test_grid_per_dim_degree_mapping():
    opt = make_optimizer("grid", SPACE, degree={"lr": 4, "width": 2})
    assert len(drain(opt)) == 4 * 2 * 3


def test_grid_shuffle_same_seed_same_order_other_seed_other_order():
    a = drain(make_optimizer("grid", SPACE, seed=7, degree=3, shuffle=True))
    b = drain(make_optimizer("grid", SPACE, seed=7, degree=3, shuffle=True))
    c = drain(make_optimizer("grid", SPACE, seed=8, degree=3, shuffle=True))
    plain = drain(make_optimizer("grid", SPACE, seed=7, degree=3))
    assert a == b
    assert a != c and a != plain
    assert sorted(map(key, a)) == sorted(map(key, plain))  # same points, other order


def test_grid_over_conditional_space():
    space = rd.Space(model=rd.Choice({"mlp": rd.Space(width=rd.Int(8, 64)), "linear": None}), lr=rd.Float(0.01, 0.1))
    pts = drain(make_optimizer("grid", space, degree=2))
    assert len(pts) == (2 + 1) * 2
    assert all(("width" in p) == (p["model"] == "mlp") for p in pts)


@pytest.mark.parametrize("degree", [0, -1, 2.5, True, "3", {"lr": 0}])
def test_grid_bad_degree(degree):
    with pytest.raises(ConfigError, match="degree"):
        make_optimizer("grid", SPACE, degree=degree)


def test_random_same_seed_same_suggestions_and_other_seed_differs():
    def suggestions(seed):
        o = make_optimizer("random", SPACE, seed=seed)
        return [o.ask(i) for i in range(20)]

    s1, s2, s3 = suggestions(3), suggestions(3), suggestions(4)
    assert s1 == s2
    assert s1 != s3
    assert len({key(p) for p in s1}) == 20
    for p in s1:
        SPACE.validate(p)


def test_random_suggestions_do_not_depend_on_tell_values():
    # replaying ask/tell in logged order must give the same sequence whatever the outcomes
    o1, o2 = make_optimizer("random", SPACE, seed=5), make_optimizer("random", SPACE, seed=5)
    seq1, seq2 = [], []
    for i in range(10):
        seq1.append(o1.ask(i))
        o1.tell(i, TrialState.COMPLETE, float(i))
        seq2.append(o2.ask(i))
        o2.tell(i, TrialState.FAILED, None)
    assert seq1 == seq2


def test_random_is_never_exhausted_and_covers_categories():
    o = make_optimizer("random", SPACE, seed=0)
    acts = {o.ask(i)["act"] for i in range(60)}
    assert acts == {"relu", "tanh", "gelu"} and not o.exhausted


def test_tell_records_history_and_nan_becomes_failed():
    o = make_optimizer("random", SPACE, seed=0, direction="maximize")
    o.ask(0), o.ask(1), o.ask(2)
    o.tell(0, TrialState.COMPLETE, 0.5)
    o.tell(1, TrialState.COMPLETE, float("nan"))
    o.tell(2, TrialState.FAILED, None)
    o.tell(2, TrialState.COMPLETE, 9.0)  # told twice: ignored
    assert [(t, s) for t, _, s, _ in o.history] == [
        (0, TrialState.COMPLETE),
        (1, TrialState.FAILED),
        (2, TrialState.FAILED),
    ]
    assert o.observations() == [(o.history[0][1], -0.5)]  # maximize -> loss is -value


def test_unknown_optimizer_and_option():
    with pytest.raises(ConfigError, match="'annealing'"):
        make_strategy("annealing", SPACE)
    with pytest.raises(ConfigError, match="'shuffle'"):
        make_strategy("random", SPACE, shuffle=True)
    with pytest.raises(ConfigError, match="sideways"):
        make_optimizer("random", SPACE, direction="sideways")

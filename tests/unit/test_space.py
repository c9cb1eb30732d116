"""Search space: leaf parameters, conditional spaces, grids and the errors users see."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rdhpo_hpc as rd
from rdhpo_hpc.errors import ConfigError
from rdhpo_hpc.space import Choice, param_from_spec

FAST = settings(max_examples=60, deadline=None)


# -- leaf parameters ----------------------------------------------------------------------------
def test_float_log_samples_stay_in_range_and_cover_decades():
    p = rd.Float(1e-4, 1e-1, log=True)
    rng = np.random.default_rng(0)
    xs = np.array([p.sample(rng) for _ in range(2000)])
    assert xs.min() >= 1e-4 and xs.max() <= 1e-1
    # log-uniform: about a third of the mass in each decade, not 90% in the top one
    frac_low_decade = np.mean(xs < 1e-3)
    assert 0.25 < frac_low_decade < 0.42


def test_float_step_values_are_on_the_lattice():
    p = rd.Float(0.0, 0.5, step=0.05)
    rng = np.random.default_rng(1)
    for _ in range(200):
        x = p.sample(rng)
        assert 0.0 <= x <= 0.5
        k = x / 0.05
        assert abs(k - round(k)) < 1e-9
    assert len(p.grid()) == 11  # every step, ends included
    assert p.grid()[0] == 0.0 and abs(p.grid()[-1] - 0.5) < 1e-12


def test_int_log_and_step():
    p = rd.Int(16, 256, log=True)
    rng = np.random.default_rng(2)
    xs = [p.sample(rng) for _ in range(500)]
    assert all(isinstance(x, int) and 16 <= x <= 256 for x in xs)
    assert min(xs) < 32 and max(xs) > 128  # both ends reachable
    q = rd.Int(0, 10, step=3)
    assert q.grid() == [0, 3, 6, 9]
    assert {q.sample(rng) for _ in range(300)} == {0, 3, 6, 9}
    assert q.decode(1.0) == 9 and q.decode(0.0) == 0


def test_fixed_is_constant_everywhere():
    p = rd.Fixed("adam")
    rng = np.random.default_rng(0)
    assert p.sample(rng) == "adam" and p.decode(0.9) == "adam" and p.grid(7) == ["adam"]
    s = rd.Space(opt=p, lr=rd.Float(0.1, 1.0))
    assert all(c["opt"] == "adam" for c in (s.sample(rng) for _ in range(20)))


# -- encode / decode round trips (hypothesis) ------------------------------------------------------
@FAST
@given(st.floats(1e-6, 1e3), st.floats(1.0001, 1e4), st.floats(0.0, 1.0), st.booleans())
def test_float_roundtrip(low, ratio, frac, log):
    high = low * ratio
    p = rd.Float(low, high, log=log)
    x = low + frac * (high - low)
    u = p.encode(x)
    assert -1e-9 <= u <= 1 + 1e-9
    assert math.isclose(p.decode(u), x, rel_tol=1e-9, abs_tol=1e-12 * high)


@FAST
@given(st.integers(-1000, 1000), st.integers(0, 500), st.integers(1, 7), st.data())
def test_int_roundtrip_exact(low, span, step, data):
    p = rd.Int(low, low + span, step=step)
    v = data.draw(st.sampled_from(p.grid()))
    assert p.decode(p.encode(v)) == v


@FAST
@given(st.integers(1, 1000), st.integers(0, 5000), st.data())
def test_int_log_roundtrip_exact(low, span, data):
    p = rd.Int(low, low + span, log=True)
    v = data.draw(st.integers(low, low + span))
    assert p.decode(p.encode(v)) == v


@FAST
@given(
    st.lists(st.one_of(st.text(min_size=1, max_size=5), st.integers(-50, 50)), min_size=1, max_size=8, unique_by=repr)
)
def test_categorical_roundtrip(choices):
    p = rd.Categorical(choices)
    for c in choices:
        back = p.decode(p.encode(c))
        assert back == c and type(back) is type(c)


@FAST
@given(st.integers(0, 2**32 - 1))
def test_space_encode_decode_roundtrip_with_conditionals(seed):
    s = conditional_space()
    cfg = s.sample(np.random.default_rng(seed))
    back = s.decode(s.encode(cfg))
    assert back.keys() == cfg.keys()
    for k, v in cfg.items():
        if isinstance(v, float):
            assert math.isclose(back[k], v, rel_tol=1e-9)
        else:
            assert back[k] == v
    s.validate(back)


# -- sampling reproducibility ------------------------------------------------------------------------
def test_sampling_is_reproducible_with_a_seeded_generator():
    s = conditional_space()
    a = [s.sample(np.random.default_rng(42)) for _ in range(1)] + [
        s.sample(g) for g in [np.random.default_rng(42)] for _ in range(30)
    ]
    b = [s.sample(np.random.default_rng(42)) for _ in range(1)] + [
        s.sample(g) for g in [np.random.default_rng(42)] for _ in range(30)
    ]
    assert a == b
    c = [s.sample(g) for g in [np.random.default_rng(43)] for _ in range(30)]
    assert c != a[1:]


# -- grids -----------------------------------------------------------------------------------------
def test_grid_size_with_degree_and_per_dim_mapping():
    s = rd.Space(
        lr=rd.Float(1e-4, 1e-1, log=True),
        width=rd.Int(16, 256, log=True),
        act=rd.Categorical(["relu", "tanh"]),
        opt=rd.Fixed("adam"),
    )
    assert s.grid_size(3) == 3 * 3 * 2
    assert s.grid_size({"lr": 4, "width": 2}) == 4 * 2 * 2
    pts = list(s.grid(3))
    assert len({tuple(sorted(p.items())) for p in pts}) == len(pts)  # no duplicates
    lrs = sorted({p["lr"] for p in pts})
    assert math.isclose(lrs[0], 1e-4) and math.isclose(lrs[-1], 1e-1)
    assert math.isclose(lrs[1], math.sqrt(1e-4 * 1e-1), rel_tol=1e-6)  # log-spaced midpoint
    # a small int range is enumerated, not over-sampled
    assert rd.Int(1, 3).grid(10) == [1, 2, 3]


def test_grid_over_conditional_space_is_union_over_branches():
    s = conditional_space()
    pts = list(s.grid(2))
    # lr 2 x [model=mlp: width 2 x act 2 x opt (sgd: momentum 2 | adam) 3 = 12
    #         + model=svm: C 2 + model=linear: 1]
    assert len(pts) == 2 * (12 + 2 + 1) == s.grid_size(2)
    for p in pts:
        s.validate(p)  # only active params, all valid
    assert {"lr": 1e-4, "model": "linear"} in pts
    assert all("momentum" in p for p in pts if p.get("optimizer") == "sgd")
    assert all("momentum" not in p for p in pts if p.get("optimizer") != "sgd")
    # per-dimension degree through the dotted key of a branch
    # (the dotted key wins over the plain name inside its branch)
    assert s.grid_size({"lr": 1, "model=svm/C": 5, "width": 1, "momentum": 1, "C": 2}) == 1 * 2 * 2 + 5 + 1


# -- conditional spaces -------------------------------------------------------------------------------
def conditional_space() -> rd.Space:
    return rd.Space(
        lr=rd.Float(1e-4, 1e-1, log=True),
        model=Choice(
            {
                "mlp": rd.Space(
                    width=rd.Int(16, 256, log=True),
                    act=rd.Categorical(["relu", "tanh"]),
                    optimizer=Choice({"sgd": rd.Space(momentum=rd.Float(0.0, 0.99)), "adam": None}),
                ),
                "svm": rd.Space(C=rd.Float(1e-2, 1e2, log=True)),
                "linear": None,
            }
        ),
    )


def test_conditional_sampling_has_only_active_params():
    s = conditional_space()
    rng = np.random.default_rng(0)
    seen_models, seen_opts = set(), set()
    for _ in range(300):
        c = s.sample(rng)
        seen_models.add(c["model"])
        expect = {"lr", "model"}
        if c["model"] == "mlp":
            expect |= {"width", "act", "optimizer"}
            seen_opts.add(c["optimizer"])
            if c["optimizer"] == "sgd":
                expect.add("momentum")
        elif c["model"] == "svm":
            expect.add("C")
        assert set(c) == expect, c
        s.validate(c)
    assert seen_models == {"mlp", "svm", "linear"} and seen_opts == {"sgd", "adam"}


def test_validate_rejects_inactive_and_missing_params():
    s = conditional_space()
    with pytest.raises(ConfigError, match="C"):
        s.validate({"lr": 0.01, "model": "linear", "C": 1.0})
    with pytest.raises(ConfigError, match="width"):
        s.validate({"lr": 0.01, "model": "mlp", "act": "relu", "optimizer": "adam"})


def test_conditional_space_from_yaml_form_two_levels():
    spec = {
        "model": {
            "type": "categorical",
            "choices": ["mlp", "svm"],
            "conditional": {
                "mlp": {
                    "width": {"type": "int", "low": 8, "high": 64},
                    "opt": {
                        "type": "categorical",
                        "choices": ["sgd", "adam"],
                        "conditional": {"sgd": {"momentum": {"type": "float", "low": 0, "high": 0.9}}},
                    },
                },
                "svm": {"C": {"type": "float", "low": 0.1, "high": 10, "log": True}},
            },
        }
    }
    s = rd.Space.from_dict(spec)
    keys = {d.key for d in s.dims}
    assert keys == {"model", "model=mlp/width", "model=mlp/opt", "model=mlp/opt=sgd/momentum", "model=svm/C"}
    rng = np.random.default_rng(5)
    for _ in range(100):
        s.validate(s.sample(rng))
    assert rd.Space.from_dict(s.to_dict()) == s  # the stored form reads back


# -- bad input: each message names the path and the value ------------------------------------------
@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: rd.Float(2.0, 1.0), ["low", "2.0", "1.0"]),
        (lambda: rd.Int(5, 1), ["low", "5", "1"]),
        (lambda: rd.Float(0.0, 1.0, log=True), ["log", "0.0"]),
        (lambda: rd.Float(-1.0, 1.0, log=True), ["log", "-1.0"]),
        (lambda: rd.Int(0, 10, log=True), ["log", "0"]),
        (lambda: rd.Categorical([]), ["choices", "[]"]),
        (lambda: rd.Float(0.0, float("nan")), ["high", "nan"]),
        (lambda: rd.Float(0.0, 1.0, step=0.0), ["step", "0.0"]),
    ],
)
def test_leaf_errors_quote_the_bad_value(make, words):
    with pytest.raises(ConfigError) as err:
        make()
    for w in words:
        assert w in str(err.value)


@pytest.mark.parametrize(
    "spec, words",
    [
        ({"lr": {"type": "float", "low": 0.1, "high": 0.01}}, ["space.lr", "0.1", "0.01"]),
        ({"lr": {"type": "float", "low": 0, "high": 1, "log": True}}, ["space.lr", "log", "0"]),
        ({"act": {"type": "categorical", "choices": []}}, ["space.act", "[]"]),
        (
            {
                "m": {
                    "type": "categorical",
                    "choices": ["a", "b"],
                    "conditional": {"c": {"x": {"type": "float", "low": 0, "high": 1}}},
                }
            },
            ["space.m", "'c'", "'a'"],
        ),
        (
            {
                "x": {
                    "type": "categorical",
                    "choices": ["a", "b"],
                    "conditional": {"a": {"x": {"type": "int", "low": 0, "high": 3}}},
                }
            },
            ["'x'", "x=a/x"],
        ),
        (
            {
                "m": {
                    "type": "categorical",
                    "choices": ["a"],
                    "conditional": {
                        "a": {
                            "n": {
                                "type": "categorical",
                                "choices": ["p"],
                                "conditional": {"p": {"m": {"type": "fixed", "value": 1}}},
                            }
                        }
                    },
                }
            },
            ["'m'", "m=a/n=p/m"],
        ),
        ({"x": {"type": "float", "low": 0, "high": 1, "conditional": {"a": {}}}}, ["space.x", "conditional", "float"]),
        ({"x": {"type": "floaty", "low": 0, "high": 1}}, ["space.x", "floaty"]),
        ({"x": {"type": "float", "low": 0, "high": 1, "lo": 3}}, ["space.x", "lo"]),
        ({"x": {"type": "int", "high": 3}}, ["space.x", "low"]),
    ],
)
def test_space_spec_errors_name_path_and_value(spec, words):
    with pytest.raises(ConfigError) as err:
        rd.Space.from_dict(spec)
    msg = str(err.value)
    for w in words:
        assert w in msg, (w, msg)


def test_same_name_in_sibling_branches_is_allowed():
    s = rd.Space(model=Choice({"mlp": rd.Space(dropout=rd.Float(0, 0.5)), "cnn": rd.Space(dropout=rd.Float(0, 0.3))}))
    assert {d.key for d in s.dims} == {"model", "model=mlp/dropout", "model=cnn/dropout"}
    rng = np.random.default_rng(0)
    for _ in range(50):
        c = s.sample(rng)
        assert c["dropout"] <= (0.5 if c["model"] == "mlp" else 0.3)


def test_plain_list_and_scalar_specs():
    assert isinstance(param_from_spec("a", [1, 2, 3]), rd.Categorical)
    assert isinstance(param_from_spec("b", 7), rd.Fixed)

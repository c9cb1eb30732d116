"""The one validation module: what a number, an integer and a flag are, and the message shape."""

import math

import numpy as np
import pytest

from rdhpo_hpc import validate
from rdhpo_hpc.errors import ConfigError


@pytest.mark.parametrize("v", [True, False, math.nan, math.inf, -math.inf, "3", None, [1], np.bool_(True)])
def test_not_numbers(v):
    assert not validate.is_real(v)
    with pytest.raises(ConfigError, match=r"'x' must be a number, got"):
        validate.number(v, "'x'")


@pytest.mark.parametrize("v", [0, 3, -2.5, np.int64(7), np.float32(0.5)])
def test_numbers_come_back_as_float(v):
    out = validate.number(v, "'x'")
    assert isinstance(out, float) and out == float(v)


def test_integers_accept_numpy_and_whole_floats_only_when_asked():
    assert validate.integer(np.int32(4), "'n'") == 4
    with pytest.raises(ConfigError, match=r"'n' must be an integer, got 64.0"):
        validate.integer(64.0, "'n'")
    assert validate.integer(64.0, "'n'", whole_floats=True) == 64
    with pytest.raises(ConfigError, match=r"got 64.5"):
        validate.integer(64.5, "'n'", whole_floats=True)
    with pytest.raises(ConfigError, match=r"got True"):
        validate.integer(True, "'n'", whole_floats=True)


@pytest.mark.parametrize(
    "kwargs, bad, good, words",
    [
        ({"lo": 0}, -1, 0, ">= 0"),
        ({"lo": 0, "lo_open": True}, 0, 1e-9, "> 0"),
        ({"hi": 1}, 1.5, 1, "<= 1"),
        ({"lo": 0, "hi": 1}, 2, 0.5, "in [0, 1]"),
        ({"lo": 0, "hi": 1, "lo_open": True, "hi_open": True}, 1, 0.5, "in (0, 1)"),
    ],
)
def test_range_is_checked_and_worded(kwargs, bad, good, words):
    assert validate.number(good, "'x'", **kwargs) == good
    with pytest.raises(ConfigError) as e:
        validate.number(bad, "'x'", **kwargs)
    assert str(e.value) == f"'x' must be a number {words}, got {bad!r}"


def test_none_only_where_allowed_and_said_in_the_message():
    assert validate.number(None, "'t'", 0, allow_none=True) is None
    assert validate.integer(None, "'n'", 1, allow_none=True) is None
    with pytest.raises(ConfigError, match=r"'n' must be an integer >= 1 or null, got -3"):
        validate.integer(-3, "'n'", 1, allow_none=True)
    with pytest.raises(ConfigError, match=r"'t' must be a number, got None"):
        validate.number(None, "'t'")


def test_flag_refuses_numbers_and_strings():
    assert validate.flag(False, "'takeover'") is False
    for v in (0, 1, "yes", None):
        with pytest.raises(ConfigError, match=rf"'takeover' must be true or false, got {v!r}"):
            validate.flag(v, "'takeover'")


def test_callers_share_the_shape():
    """Three callers in three layers (YAML budget, scheduler option, space bound) word it alike."""
    from rdhpo_hpc.config import from_dict
    from rdhpo_hpc.schedulers.rungs import check_budgets
    from rdhpo_hpc.space import Int

    study = {"objective": {"function": "math:sqrt"}, "space": {"x": {"type": "float", "low": 0, "high": 1}}}
    with pytest.raises(ConfigError, match=r"'budget.max_trials' must be an integer >= 1, got True"):
        from_dict({**study, "budget": {"max_trials": True}})
    with pytest.raises(ConfigError, match=r"scheduler 'asha': 'eta' must be a finite number, got nan"):
        check_budgets("asha", 1, 9, math.nan)
    with pytest.raises(ConfigError, match=r"width: 'low' must be an integer, got 1.5"):
        Int(1.5, 4, name="width")

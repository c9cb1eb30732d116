"""bench/membership.py: the simulation's load figures, and the steady window of a real run's
per-second counts (what the real-vs-simulated comparison of issue 16 rests on)."""

from __future__ import annotations

import pytest

from bench.membership import _steady_window, simulate

pytestmark = pytest.mark.timeout(120)


def test_steady_window_leaves_out_start_up_and_shutdown():
    # rank 0 up at 100.5, rank 1 at 104.2 (late), both close after 120.x; rank 1 sends a burst at
    # start-up (its probes of ranks not yet up) and rank 0 one at shutdown
    per = [
        {"t_start": 100.5, "t_close": 121.3, "bins": [[s, 4, 400] for s in range(100, 121)] + [[120, 50, 9000]]},
        {"t_start": 104.2, "t_close": 120.9, "bins": [[104, 60, 9000]] + [[s, 4, 400] for s in range(105, 121)]},
    ]
    w = _steady_window(per)
    assert w["steady_s"] == 12  # seconds 107 .. 118: 2 s after the last start, 1 s before the first close
    assert w["steady_swim_bytes_s_median"] == 400.0 and w["steady_swim_msgs_s_median"] == 4.0


def test_steady_window_is_empty_when_the_ranks_were_never_all_up_long():
    per = [{"t_start": 100.0, "t_close": 104.0, "bins": []}, {"t_start": 101.0, "t_close": 105.0, "bins": []}]
    assert _steady_window(per) == {}


def test_swim_load_per_rank_does_not_grow_with_n():
    small, large = (simulate("swim", n, faults=0, warmup=3.0, seed=1) for n in (50, 400))
    assert large.false_verdicts == small.false_verdicts == 0
    assert abs(large.bytes_per_rank_s - small.bytes_per_rank_s) < 0.1 * small.bytes_per_rank_s
    assert large.msgs_per_rank_s < 1.1 * small.msgs_per_rank_s

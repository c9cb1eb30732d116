"""The coordinator's saturation warning (rdhpo_hpc/coordination/load.py), with a fake CPU clock."""

from __future__ import annotations

from rdhpo_hpc.coordination.load import LoadMeter


class FakeCpu:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_the_first_saturated_window_is_reported_once_with_its_rate():
    cpu = FakeCpu()
    m = LoadMeter(now=100.0, done=0, cpu=cpu)
    cpu.t = 10.0
    assert m.turn(110.0, 50) is None  # the window is not over yet
    cpu.t = 15.0
    assert m.turn(130.0, 300) is None  # 15 CPU s in 30 s: half busy
    cpu.t = 44.0
    got = m.turn(160.0, 3300)  # 29 CPU s in 30 s, 3,000 trials ended
    assert got is not None and abs(got.share - 29 / 30) < 1e-9 and got.trials_per_s == 100.0
    assert "97%" in got.message() and "100 trials ended per second" in got.message()
    cpu.t = 200.0
    assert m.turn(400.0, 9000) is None  # reported once per run

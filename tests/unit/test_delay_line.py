"""The delay line shared by the in-process transport and the node's fault plan."""

from rdhpo_hpc.comm.delay import DelayLine


def test_releases_only_what_is_due_earliest_first_and_keeps_order_of_equal_times():
    line: DelayLine[str] = DelayLine()
    line.hold(3.0, "c")
    line.hold(1.0, "a1")
    line.hold(2.0, "b")
    line.hold(1.0, "a2")
    assert line.release(0.5) == [] and len(line) == 4
    assert line.release(1.0) == ["a1", "a2"]
    assert line.release(2.5) == ["b"]
    assert len(line) == 1 and line
    assert line.release(10.0) == ["c"]
    assert not line and line.release(99.0) == []

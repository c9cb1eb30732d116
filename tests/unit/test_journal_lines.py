"""The one JSON-lines parser: replay stops at damage, tails skip it, nobody parses a torn line."""

import json

from rdhpo_hpc.storage.journal import parse_lines, read_from, read_journal


def _line(rec):
    return (json.dumps(rec) + "\n").encode()


def test_torn_last_line_is_left_for_the_writer():
    data = _line({"k": "ask", "trial": 0}) + b'{"k": "ask", "tri'
    recs, used = parse_lines(data)
    assert recs == [{"k": "ask", "trial": 0}] and used == len(_line({"k": "ask", "trial": 0}))


def test_replay_stops_at_a_damaged_line_a_tail_skips_it(tmp_path):
    a, b = _line({"k": "ask", "trial": 0}), _line({"k": "ask", "trial": 1})
    p = tmp_path / "j"
    p.write_bytes(a + b"\xff\xfe not json\n" + b"[1, 2]\n" + b)
    assert read_journal(str(p)) == [{"k": "ask", "trial": 0}]
    recs, end = read_from(str(p), 0)
    assert [r["trial"] for r in recs] == [0, 1] and end == p.stat().st_size


def test_read_from_resumes_at_the_returned_offset_as_the_file_grows(tmp_path):
    p = tmp_path / "j"
    p.write_bytes(_line({"n": 1}) + b'{"n": ')
    recs, off = read_from(str(p), 0)
    assert recs == [{"n": 1}]
    with open(p, "ab") as fh:
        fh.write(b"2}\n" + _line({"n": 3}))
    recs, off2 = read_from(str(p), off)
    assert recs == [{"n": 2}, {"n": 3}] and off2 == p.stat().st_size
    assert read_from(str(p), off2) == ([], off2)

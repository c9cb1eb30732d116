"""Scaling: speed-up and parallel efficiency vs workers from bench/out/results.jsonl (written by
python -m bench).
"""

from _common import main

if __name__ == "__main__":
    raise SystemExit(main(__doc__, ("scaling",), default_inputs=("bench/out/results.jsonl",)))

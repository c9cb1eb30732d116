"""Hyper-parameters: parallel coordinates coloured by value, one slice per parameter, importance
ranking (random-forest permutation).
"""

from _common import main

if __name__ == "__main__":
    raise SystemExit(main(__doc__, ("parallel", "slices", "importance")))

"""Optimization history: each trial's value and best so far vs wall time and trial count; several
studies overlaid (history_all).
"""

from _common import main

if __name__ == "__main__":
    raise SystemExit(main(__doc__, ("history",)))

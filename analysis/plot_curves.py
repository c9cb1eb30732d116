"""Learning curves of every attempt from /reports (pruned ones marked where they were cut) and, for
PBT, the population lineage.
"""

from _common import main

if __name__ == "__main__":
    raise SystemExit(main(__doc__, ("curves", "lineage")))

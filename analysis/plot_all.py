"""Every applicable plot of the given results files (history, params, curves, lineage, timeline,
families, scaling for .jsonl).
"""

from _common import main

if __name__ == "__main__":
    raise SystemExit(main(__doc__, ()))

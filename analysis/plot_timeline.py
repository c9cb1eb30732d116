"""Worker timeline: one row per rank, a bar per attempt coloured by outcome,
failure/requeue/shrink/takeover/resume events marked.
"""

from _common import main

if __name__ == "__main__":
    raise SystemExit(main(__doc__, ("timeline",)))

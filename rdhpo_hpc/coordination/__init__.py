"""The coordinator's parts; :mod:`rdhpo_hpc.coordinator` is the event loop that glues them to
the node and the store.  Everything here is pure — no I/O, no threads, no clock of its own —
except that records go to the store they are given.

* ``table.py``    — the trial table: attempts per rank (running, queued, idle), fencing by
  (trial, attempt), requeue, retry cap, first valid result wins, orphans after a takeover.
* ``study.py``    — optimizer + scheduler as the loop sees them, and the tally (counts, best).
* ``records.py``  — the record kinds (an enum), one typed dict and one constructor per kind.
* ``replay.py``   — journal replay: one handler per record kind rebuilds table, study, workers.
* ``handlers.py`` — what each message means: Hello, Report, Result, PeerDown, Coordinator.
* ``policy.py``   — how far ahead work is handed out: pipelining depth, prefetch.
* ``shutdown.py`` — the end: Stop (relayed where needed), shrink, hung ranks, the exit code.
* ``port.py``     — ``NodePort``: what the loop needs from a node (the real one, the tests'
  fake, the simulator's).
"""

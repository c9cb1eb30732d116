"""The ``rdhpo`` logger: the library's diagnostics (errors, failures, the supervisor's verdicts).

Not for the study's own output (progress lines, the summary: they go to the ``out`` stream) nor
the CLI's usage errors.  By default records go to the current ``sys.stderr`` as their bare
message (each message carries its own ``[rdhpo]`` / ``rdhpo: error:`` prefix); configure the
``rdhpo`` logger (``logging.getLogger("rdhpo")``) to send them elsewhere.
"""

from __future__ import annotations

import logging
import sys


class _Stderr(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (tests and the CLI may replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never break a rank
            self.handleError(record)


logger = logging.getLogger("rdhpo")
if not logger.handlers:
    logger.addHandler(_Stderr())
    logger.setLevel(logging.INFO)
    logger.propagate = False

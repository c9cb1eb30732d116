"""``rdhpo watch``'s modes, picked by :func:`command` (called by the CLI): the live rich view in
a terminal, one line per change off a terminal (or ``--plain``), one snapshot with ``--once``.
Without ``--follow`` it ends by itself after the study's ``end`` record, with the last screen."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from types import ModuleType
from typing import Optional, TextIO

from ..exitcodes import ExitCode
from ..log import logger
from . import plain
from .snapshot import take
from .source import WatchError, open_source


def watch(
    path: str,
    once: bool = False,
    follow: bool = False,
    interval: float = 1.0,
    force_plain: bool = False,
    out: Optional[TextIO] = None,
) -> int:
    """Watch the study of results file ``path``; raises :class:`WatchError` on bad input."""
    if not (isinstance(interval, (int, float)) and math.isfinite(interval) and interval > 0):
        raise WatchError(f"--interval must be a number of seconds > 0, got {interval!r}")
    src = open_source(path)
    out = sys.stdout if out is None else out
    view = None if force_plain or not out.isatty() else _terminal_view()
    try:
        if once:
            if view is not None:
                view.print_once(src)
            else:
                print(plain.text(take(src.view, src.beat(), time.time(), src.results)), file=out, flush=True)
            return 0
        if view is not None:
            return view.live(src, interval, until_end=not follow)
        return plain.follow(src, out, interval, until_end=not follow)
    except KeyboardInterrupt:
        return 0


def _terminal_view() -> Optional[ModuleType]:
    """The rich view module, or None (logged) when rich is not installed."""
    try:
        from . import view
    except ImportError as exc:  # installed without its dependencies
        logger.warning("rdhpo: watch: no terminal view (%s); printing plain lines", exc)
        return None
    return view


def command(args: argparse.Namespace) -> int:
    """``rdhpo watch RESULTS [--once] [--follow] [--interval S] [--plain]``."""
    try:
        return watch(args.results, args.once, args.follow, args.interval, args.plain)
    except WatchError as exc:
        print(f"rdhpo: error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    except BrokenPipeError:  # `rdhpo watch RESULTS | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0

"""The terminal view of ``rdhpo watch``: a :class:`~.snapshot.Snapshot` drawn with ``rich``
(the only module that imports it), refreshed in place on the alternate screen every interval
until ``q``, Ctrl-C, SIGTERM / SIGHUP or (unless ``follow``) the study's end; then the terminal
is restored and the last screen (the study ended) or the summary line (quit) is printed where
it stays."""

from __future__ import annotations

import signal
import time
from typing import Optional

from rich import box
from rich.console import Console, Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .keys import Keys
from .snapshot import ROW_HEADER, Snapshot, hms, take
from .source import JournalSource

STYLE = {
    "running": "bold green",
    "finished": "bold green",
    "waiting": "bold yellow",
    "stopped": "bold yellow",
    "silent": "bold red",
    "failed": "bold red",
}
ROW_STYLE = {"dead": "red", "unreachable": "yellow", "starting": "dim", "coordinator": "cyan"}
FIXED_LINES = 16  # lines of the screen outside the rank table and the two lists, about


def render(snap: Snapshot, height: Optional[int] = None) -> RenderableType:
    """The whole screen; ``height``: the terminal's (rows beyond it are summarised)."""
    head = Text()
    head.append(snap.title, style="bold")
    head.append("\n")
    head.append(snap.status.upper(), style=STYLE.get(snap.status, "bold"))
    head.append(f"  {snap.status_detail}")
    bar = Table.grid(padding=(0, 1))
    total = snap.total or 0
    bar.add_row(
        ProgressBar(total=max(total, 1), completed=min(snap.done, max(total, 1)), width=40),
        f"{snap.done}/{snap.total if snap.total is not None else '?'} trials done"
        + ("" if snap.fraction is None else f" ({100 * snap.fraction:.0f}%)"),
        f"{snap.running} running, {snap.queued} queued",
        f"elapsed {hms(snap.elapsed)}" + ("" if snap.eta is None else f"  ETA {hms(snap.eta)}"),
    )
    info = Text()
    info.append(f"{snap.counts}\n")
    info.append("best ", style="bold")
    info.append(snap.best, style="bold magenta")
    if snap.best_params:
        info.append(f"  {snap.best_params}")
    if snap.chart:
        info.append(f"\nbest so far  {snap.chart}")
    lists = max(2, min(8, (height or 60) // 6))
    room = None if height is None else max(3, height - FIXED_LINES - 2 * lists)
    ranks = Table(box=box.SIMPLE_HEAD, title=snap.workers, title_justify="left", pad_edge=False)
    for h in ROW_HEADER:
        ranks.add_column(h, justify="right" if h in ("rank", "step", "value", "running", "queued") else "left")
    shown = snap.rows if room is None or len(snap.rows) <= room else snap.rows[: room - 1]
    for row in shown:
        ranks.add_row(*row, style=ROW_STYLE.get(row[2].split()[0], ""))
    if len(shown) < len(snap.rows):
        ranks.add_row("…", f"{len(snap.rows) - len(shown)} more ranks", *[""] * (len(ROW_HEADER) - 2))
    return Group(
        head,
        bar,
        info,
        ranks,
        _list("recent events", snap.events[-lists:]),
        _list("recent failures", snap.failures[-lists:], "red"),
        Text("q quits", style="dim"),
    )


def _list(title: str, lines: list[str], style: str = "") -> Text:
    t = Text()
    t.append(title + "\n", style="bold")
    t.append("\n".join("  " + line for line in lines) if lines else "  (none)", style=style)
    return t


def _leave(signum: int, frame: object) -> None:
    """SIGTERM / SIGHUP (the terminal closed): unwind, so that the terminal is restored."""
    raise SystemExit(0)


def print_once(src: JournalSource, clock=time.time) -> None:
    """``--once`` in a terminal: one snapshot, printed."""
    Console().print(render(take(src.view, src.beat(), clock(), src.results)))


def live(src: JournalSource, interval: float, until_end: bool = True, clock=time.time) -> int:
    """Refresh in place until ``q`` / Ctrl-C, or the study's end unless not ``until_end``."""
    from rich.live import Live

    console = Console()
    snap = take(src.view, src.beat(), clock(), src.results)
    hung_up = {sig: signal.signal(sig, _leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with Keys() as keys, Live(console=console, screen=True, auto_refresh=False, redirect_stderr=False) as screen:
            while True:
                src.poll()
                snap = take(src.view, src.beat(), clock(), src.results)
                screen.update(render(snap, console.size.height), refresh=True)
                if snap.ended and until_end:
                    break
                pressed = keys.wait(interval)
                if pressed and "q" in pressed.lower():
                    break
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in hung_up.items():
            signal.signal(sig, handler)
    if snap.ended and until_end:
        console.print(render(snap))
    else:
        console.print(snap.summary(), markup=False, highlight=False)
    return 0

"""Single key presses for the live view (``q`` quits): the terminal in cbreak mode (keys arrive
unbuffered, unechoed; Ctrl-C still raises KeyboardInterrupt) for the life of the context, and
restored on every way out.  Without a terminal on stdin, :meth:`Keys.wait` only sleeps."""

from __future__ import annotations

import os
import select
import sys
import time
from typing import Any, Optional


class Keys:
    def __init__(self, stream: Any = None) -> None:
        self.stream = sys.stdin if stream is None else stream
        self._fd: Optional[int] = None
        self._saved: Any = None

    def __enter__(self) -> "Keys":
        try:
            fd = self.stream.fileno()
            if os.isatty(fd):
                import termios
                import tty

                self._saved = termios.tcgetattr(fd)
                tty.setcbreak(fd)
                self._fd = fd
        except (AttributeError, OSError, ValueError):
            self._fd = None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._fd = None

    def wait(self, timeout: float) -> Optional[str]:
        """The keys pressed within ``timeout`` seconds (returns at the first), or None."""
        if self._fd is None:
            time.sleep(timeout)
            return None
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return None
        data = os.read(self._fd, 64)
        return data.decode(errors="replace") if data else None

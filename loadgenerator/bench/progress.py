"""The progress display: one line per step; on a terminal the running step updates in place."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"


class Progress:
    def __init__(
        self, stream: TextIO | None = None, estimate_s: float | None = None, quiet: bool = False
    ) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.t0 = time.monotonic()
        self.estimate_s = estimate_s
        self.quiet = quiet
        self._live = False

    def elapsed(self) -> str:
        total = f" / ~{clock(self.estimate_s)}" if self.estimate_s else ""
        return f"[{clock(time.monotonic() - self.t0)}{total}]"

    def _clear(self) -> None:
        if self._live:
            self.stream.write("\r\033[K")
            self._live = False

    def line(self, text: str) -> None:
        """A line that stays."""
        if self.quiet:
            return
        self._clear()
        self.stream.write(f"{self.elapsed()} {text}\n")
        self.stream.flush()

    def tick(self, text: str, done_s: float, total_s: float) -> None:
        """The running step, updated in place on a terminal (nothing otherwise)."""
        if self.quiet or not self.tty:
            return
        self.stream.write(f"\r\033[K{self.elapsed()} {text}  {done_s:4.1f}/{total_s:.1f} s")
        self.stream.flush()
        self._live = True

"""Progress for work that takes more than a few seconds (DESIGN §3).

In a terminal: a bar on stderr, redrawn in place. In CI or a pipe: a plain line on
stderr at most every ``interval`` seconds, so logs stay readable.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, label: str, total: int | None = None, unit: str = "rows", *,
                 interval: float | None = None, stream: TextIO | None = None,
                 enabled: bool | None = None) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) and not os.environ.get("CI")
        self.interval = interval if interval is not None else (0.2 if self.tty else 10.0)
        self.enabled = (os.environ.get("MLCD_PROGRESS", "1") != "0") if enabled is None else enabled
        self._start = time.monotonic()
        self._last = self._start
        self._drawn = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self._last >= self.interval:
            self._last = now
            self._draw(now)

    def _line(self, now: float) -> str:
        elapsed = now - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.total:
            pct = min(100.0, 100.0 * self.done / self.total)
            return (f"{self.label}: {pct:5.1f}% ({self.done:,}/{self.total:,} {self.unit}, "
                    f"{rate:,.0f} {self.unit}/s, {elapsed:.0f}s)")
        return f"{self.label}: {self.done:,} {self.unit} ({rate:,.0f} {self.unit}/s, {elapsed:.0f}s)"

    def _draw(self, now: float) -> None:
        line = self._line(now)
        if self.tty:
            width = 24
            filled = int(width * min(1.0, self.done / self.total)) if self.total else 0
            bar = "#" * filled + "-" * (width - filled) if self.total else ""
            self.stream.write(f"\r[{bar}] {line}" if bar else f"\r{line}")
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and (self._drawn or time.monotonic() - self._start >= self.interval):
            self._draw(time.monotonic())
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()

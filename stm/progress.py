"""Progress of long loops, readable where it lands.

On a terminal: a tqdm bar. Written to a file or a pipe (a training log, CI), a tqdm bar is a stream of
carriage-return redraws (the demo's log held 149 KB of them); there, `progress` prints one plain line
at most every INTERVAL seconds, and a last one when the loop ends:

    frames: 120/300 frame (40%), 19.1 frame/s, 6.3 s
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

from tqdm import tqdm

INTERVAL = 5.0  # seconds between two lines off a terminal


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    initial: int = 0,
    disable: bool = False,
    file: IO[str] | None = None,
    **terminal_options: Any,
) -> tqdm | LineProgress:
    """tqdm(iterable, ...) on a terminal, else a LineProgress with the same calls (iterate, update,
    set_postfix, set_postfix_str, close, `with`). terminal_options (leave, position, dynamic_ncols)
    only matter to tqdm."""
    stream = file if file is not None else sys.stderr
    if disable or stream.isatty():
        return tqdm(
            iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable, file=stream,
            **terminal_options,
        )
    return LineProgress(iterable, total, desc, unit, initial, stream)


class LineProgress:
    """A progress report as plain lines, at most one every INTERVAL seconds (time.monotonic)."""

    def __init__(
        self, iterable: Iterable | None, total: int | None, desc: str, unit: str, initial: int, stream: IO[str]
    ):
        self.iterable, self.desc, self.unit, self.stream = iterable, desc, unit, stream
        self.total = total if total is not None else _length(iterable)
        self.n, self.start_n = initial, initial
        self.postfix = ""
        self.start = self.last = time.monotonic()
        self.closed = False

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= INTERVAL:
            self._print()

    def set_postfix(self, **values: Any) -> None:
        self.set_postfix_str(", ".join(f"{key}={value}" for key, value in values.items()))

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._print()

    def _print(self) -> None:
        self.last = now = time.monotonic()
        seconds = now - self.start
        parts = [f"{self.n}/{self.total} {self.unit}" if self.total else f"{self.n} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        if seconds > 0:
            parts.append(f"{(self.n - self.start_n) / seconds:.3g} {self.unit}/s")
        parts.append(f"{seconds:.1f} s")
        if self.postfix:
            parts.append(self.postfix)
        self.stream.write(f"{self.desc + ': ' if self.desc else ''}{', '.join(parts)}\n")
        self.stream.flush()


def _length(iterable: Iterable | None) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None

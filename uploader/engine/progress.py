"""Progress while files upload: a bar on a terminal, plain log lines elsewhere.

Batch jobs and CI logs get one line per finished file and a total every
LOG_INTERVAL seconds, never carriage returns. Everything goes to stderr.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from uploader.engine.operations import Status

if TYPE_CHECKING:
    from uploader.engine.operations import Operation

LOG_INTERVAL = float(os.environ.get("CARTLOAD_UPLOADER_LOG_INTERVAL", "30"))


class Progress:
    """Silent progress: the base that the visible kinds refine."""

    def advance(self, count: int) -> None:
        """`count` more bytes were sent (negative when a failed attempt is retried)."""

    def file_done(self, op: Operation) -> None:
        """One operation finished, successfully or not."""

    def close(self) -> None:
        """The run is over (or interrupted)."""


class LogProgress(Progress):
    """A line per finished file and a periodic total, for logs."""

    def __init__(self, total_bytes: int, total_files: int, stream: TextIO) -> None:
        self.total_bytes, self.total_files, self.stream = total_bytes, total_files, stream
        self.sent = 0
        self.files_done = 0
        self.started = self.last_line = time.monotonic()
        self._lock = threading.Lock()

    def advance(self, count: int) -> None:
        with self._lock:
            self.sent += count
            now = time.monotonic()
            if now - self.last_line >= LOG_INTERVAL:
                self.last_line = now
                self._print(self._total_line(now))

    def file_done(self, op: Operation) -> None:
        with self._lock:
            self.files_done += 1
            counter = f"[{self.files_done}/{self.total_files}]"
            if op.status is Status.FAILED:
                self._print(f"{counter} FAILED {op.destination}: {op.error}")
            else:
                self._print(f"{counter} {op.status.value} {op.destination} ({human_bytes(op.size)})")

    def _total_line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-6)
        rate = self.sent / elapsed
        left = (self.total_bytes - self.sent) / rate if rate > 0 else 0.0
        percent = 100.0 * self.sent / self.total_bytes if self.total_bytes else 100.0
        return (f"progress: {human_bytes(self.sent)} of {human_bytes(self.total_bytes)} ({percent:.0f}%),"
                f" {human_bytes(rate)}/s, about {left:.0f} s left")

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


class BarProgress(Progress):
    """A terminal progress bar with bytes, rate and ETA (tqdm); failures printed above it."""

    def __init__(self, total_bytes: int, total_files: int, stream: TextIO) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024, file=stream,
                         desc=f"{total_files} file(s)", dynamic_ncols=True, leave=True)
        self._lock = threading.Lock()

    def advance(self, count: int) -> None:
        with self._lock:
            self._bar.update(count)

    def file_done(self, op: Operation) -> None:
        if op.status is Status.FAILED:
            with self._lock:
                self._bar.write(f"FAILED {op.destination}: {op.error}", file=sys.stderr)

    def close(self) -> None:
        self._bar.close()


def progress_factory(quiet: bool, no_progress: bool,
                     stream: TextIO = sys.stderr) -> Callable[[int, int], Progress]:
    """Make the display that suits this output: a bar only on a capable terminal."""
    if quiet or no_progress:
        return lambda total_bytes, total_files: Progress()
    if stream.isatty() and os.environ.get("TERM") != "dumb":
        return lambda total_bytes, total_files: BarProgress(total_bytes, total_files, stream)
    return lambda total_bytes, total_files: LogProgress(total_bytes, total_files, stream)


def human_bytes(count: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"

"""A file as a streamed request body that hashes what it sends.

Reading ahead in a thread that computes the MD5 (hashlib releases the GIL)
overlaps hashing with sending: hashed in line, the MD5 alone made an upload
~1.8 x slower than curl. The body also reports progress and stops at the next
block when the run is interrupted.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable
from typing import BinaryIO

BLOCK_SIZE = 1 << 20  # bytes per read and per send
READ_AHEAD_BLOCKS = 4
POLL_SECONDS = 0.2  # how often a waiting side looks whether the run was interrupted


class HashingBody:
    """What requests reads a PUT's body from; `md5()` is the MD5 of every byte handed out."""

    def __init__(self, handle: BinaryIO, size: int, progress: Callable[[int], None], stop: threading.Event) -> None:
        self.size, self.progress, self.stop = size, progress, stop
        self.sent = 0
        self._left = b""
        self._reader = _ReadAhead(handle, stop)

    def __len__(self) -> int:
        return self.size

    def read(self, amount: int = -1) -> bytes:
        if self.stop.is_set():
            raise OSError("upload interrupted")
        if not self._left:
            self._left = self._reader.next_block()
        if amount is None or amount < 0 or amount >= len(self._left):
            data, self._left = self._left, b""  # the usual case: whole blocks, no copy
        else:
            data, self._left = self._left[:amount], self._left[amount:]
        self.sent += len(data)
        self.progress(len(data))
        return data

    def md5(self) -> str:
        """The MD5 of everything read (once the body has been read to its end)."""
        return self._reader.md5()

    def close(self) -> None:
        """Stop reading ahead (after a failed request), so the thread and its buffers go away."""
        self._reader.close()


class _ReadAhead:
    """A thread that reads blocks of a file into a small queue and hashes them on the way."""

    def __init__(self, handle: BinaryIO, stop: threading.Event) -> None:
        self.handle, self.stop = handle, stop
        self._md5 = hashlib.md5()
        self._blocks: queue.Queue[bytes | OSError] = queue.Queue(maxsize=READ_AHEAD_BLOCKS)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="read-ahead", daemon=True)
        self._thread.start()

    def next_block(self) -> bytes:
        """The next block (b"" at the end); raises the read's OSError, or one when interrupted."""
        # Never wait for good: the thread stops without a last block when the run is interrupted.
        while True:
            try:
                item = self._blocks.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if self._stopping():
                    raise OSError("upload interrupted") from None
                continue
            if isinstance(item, OSError):
                raise item
            return item

    def md5(self) -> str:
        self._thread.join()
        return self._md5.hexdigest()

    def close(self) -> None:
        self._closed.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopping():
            try:
                data = self.handle.read(BLOCK_SIZE)
            except OSError as exc:
                self._offer(exc)
                return
            self._md5.update(data)
            if not self._offer(data) or not data:
                return

    def _offer(self, item: bytes | OSError) -> bool:
        while not self._stopping():
            try:
                self._blocks.put(item, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _stopping(self) -> bool:
        return self._closed.is_set() or self.stop.is_set()

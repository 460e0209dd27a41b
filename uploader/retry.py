"""The pause before a request that failed for a passing reason (an outage, a reset, a 5xx) is tried again.

Shared by the places that try requests again: the executor, for a file's
send, the S3 client, for every other request (s3/client.py's ride-through
handler), and the viewer check's anonymous requests (until_answered). Doubled each time, up to a cap, with jitter; both
settable so tests run in seconds.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

RETRY_PAUSE = float(os.environ.get("CARTLOAD_UPLOADER_RETRY_PAUSE", "0.5"))
RETRY_PAUSE_CAP = float(os.environ.get("CARTLOAD_UPLOADER_RETRY_PAUSE_CAP", "15"))


def pause_before(retry: int) -> float:
    """Seconds to wait before retry number `retry` (0 for the first)."""
    return float(min(RETRY_PAUSE_CAP, RETRY_PAUSE * 2.0 ** retry)) * (0.5 + random.random())


def until_answered(attempt: Callable[[], T], passing: Callable[[T], bool], within: float) -> T:
    """`attempt()` again after a pause while what it returns is a passing failure, for `within` seconds at most
    from the first failure; the last result. For requests sent outside the S3 client (the viewer check's)."""
    first_failed, retry = 0.0, 0
    while passing(result := attempt()):
        now = time.monotonic()
        first_failed = first_failed or now
        if now - first_failed >= within:
            break
        time.sleep(pause_before(retry))
        retry += 1
    return result

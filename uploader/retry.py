"""The pause before a request that failed for a passing reason (an outage, a reset, a 5xx) is tried again.

Shared by the two places that try requests again: the executor, for a
file's send, and the S3 client, for every other request (s3/client.py's
ride-through handler). Doubled each time, up to a cap, with jitter; both
settable so tests run in seconds.
"""

from __future__ import annotations

import os
import random

RETRY_PAUSE = float(os.environ.get("CARTLOAD_UPLOADER_RETRY_PAUSE", "0.5"))
RETRY_PAUSE_CAP = float(os.environ.get("CARTLOAD_UPLOADER_RETRY_PAUSE_CAP", "15"))


def pause_before(retry: int) -> float:
    """Seconds to wait before retry number `retry` (0 for the first)."""
    return float(min(RETRY_PAUSE_CAP, RETRY_PAUSE * 2.0 ** retry)) * (0.5 + random.random())

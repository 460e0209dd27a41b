"""How fast and how patiently the uploader talks to Zenodo: timeouts, the pace of requests, retries.

Zenodo counts requests per User-Agent and address: 100 a minute and 5,000 an
hour, searches 30 a minute; beyond that it answers 429. Every request of a
run, metadata call or file upload, takes its turn from one `Pacer`, so a
100-file deposition stays under those limits instead of tripping them, and
every retry spends from one `RetryBudget`, so a Zenodo that keeps failing
stops the run soon while one that fails now and then does not. Each number
is settable through a CARTLOAD_UPLOADER_ZENODO_* variable (tests run in
seconds with short ones); `cartload-uploader --help` lists them.
"""

from __future__ import annotations

import collections
import contextlib
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from uploader.errors import UsageError

ENV_PREFIX = "CARTLOAD_UPLOADER_ZENODO_"
SUCCESSES_PER_RETRY = 10  # a run that mostly works earns a retry back every 10 successful requests
MAX_BACKOFF_SECONDS = 60.0
# A request is counted from when it takes its turn, and Zenodo counts it when it arrives, a little later: each is
# kept in its window this much longer, or a burst freed at a window's edge overtakes Zenodo's count.
ARRIVAL_SLACK_SECONDS = 1.0
POLL_SECONDS = 0.2  # how often a wait looks whether the run was interrupted


class Interrupted(Exception):
    """A wait stopped because the run is being interrupted."""


@dataclass(frozen=True)
class Window:
    """At most `requests` in any `seconds`."""

    requests: int
    seconds: float

    def __str__(self) -> str:
        return f"{self.requests}/{self.seconds:g}"


@dataclass(frozen=True)
class ZenodoTiming:
    """Every timeout, wait and pace of the Zenodo client; field `x` is variable CARTLOAD_UPLOADER_ZENODO_X."""

    timeout: float = 60.0  # seconds to wait for the answer to a metadata call
    upload_timeout: float = 1800.0  # for a file upload's answer after its last byte (Zenodo may take long)
    publish_timeout: float = 600.0  # for publish's answer, then as long again for the record to show published
    retries: int = 30  # retries a whole run may spend (earned back slowly while requests succeed)
    backoff: float = 1.0  # seconds before the first retry, doubled each time (jittered, at most 60)
    max_wait: float = 300.0  # the longest Retry-After (or rate-limit reset) honoured
    rate: tuple[Window, ...] = (Window(100, 60), Window(5000, 3600))  # requests of any kind
    search_rate: tuple[Window, ...] = (Window(30, 60),)  # searches, on top of `rate`
    search_wait: float = 60.0  # how long to keep looking for a draft Zenodo's search does not show yet

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> ZenodoTiming:
        """The defaults, with each CARTLOAD_UPLOADER_ZENODO_* variable that is set; a bad value is a UsageError."""
        defaults = cls()
        values: dict[str, Any] = {}
        for spec in fields(cls):
            name = ENV_PREFIX + spec.name.upper()
            raw = environ.get(name, "").strip()
            if raw:
                values[spec.name] = _parse(name, raw, getattr(defaults, spec.name))
        return replace(defaults, **values)

    def backoff_delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Jittered exponential backoff, or longer when the server says so (Retry-After, at most max_wait).

        A Retry-After gets a jitter of up to one backoff too: requests told the same Retry-After came back all
        at once, in the same order each time, and one of them kept meeting the next 429.
        """
        delay = min(MAX_BACKOFF_SECONDS, self.backoff * 2.0 ** (attempt - 1)) * (0.5 + random.random())
        if retry_after:
            with contextlib.suppress(ValueError):  # an HTTP date instead of seconds: keep the backoff
                delay = max(delay, min(self.max_wait, float(retry_after)) + self.backoff * random.random())
        return delay


def _parse(name: str, raw: str, default: object) -> object:
    try:
        if isinstance(default, tuple):
            windows = tuple(_window(part) for part in raw.split(","))
            if not windows:
                raise ValueError
            return windows
        value = int(raw) if isinstance(default, int) else float(raw)
    except ValueError:
        expected = "requests/seconds, comma-separated (e.g. 100/60,5000/3600)" if isinstance(default, tuple) \
            else "a whole number" if isinstance(default, int) else "a number of seconds"
        raise UsageError(f"{name}={raw}: expected {expected}") from None
    if value < 0 or (value == 0 and name.endswith("TIMEOUT")):
        raise UsageError(f"{name}={raw}: must be positive")
    return value


def _window(text: str) -> Window:
    requests, _, seconds = text.strip().partition("/")
    window = Window(int(requests), float(seconds))
    if window.requests < 1 or window.seconds <= 0:
        raise ValueError
    return window


class Pacer:
    """Spaces requests so that no window is exceeded; Retry-After (or a spent rate limit) pauses every request."""

    def __init__(self, windows: tuple[Window, ...], search_windows: tuple[Window, ...],
                 slack: float = ARRIVAL_SLACK_SECONDS) -> None:
        self._lock = threading.Lock()
        self._slack = slack
        self._general = [(window, collections.deque[float]()) for window in windows]
        self._search = [(window, collections.deque[float]()) for window in search_windows]
        self._paused_until = 0.0

    def wait_turn(self, stop: threading.Event, *, search: bool = False) -> None:
        """Block until a request may be sent (and count it); raise Interrupted when `stop` is set."""
        windows = self._general + (self._search if search else [])
        while True:
            with self._lock:
                now = time.monotonic()
                delay = max([self._paused_until - now]
                            + [_delay(window.seconds + self._slack, window.requests, hits, now)
                               for window, hits in windows])
                if delay <= 0:
                    for _, hits in windows:
                        hits.append(now)
                    return
            sleep(delay, stop)

    def pause(self, seconds: float) -> bool:
        """No request for `seconds` (a 429's Retry-After: the limit is Zenodo's count of all our requests).

        True when this starts a pause (or makes it longer), False when one as long is already running.
        """
        with self._lock:
            until = time.monotonic() + seconds
            longer = until > self._paused_until + 0.5
            self._paused_until = max(self._paused_until, until)
            return longer


def _delay(span: float, requests: int, hits: collections.deque[float], now: float) -> float:
    """How long until fewer than `requests` of `hits` fall within the last `span` seconds."""
    while hits and hits[0] <= now - span:
        hits.popleft()
    return hits[0] + span - now if len(hits) >= requests else 0.0


class RetryBudget:
    """The retries a run may still spend, shared by every request: each retry costs one, successes earn some back."""

    def __init__(self, retries: int) -> None:
        self._lock = threading.Lock()
        self._capacity = retries * SUCCESSES_PER_RETRY  # counted in successes, so that earning is exact
        self._left = self._capacity

    def spend(self) -> bool:
        """Take one retry; False when none is left."""
        with self._lock:
            if self._left < SUCCESSES_PER_RETRY:
                return False
            self._left -= SUCCESSES_PER_RETRY
            return True

    def earn(self) -> None:
        with self._lock:
            self._left = min(self._capacity, self._left + 1)


def sleep(seconds: float, stop: threading.Event) -> None:
    """Wait `seconds`, or raise Interrupted as soon as `stop` is set."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if stop.wait(min(left, POLL_SECONDS)):
            raise Interrupted()
    if stop.is_set():
        raise Interrupted()

"""One request to Zenodo at a time: paced, retried within the run's budget, errors as one-line UploaderErrors.

The token travels only in an `Authorization: Bearer` header, never in a URL.
Every request takes its turn from one Pacer and every retry spends from one
RetryBudget (pacing.py). Reads, metadata PUTs and deletes are retried after
a dropped connection, a 429 (after its Retry-After) or a 5xx. A POST may
have been carried out although its answer was lost, so before one is sent
again the caller's check of what the last attempt left is used. urllib3
retries nothing itself: its retries know neither the budget nor the pace,
and gave up on a file PUT's Retry-After as if the connection had failed.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from uploader import __version__
from uploader.errors import AuthError, RemoteError, RemoteRefused, UploaderError, UsageError
from uploader.zenodo.body import BLOCK_SIZE
from uploader.zenodo.pacing import Interrupted, Pacer, RetryBudget, ZenodoTiming, sleep
from uploader.zenodo.records import ZenodoDeposition

if TYPE_CHECKING:
    import requests

    from uploader.zenodo.records import ZenodoToken

USER_AGENT = f"cartload-uploader/{__version__} (+https://github.com/cartload/cartload-uploader)"
MAX_ATTEMPTS = 6  # of one request; the run's RetryBudget may stop it sooner
RETRY_STATUSES = (429, 500, 502, 503, 504)
NOT_CARRIED_OUT = (429,)  # refused before the request was looked at (Zenodo's rate limiter)
OPEN_DRAFT_MESSAGE = "Please remove all files first."  # newversion, when the concept's open draft holds files
log = logging.getLogger("uploader.zenodo")


class ZenodoTransport:
    """The session, the pace and the retry budget every call to Zenodo shares."""

    def __init__(self, api_url: str, token: ZenodoToken, pool_size: int, timing: ZenodoTiming) -> None:
        import requests

        self.api_url = api_url.rstrip("/")
        self.host = self.api_url.split("/api")[0]
        self.timing = timing
        self.pacer = Pacer(timing.rate, timing.search_rate)
        self.budget = RetryBudget(timing.retries)
        self.stop = threading.Event()  # set when the run is interrupted: every wait ends
        self.session = _session(token, _big_block_adapter(pool_maxsize=pool_size))
        self.requests = requests

    def call(self, method: str, path: str, what: str, *, search: bool = False, accept: tuple[int, ...] = (),
              earn: bool = True, **kwargs: Any) -> requests.Response:
        """A request that is safe to send again (a read, a whole-metadata PUT, a delete by id, an edit).

        Its success earns back part of a retry, unless `earn` is False (a check after a failure is no progress).
        """
        for attempt in itertools.count(1):
            outcome = self.send(method, path, search=search, **kwargs)
            if isinstance(outcome, Exception) or outcome.status_code in RETRY_STATUSES:
                if self.may_retry(attempt, outcome, self.stop):
                    continue
                raise self.failed(outcome, what)
            if outcome.status_code >= 400 and outcome.status_code not in accept:
                raise self.error(outcome, what)
            if earn:
                self.budget.earn()
            return outcome
        raise AssertionError("unreachable")

    def post(self, path: str, what: str, made_already: Callable[[], ZenodoDeposition | None], *,
              timeout: float | None = None, **kwargs: Any) -> ZenodoDeposition:
        """A POST that may have been carried out though its answer was lost: look before sending it again."""
        for attempt in itertools.count(1):
            outcome = self.send("POST", path, timeout=timeout, **kwargs)
            if not isinstance(outcome, Exception) and outcome.status_code not in RETRY_STATUSES:
                if outcome.status_code >= 400:
                    raise self.error(outcome, what)
                self.budget.earn()
                return ZenodoDeposition.from_json(outcome.json())
            if isinstance(outcome, Exception) or outcome.status_code not in NOT_CARRIED_OUT:
                made = made_already()
                if made is not None:
                    return made
            if not self.may_retry(attempt, outcome, self.stop):
                raise self.failed(outcome, what)
        raise AssertionError("unreachable")

    def send(self, method: str, path: str, *, search: bool = False, timeout: float | None = None,
              **kwargs: Any) -> requests.Response | Exception:
        """One attempt, in its turn: the response, or the exception that stopped it."""
        url = path if path.startswith("http") else f"{self.api_url}{path}"
        try:
            self.pacer.wait_turn(self.stop, search=search)
            response = self.session.request(method, url, timeout=self.timeout(timeout or self.timing.timeout),
                                            **kwargs)
        except Interrupted:
            raise KeyboardInterrupt() from None
        except self.requests.RequestException as exc:
            return exc
        self.heed_limits(response)
        return response

    def heed_limits(self, response: requests.Response) -> None:
        """A 429's Retry-After, or a rate limit spent to 0, pauses every request until it resets."""
        if response.status_code == 429:
            delay = self.timing.backoff_delay(1, response.headers.get("Retry-After"))
            if self.pacer.pause(delay):
                log.warning(f"rate-limited by Zenodo (429), waiting {math.ceil(delay)} s")
        elif response.headers.get("X-RateLimit-Remaining") == "0":
            try:
                resets_in = float(response.headers.get("X-RateLimit-Reset", "")) - time.time()
            except ValueError:
                return
            self.pacer.pause(min(self.timing.max_wait, max(0.0, resets_in)))

    def may_retry(self, attempt: int, outcome: requests.Response | Exception, stop: threading.Event) -> bool:
        """Wait before another attempt and say yes, or say no (attempts or the run's retry budget are spent)."""
        if attempt >= MAX_ATTEMPTS or not self.budget.spend():
            return False
        retry_after = None if isinstance(outcome, Exception) else outcome.headers.get("Retry-After")
        try:
            sleep(self.timing.backoff_delay(attempt, retry_after), stop)
        except Interrupted:
            return False
        return True

    def wait(self, seconds: float) -> None:
        """Sleep between polls; Ctrl-C (the stop event) ends it."""
        try:
            sleep(seconds, self.stop)
        except Interrupted:
            raise KeyboardInterrupt() from None

    def timeout(self, read: float) -> tuple[float, float]:
        return (min(30.0, self.timing.timeout), read)

    def failed(self, outcome: requests.Response | Exception, what: str) -> UploaderError:
        if isinstance(outcome, Exception):
            return RemoteError(f"cannot reach Zenodo at {self.host} ({what}): {describe(outcome)}; check"
                               " --zenodo-url and the network, then re-run")
        return RemoteError(f"Zenodo kept failing {what} ({outcome.status_code}: {error_message(outcome)});"
                           " try again later")

    def error(self, response: requests.Response, what: str) -> Exception:
        status = response.status_code
        detail = error_message(response)
        if status in (401, 403):
            return AuthError(f"Zenodo refused access to {what} ({status}: {detail}): check that the token is"
                             " right, has the deposit:write and deposit:actions scopes, belongs to the owner of"
                             f" the deposition, and is for {self.host} (sandbox tokens need --sandbox)")
        if status == 410:
            return UsageError(f"{what} is gone: Zenodo says the record was deleted (410: {detail}); nothing can be"
                              " uploaded into it: pass the id of another deposition, or none to make a new one")
        if status == 404:
            return UsageError(f"{what} does not exist at {self.host} (404: {detail}): check the id, and --sandbox"
                              " or --zenodo-url (a sandbox id does not exist on production, nor the reverse)")
        if status == 400 and OPEN_DRAFT_MESSAGE in detail:
            return OpenDraftExists(detail)
        if status == 400:
            return RemoteRefused(f"Zenodo refused {what} (400): {detail}")
        return RemoteError(f"Zenodo failed {what} ({status}: {detail}); try again later")


class OpenDraftExists(UsageError):
    """newversion was refused because the concept already has an open draft that holds files."""


def describe(outcome: requests.Response | Exception) -> str:
    if isinstance(outcome, Exception):
        return type(outcome).__name__
    return f"{outcome.status_code}: {error_message(outcome)}"


def _session(token: ZenodoToken, adapter: Any) -> requests.Session:
    import requests

    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token.value}", "User-Agent": USER_AGENT,
                            "Accept": "application/json"})
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _big_block_adapter(**kwargs: Any) -> Any:
    """An HTTPAdapter that sends bodies in 1 MiB blocks instead of http.client's 16 KiB (fewer calls per GB)."""
    from requests.adapters import HTTPAdapter

    class BigBlocks(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **pool_kwargs: Any) -> None:
            pool_kwargs["blocksize"] = BLOCK_SIZE
            super().init_poolmanager(*args, **pool_kwargs)

    return BigBlocks(max_retries=0, **kwargs)  # every retry is ours: paced, budgeted, looked before


def error_message(response: requests.Response) -> str:
    """Zenodo's message and its field errors ('messages' today, 'message' in older answers)."""
    try:
        body = response.json()
    except ValueError:
        return response.reason or "no details"
    message = str(body.get("message", "")) if isinstance(body, dict) else ""
    errors = body.get("errors") if isinstance(body, dict) else None
    details = []
    for error in errors or []:
        texts = error.get("messages") or [error.get("message", "")]
        details.append(f"{error.get('field', '?')}: {' '.join(map(str, texts))}")
    return "; ".join([message, *details]) if details else message or response.reason

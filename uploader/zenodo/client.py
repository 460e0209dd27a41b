"""HTTP calls to Zenodo's deposit API: the only code that talks to Zenodo.

The token travels only in an `Authorization: Bearer` header, never in a URL.
Every request takes its turn from one Pacer and every retry spends from one
RetryBudget (pacing.py). Reads, metadata PUTs and deletes are retried after
a dropped connection, a 429 (after its Retry-After) or a 5xx. A POST, a
file PUT or a publish may have been carried out although its answer was
lost, so before one is sent again the client looks at what the last attempt
left (the caller says how) and uses that. urllib3 retries nothing itself: its
retries know neither the budget nor the pace, and gave up on a file PUT's
Retry-After as if the connection had failed.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from uploader import __version__
from uploader.errors import AuthError, FileUploadError, RemoteError, UploaderError, UsageError
from uploader.plan import LocalFile
from uploader.zenodo.body import BLOCK_SIZE, HashingBody
from uploader.zenodo.pacing import Interrupted, Pacer, RetryBudget, ZenodoTiming, sleep

if TYPE_CHECKING:
    import requests

USER_AGENT = f"cartload-uploader/{__version__} (+https://github.com/cartload/cartload-uploader)"
MAX_ATTEMPTS = 6  # of one request; the run's RetryBudget may stop it sooner
RETRY_STATUSES = (429, 500, 502, 503, 504)
NOT_CARRIED_OUT = (429,)  # refused before the request was looked at (Zenodo's rate limiter)
OPEN_DRAFT_MESSAGE = "Please remove all files first."  # newversion, when the concept's open draft holds files


@dataclass(frozen=True)
class ZenodoToken:
    """A personal access token; its repr never shows it."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "ZenodoToken(****)"


@dataclass
class DepositionFile:
    name: str
    size: int
    md5: str
    id: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DepositionFile:
        # The file list gives the bare MD5; the bucket's answers prefix it with "md5:".
        return cls(data["filename"], int(data["filesize"]), str(data["checksum"]).removeprefix("md5:"),
                   str(data.get("id", "")))


@dataclass
class ZenodoDeposition:
    """What the uploader knows of one deposition."""

    id: int
    conceptrecid: str
    submitted: bool  # published (also while a published record's metadata edit is open)
    state: str  # "unsubmitted" (a draft), "inprogress" (a published record being edited), "done"
    metadata: dict[str, Any]
    links: dict[str, str]
    files: dict[str, DepositionFile]
    doi: str = ""
    conceptdoi: str = ""  # only once a first version of the concept is published
    created: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ZenodoDeposition:
        files = {f.name: f for f in map(DepositionFile.from_json, data.get("files") or [])}
        submitted = bool(data.get("submitted"))
        return cls(id=int(data["id"]), conceptrecid=str(data.get("conceptrecid", "")), submitted=submitted,
                   state=str(data.get("state") or ("done" if submitted else "unsubmitted")),
                   metadata=dict(data.get("metadata") or {}), links=dict(data.get("links") or {}), files=files,
                   doi=str(data.get("doi") or ""), conceptdoi=str(data.get("conceptdoi") or ""),
                   created=str(data.get("created") or ""))

    @property
    def bucket(self) -> str:
        return self.links["bucket"]

    @property
    def title(self) -> str:
        return str(self.metadata.get("title", ""))

    @property
    def page(self) -> str:
        """The deposition's web page."""
        return self.links.get("html") or self.links.get("record_html") or str(self.id)


class ZenodoClient:
    """The deposit API's calls, with errors turned into one-line UploaderErrors."""

    def __init__(self, api_url: str, token: ZenodoToken, pool_size: int, timing: ZenodoTiming) -> None:
        import requests

        self.api_url = api_url.rstrip("/")
        self.host = self.api_url.split("/api")[0]
        self.timing = timing
        self.pacer = Pacer(timing.rate, timing.search_rate)
        self.budget = RetryBudget(timing.retries)
        self.stop = threading.Event()  # set when the run is interrupted: every wait ends
        self.session = _session(token, _big_block_adapter(pool_maxsize=pool_size))
        self._requests = requests

    # -- depositions ------------------------------------------------------------------------

    def deposition(self, deposition_id: int) -> ZenodoDeposition:
        response = self._call("GET", f"/deposit/depositions/{deposition_id}", what=f"deposition {deposition_id}")
        return ZenodoDeposition.from_json(response.json())

    def latest_version(self, record: ZenodoDeposition) -> ZenodoDeposition:
        """The concept's latest published version (a newversion starts from its files, whatever id is given)."""
        link = record.links.get("latest")
        if not link:
            return record
        what = f"the latest version of record {record.id}"
        response = self._call("GET", link, what=what, allow_redirects=False)  # each hop takes its turn
        if response.is_redirect:
            response = self._call("GET", response.headers["Location"], what=what)
        latest_id = int(response.json()["id"])
        return record if latest_id == record.id else self.deposition(latest_id)

    def concept_drafts(self, conceptrecid: str) -> list[ZenodoDeposition]:
        """The concept's unpublished drafts, newest first, as far as the search index shows them (it lags)."""
        return [d for d in self._search(f"conceptrecid:{conceptrecid}", "drafts of this record")
                if not d.submitted]

    def drafts_titled(self, title: str) -> list[ZenodoDeposition]:
        """Your never-published drafts with exactly this title, newest first (the search index lags)."""
        escaped = title.replace("\\", "\\\\").replace('"', '\\"')
        found = self._search(f'title:"{escaped}"', f"drafts titled '{title}'")
        return [d for d in found if not d.submitted and not d.conceptdoi and d.title == title]

    def linked_draft(self, record: ZenodoDeposition) -> ZenodoDeposition | None:
        """The unpublished draft the record's `latest_draft` link points to, if it points to another one."""
        fresh = self.deposition(record.id)
        link = fresh.links.get("latest_draft", "")
        draft_id = link.rstrip("/").rsplit("/", 1)[-1]
        if not draft_id.isdigit() or int(draft_id) == record.id:
            return None  # zenodo-rdm links a record to itself
        draft = self.deposition(int(draft_id))
        return None if draft.submitted else draft

    def create(self, metadata: dict[str, Any],
               made_already: Callable[[], ZenodoDeposition | None]) -> ZenodoDeposition:
        """POST a new deposition; before any re-send, `made_already` looks for what a lost attempt made."""
        return self._post("/deposit/depositions", "creating a deposition", made_already,
                          json={"metadata": metadata} if metadata else {})

    def new_version(self, record: ZenodoDeposition,
                    made_already: Callable[[], ZenodoDeposition | None]) -> ZenodoDeposition:
        """Open a new version of a published record and return its draft (holding the latest version's files).

        Zenodo refuses it when the concept's open draft holds files: then `made_already` finds that draft.
        """
        try:
            answer = self._post(f"/deposit/depositions/{record.id}/actions/newversion", "opening a new version",
                                made_already)
        except OpenDraftExists:
            draft = made_already()
            if draft is None:
                raise RemoteError(f"Zenodo says record {record.id} has an unpublished new version already, but"
                                  " neither its search nor the record's links show it yet; re-run in a few"
                                  f" minutes, or find the draft on {self.host}/me/uploads and pass its id with"
                                  " --zenodo-id") from None
            return draft
        if answer.id == record.id:  # the documented answer: the old record, linking to the new draft
            return self.deposition(int(answer.links["latest_draft"].rstrip("/").rsplit("/", 1)[1]))
        return answer if "bucket" in answer.links else self.deposition(answer.id)

    def edit(self, record: ZenodoDeposition) -> ZenodoDeposition:
        """Open a published record's metadata for editing (same DOI); an edit already open is answered as it is."""
        response = self._call("POST", f"/deposit/depositions/{record.id}/actions/edit", what="opening an edit")
        return ZenodoDeposition.from_json(response.json())

    def update_metadata(self, deposition: ZenodoDeposition, metadata: dict[str, Any]) -> ZenodoDeposition:
        """PUT the whole metadata (Zenodo replaces it: every field that should stay must be in `metadata`)."""
        response = self._call("PUT", f"/deposit/depositions/{deposition.id}", json={"metadata": metadata},
                              what="updating the metadata")
        return ZenodoDeposition.from_json(response.json())

    def publish(self, deposition: ZenodoDeposition) -> ZenodoDeposition:
        """Publish, waiting for a slow publish (it may outlast the answer) rather than posting it again."""
        path = f"/deposit/depositions/{deposition.id}/actions/publish"
        try:
            return self._post(path, "publishing", lambda: self._published(deposition, wait=True),
                              timeout=self.timing.publish_timeout)
        except UsageError:
            published = self._published(deposition, wait=False)  # a re-sent publish finds it done: 404
            if published is None:
                raise
            return published

    def _published(self, deposition: ZenodoDeposition, *, wait: bool) -> ZenodoDeposition | None:
        """The deposition once its publish completed, polled for up to publish_timeout; None if it did not."""
        deadline = time.monotonic() + (self.timing.publish_timeout if wait else 0)
        for attempt in itertools.count(1):
            current = self.deposition(deposition.id)
            if current.submitted and current.state != "inprogress":
                return current
            if time.monotonic() >= deadline:
                return None
            self.wait(min(self.timing.backoff_delay(attempt), 10.0, max(0.0, deadline - time.monotonic())))
        raise AssertionError("unreachable")

    # -- files --------------------------------------------------------------------------------

    def files(self, deposition: ZenodoDeposition, *, earn: bool = True) -> list[DepositionFile]:
        answer = self._call("GET", f"/deposit/depositions/{deposition.id}/files", what="the file list",
                            earn=earn).json()
        return [DepositionFile.from_json(item) for item in answer]

    def delete_file(self, deposition: ZenodoDeposition, file_id: str, name: str) -> None:
        """Delete a draft's file by its id; whatever the answer says, a listing decides whether it is gone."""
        failure = ""
        try:
            response = self._call("DELETE", f"/deposit/depositions/{deposition.id}/files/{file_id}",
                                  what=f"deleting {name}", accept=(404,))
            if response.status_code == 204:
                return
            failure = f"{response.status_code}: {error_message(response)}"
        except UploaderError as exc:  # refused (e.g. 403: the record is published) or kept failing
            failure = str(exc)
        try:
            still_there = any(f.name == name for f in self.files(deposition, earn=False))
        except UploaderError as exc:
            raise FileUploadError(f"delete unconfirmed ({failure}), and the file list failed: {exc}",
                                  retryable=True) from None
        if still_there:
            raise FileUploadError(f"delete failed ({failure}); the file is still in the draft", retryable=True)

    def put_file(self, deposition: ZenodoDeposition, file: LocalFile, progress: Callable[[int], None],
                 stop: threading.Event) -> tuple[dict[str, Any], str]:
        """Stream one file into the bucket, retrying transient failures from the first byte.

        Returns Zenodo's answer and the MD5 of the bytes sent (computed while sending).
        """
        url = f"{deposition.bucket}/{quote(file.name, safe='')}"  # '#', '?', '%' would cut or change the name
        for attempt in itertools.count(1):
            try:
                self.pacer.wait_turn(stop)
            except Interrupted:
                raise FileUploadError("interrupted") from None
            outcome, body = self._put_once(url, file, progress, stop)
            if stop.is_set():
                raise FileUploadError("interrupted")
            if not isinstance(outcome, Exception):
                self._heed_limits(outcome)
                if outcome.status_code in (200, 201):
                    self.budget.earn()
                    return dict(outcome.json()), body.md5()
                if outcome.status_code not in RETRY_STATUSES:
                    raise _refused_upload(outcome)
            carried_out = isinstance(outcome, Exception) or outcome.status_code not in NOT_CARRIED_OUT
            if carried_out and body.sent == file.size and self._landed(deposition, file, body.md5()):
                return {"key": file.name, "size": file.size, "checksum": f"md5:{body.md5()}"}, body.md5()
            if not self._may_retry(attempt, outcome, stop):
                raise FileUploadError(f"gave up after {attempt} attempt(s): {_describe(outcome)}")
        raise AssertionError("unreachable")

    def _put_once(self, url: str, file: LocalFile, progress: Callable[[int], None],
                  stop: threading.Event) -> tuple[requests.Response | Exception, HashingBody]:
        with open(file.path, "rb") as handle:
            body = HashingBody(handle, file.size, progress, stop)
            try:
                response = self.session.put(url, data=body, timeout=self._timeout(self.timing.upload_timeout),
                                            headers={"Content-Type": "application/octet-stream",
                                                     "Content-Length": str(file.size)})
            except self._requests.RequestException as exc:
                progress(-body.sent)
                return exc, body
            finally:
                body.close()  # the server may have answered before reading it all
        if response.status_code not in (200, 201):
            progress(-body.sent)
        return response, body

    def _landed(self, deposition: ZenodoDeposition, file: LocalFile, md5: str) -> bool:
        # A failed answer after the last byte may still have stored the file.
        try:
            listing = self.files(deposition, earn=False)
        except UploaderError:
            return False
        return any(f.name == file.name and f.md5 == md5 and f.size == file.size for f in listing)

    # -- plumbing -----------------------------------------------------------------------------

    def _call(self, method: str, path: str, what: str, *, search: bool = False, accept: tuple[int, ...] = (),
              earn: bool = True, **kwargs: Any) -> requests.Response:
        """A request that is safe to send again (a read, a whole-metadata PUT, a delete by id, an edit).

        Its success earns back part of a retry, unless `earn` is False (a check after a failure is no progress).
        """
        for attempt in itertools.count(1):
            outcome = self._send(method, path, search=search, **kwargs)
            if isinstance(outcome, Exception) or outcome.status_code in RETRY_STATUSES:
                if self._may_retry(attempt, outcome, self.stop):
                    continue
                raise self._failed(outcome, what)
            if outcome.status_code >= 400 and outcome.status_code not in accept:
                raise self._error(outcome, what)
            if earn:
                self.budget.earn()
            return outcome
        raise AssertionError("unreachable")

    def _post(self, path: str, what: str, made_already: Callable[[], ZenodoDeposition | None], *,
              timeout: float | None = None, **kwargs: Any) -> ZenodoDeposition:
        """A POST that may have been carried out though its answer was lost: look before sending it again."""
        for attempt in itertools.count(1):
            outcome = self._send("POST", path, timeout=timeout, **kwargs)
            if not isinstance(outcome, Exception) and outcome.status_code not in RETRY_STATUSES:
                if outcome.status_code >= 400:
                    raise self._error(outcome, what)
                self.budget.earn()
                return ZenodoDeposition.from_json(outcome.json())
            if isinstance(outcome, Exception) or outcome.status_code not in NOT_CARRIED_OUT:
                made = made_already()
                if made is not None:
                    return made
            if not self._may_retry(attempt, outcome, self.stop):
                raise self._failed(outcome, what)
        raise AssertionError("unreachable")

    def _search(self, query: str, what: str) -> list[ZenodoDeposition]:
        response = self._call("GET", "/deposit/depositions", what=what, search=True,
                              params={"q": query, "allversions": "true", "size": 100})
        found = [ZenodoDeposition.from_json(item) for item in response.json()]
        return sorted(found, key=lambda d: d.id, reverse=True)

    def _send(self, method: str, path: str, *, search: bool = False, timeout: float | None = None,
              **kwargs: Any) -> requests.Response | Exception:
        """One attempt, in its turn: the response, or the exception that stopped it."""
        url = path if path.startswith("http") else f"{self.api_url}{path}"
        try:
            self.pacer.wait_turn(self.stop, search=search)
            response = self.session.request(method, url, timeout=self._timeout(timeout or self.timing.timeout),
                                            **kwargs)
        except Interrupted:
            raise KeyboardInterrupt() from None
        except self._requests.RequestException as exc:
            return exc
        self._heed_limits(response)
        return response

    def _heed_limits(self, response: requests.Response) -> None:
        """A 429's Retry-After, or a rate limit spent to 0, pauses every request until it resets."""
        if response.status_code == 429:
            self.pacer.pause(self.timing.backoff_delay(1, response.headers.get("Retry-After")))
        elif response.headers.get("X-RateLimit-Remaining") == "0":
            try:
                resets_in = float(response.headers.get("X-RateLimit-Reset", "")) - time.time()
            except ValueError:
                return
            self.pacer.pause(min(self.timing.max_wait, max(0.0, resets_in)))

    def _may_retry(self, attempt: int, outcome: requests.Response | Exception, stop: threading.Event) -> bool:
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

    def _timeout(self, read: float) -> tuple[float, float]:
        return (min(30.0, self.timing.timeout), read)

    def _failed(self, outcome: requests.Response | Exception, what: str) -> UploaderError:
        if isinstance(outcome, Exception):
            return RemoteError(f"cannot reach Zenodo at {self.host} ({what}): {_describe(outcome)}; check"
                               " --zenodo-url and the network, then re-run")
        return RemoteError(f"Zenodo kept failing {what} ({outcome.status_code}: {error_message(outcome)});"
                           " try again later")

    def _error(self, response: requests.Response, what: str) -> Exception:
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
            return UsageError(f"Zenodo refused {what}: {detail}")
        return RemoteError(f"Zenodo failed {what} ({status}: {detail}); try again later")


class OpenDraftExists(UsageError):
    """newversion was refused because the concept already has an open draft that holds files."""


def _refused_upload(response: requests.Response) -> FileUploadError:
    status, detail = response.status_code, error_message(response)
    if status == 413:
        return FileUploadError(f"too large for Zenodo (413: {detail}); it is not sent again")
    if "quota" in detail.lower():
        return FileUploadError(f"the record's quota is full (Zenodo: {detail}); ask Zenodo for more space, then pass"
                               " the new limit with --max-record-bytes")
    if status in (401, 403):
        return FileUploadError(f"Zenodo refused it ({status}: {detail}); is the deposition published, or the"
                               " token someone else's?")
    return FileUploadError(f"Zenodo refused the upload ({status}): {detail}")


def _describe(outcome: requests.Response | Exception) -> str:
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

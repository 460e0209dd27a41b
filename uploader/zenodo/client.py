"""HTTP calls to Zenodo's deposit API: the only code that talks to Zenodo.

The token travels only in an `Authorization: Bearer` header, never in a URL.
Metadata calls are retried by urllib3 (429 with Retry-After, 5xx, dropped
connections). POSTs and file PUTs are not re-sent blindly: a POST may have
been carried out although its answer was lost, and a file body is a stream;
so they are retried here, after looking at what the last attempt left.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from uploader import __version__
from uploader.errors import AuthError, FileUploadError, RemoteError, UsageError
from uploader.plan import LocalFile
from uploader.zenodo.body import BLOCK_SIZE, HashingBody

if TYPE_CHECKING:
    import requests

USER_AGENT = f"cartload-uploader/{__version__} (+https://github.com/cartload/cartload-uploader)"
API_TIMEOUT = (30, 60)
UPLOAD_TIMEOUT = (30, 30 * 60)  # multi-GB PUTs: Zenodo may take long to answer after the last byte
TRANSIENT_ATTEMPTS = 6  # of a POST or a file PUT that failed for a reason worth retrying
RETRY_STATUSES = (429, 500, 502, 503, 504)


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
    submitted: bool
    metadata: dict[str, Any]
    links: dict[str, str]
    files: dict[str, DepositionFile]
    doi: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ZenodoDeposition:
        files = {f.name: f for f in map(DepositionFile.from_json, data.get("files") or [])}
        return cls(id=int(data["id"]), conceptrecid=str(data.get("conceptrecid", "")),
                   submitted=bool(data.get("submitted")), metadata=dict(data.get("metadata") or {}),
                   links=dict(data.get("links") or {}), files=files, doi=str(data.get("doi") or ""))

    @property
    def bucket(self) -> str:
        return self.links["bucket"]


class ZenodoClient:
    """The deposit API's calls, with errors turned into one-line UploaderErrors."""

    def __init__(self, api_url: str, token: ZenodoToken, pool_size: int) -> None:
        import requests
        from urllib3.util.retry import Retry

        self.api_url = api_url.rstrip("/")
        self.host = self.api_url.split("/api")[0]
        retry = Retry(total=6, connect=4, read=2, status=6, backoff_factor=0.5, backoff_jitter=0.5,
                      status_forcelist=RETRY_STATUSES, allowed_methods={"GET", "PUT", "DELETE"},
                      respect_retry_after_header=True, raise_on_status=False)
        self.api = _session(token, _big_block_adapter(max_retries=retry, pool_maxsize=pool_size))
        # Uploads: only failed connects are retried below the loop in put_file (a stream cannot be re-sent).
        self.uploads = _session(token, _big_block_adapter(
            max_retries=Retry(total=3, connect=3, read=0, status=0, backoff_factor=0.5), pool_maxsize=pool_size))
        self._requests = requests

    # -- depositions ------------------------------------------------------------------------

    def deposition(self, deposition_id: int) -> ZenodoDeposition:
        response = self._call("GET", f"/deposit/depositions/{deposition_id}", what=f"deposition {deposition_id}")
        return ZenodoDeposition.from_json(response.json())

    def check_token(self) -> None:
        self._call("GET", "/deposit/depositions", params={"size": 1}, what="your depositions")

    def unpublished_versions(self, conceptrecid: str) -> list[int]:
        response = self._call("GET", "/deposit/depositions", what="drafts of this record",
                              params={"q": f"conceptrecid:{conceptrecid}", "size": 100, "all_versions": "true"})
        return [int(d["id"]) for d in response.json() if not d.get("submitted")]

    def create(self, metadata: dict[str, Any]) -> ZenodoDeposition:
        response = self._post("/deposit/depositions", json={"metadata": metadata} if metadata else {},
                              what="creating a deposition")
        return ZenodoDeposition.from_json(response.json())

    def new_version(self, record: ZenodoDeposition) -> ZenodoDeposition:
        """Open a new version of a published record and return its draft."""
        response = self._post(f"/deposit/depositions/{record.id}/actions/newversion", what="opening a new version")
        answer = ZenodoDeposition.from_json(response.json())
        if answer.id == record.id:  # the documented answer: the old record, pointing at the new draft
            return self.deposition(int(answer.links["latest_draft"].rstrip("/").rsplit("/", 1)[1]))
        return answer if "bucket" in answer.links else self.deposition(answer.id)

    def update_metadata(self, deposition: ZenodoDeposition, changes: dict[str, Any]) -> ZenodoDeposition:
        # Zenodo replaces the whole metadata on PUT: merge into what is there, or fields are lost.
        metadata = deposition.metadata | changes
        response = self._call("PUT", f"/deposit/depositions/{deposition.id}", json={"metadata": metadata},
                              what="updating the metadata")
        return ZenodoDeposition.from_json(response.json())

    def publish(self, deposition: ZenodoDeposition) -> ZenodoDeposition:
        def published() -> bool:  # a publish that timed out often completed: look before posting again
            return self.deposition(deposition.id).submitted

        response = self._post(f"/deposit/depositions/{deposition.id}/actions/publish", what="publishing",
                              done_already=published)
        return ZenodoDeposition.from_json(response.json())

    # -- files --------------------------------------------------------------------------------

    def files(self, deposition: ZenodoDeposition) -> list[DepositionFile]:
        answer = self._call("GET", f"/deposit/depositions/{deposition.id}/files", what="the file list").json()
        return [DepositionFile.from_json(item) for item in answer]

    def delete_file(self, deposition: ZenodoDeposition, name: str) -> None:
        response = self._send("DELETE", f"{deposition.bucket}/{name}")
        if response.status_code not in (204, 404):  # 404 on a retry: the first attempt did it
            raise FileUploadError(f"delete refused ({response.status_code}): {error_message(response)}")

    def put_file(self, deposition: ZenodoDeposition, file: LocalFile, progress: Callable[[int], None],
                 stop: threading.Event) -> tuple[dict[str, Any], str]:
        """Stream one file into the bucket, retrying transient failures from the first byte.

        Returns Zenodo's answer and the MD5 of the bytes sent (computed while sending).
        """
        url = f"{deposition.bucket}/{file.name}"
        for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
            outcome, body = self._put_once(url, file, progress, stop)
            if isinstance(outcome, Exception):
                if stop.is_set():
                    raise FileUploadError("interrupted") from None
                if attempt == TRANSIENT_ATTEMPTS:
                    raise FileUploadError(f"connection failed {attempt} times: {type(outcome).__name__}") from None
                if body.sent == file.size and self._landed(deposition, file, body.md5()):
                    return {"size": file.size, "checksum": f"md5:{body.md5()}"}, body.md5()
                wait_before_retry(attempt, None)
                continue
            if outcome.status_code in (200, 201):
                return dict(outcome.json()), body.md5()
            if outcome.status_code in RETRY_STATUSES and attempt < TRANSIENT_ATTEMPTS:
                wait_before_retry(attempt, outcome.headers.get("Retry-After"))
                continue
            raise FileUploadError(f"Zenodo refused the upload ({outcome.status_code}): {error_message(outcome)}")
        raise FileUploadError("gave up after repeated failures")

    def _put_once(self, url: str, file: LocalFile, progress: Callable[[int], None],
                  stop: threading.Event) -> tuple[requests.Response | Exception, HashingBody]:
        with open(file.path, "rb") as handle:
            body = HashingBody(handle, file.size, progress, stop)
            try:
                response = self.uploads.put(url, data=body, timeout=UPLOAD_TIMEOUT, headers={
                    "Content-Type": "application/octet-stream", "Content-Length": str(file.size)})
            except self._requests.RequestException as exc:
                progress(-body.sent)
                return exc, body
            finally:
                body.close()  # the server may have answered before reading it all
        if response.status_code not in (200, 201):
            progress(-body.sent)
        return response, body

    def _landed(self, deposition: ZenodoDeposition, file: LocalFile, md5: str) -> bool:
        # A connection that dropped after the last byte may still have stored the file.
        try:
            listing = self.files(deposition)
        except Exception:
            return False
        return any(f.name == file.name and f.md5 == md5 and f.size == file.size for f in listing)

    # -- plumbing -----------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("http") else f"{self.api_url}{path}"
        try:
            return self.api.request(method, url, timeout=API_TIMEOUT, **kwargs)
        except self._requests.RequestException as exc:
            raise RemoteError(f"cannot reach Zenodo at {self.host}: {type(exc).__name__}; check --zenodo-url"
                              " and the network") from None

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        response = self._send(method, path, **kwargs)
        if response.status_code >= 400:
            raise self._error(response, what)
        return response

    def _post(self, path: str, what: str, done_already: Callable[[], bool] | None = None,
              **kwargs: Any) -> requests.Response:
        """POST, re-sent only after a 429 (not carried out) or a 5xx that `done_already` says left nothing.

        When `done_already` finds the action carried out, the answer is the deposition as it is now.
        """
        for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
            response = self._send("POST", path, **kwargs)
            if response.status_code not in RETRY_STATUSES or attempt == TRANSIENT_ATTEMPTS:
                break
            wait_before_retry(attempt, response.headers.get("Retry-After"))
            if response.status_code != 429 and done_already is not None and done_already():
                return self._call("GET", path.split("/actions/")[0], what=what)
        if response.status_code >= 400:
            raise self._error(response, what)
        return response

    def _error(self, response: requests.Response, what: str) -> Exception:
        status = response.status_code
        detail = error_message(response)
        if status in (401, 403):
            return AuthError(f"Zenodo refused access to {what} ({status}: {detail}): check that the token is"
                             " right, has the deposit:write and deposit:actions scopes, belongs to the owner of"
                             f" the deposition, and is for {self.host} (sandbox tokens need --sandbox)")
        if status == 404:
            return UsageError(f"Zenodo has no {what} at {self.host} (404): check the id, and --sandbox or"
                              " --zenodo-url (a sandbox id does not exist on production, nor the reverse)")
        if status == 400:
            return UsageError(f"Zenodo refused {what}: {detail}")
        return RemoteError(f"Zenodo failed {what} ({status}: {detail}); try again later")


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

    return BigBlocks(**kwargs)


def wait_before_retry(attempt: int, retry_after: str | None) -> None:
    """Jittered exponential backoff, or longer when the server says so (Retry-After, capped at 5 minutes)."""
    delay = min(60.0, 0.5 * 2 ** (attempt - 1)) * (0.5 + random.random())
    if retry_after:
        with contextlib.suppress(ValueError):  # an HTTP date instead of seconds: keep the backoff
            delay = max(delay, min(300.0, float(retry_after)))
    time.sleep(delay)


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

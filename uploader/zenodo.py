"""The Zenodo backend: the only code that talks to Zenodo's deposit API.

The token travels only in an `Authorization: Bearer` header, never in a URL.
Files are streamed with a PUT to the deposition's bucket (Content-Length set,
never read into memory) and verified against the MD5 Zenodo returns. A file
already in the deposition with the same MD5 is kept as it is, including the
files a new version inherits. Nothing is created (no deposition, no new
version) until every check has passed, and a dry run creates nothing at all.

Metadata calls are retried by urllib3 (429 with Retry-After, 5xx, dropped
connections). File PUTs cannot be re-sent by urllib3 (the body is a stream), so
they are retried here, from the first byte, after looking whether the last
attempt did in fact land.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from uploader import __version__
from uploader.errors import (
    AuthError,
    FileUploadError,
    InputError,
    NotPublished,
    RemoteError,
    UploaderError,
    UsageError,
)
from uploader.hashing import Cancelled, HashCache, digests
from uploader.plan import Action, LocalFile, Operation, UploadPlan

if TYPE_CHECKING:
    import requests

PRODUCTION_API = "https://zenodo.org/api"
SANDBOX_API = "https://sandbox.zenodo.org/api"
MAX_FILES = 100
MAX_BYTES = 50 * 10**9  # per record and per file
UPLOAD_TYPES = ("dataset", "software", "publication", "poster", "presentation", "image", "video", "lesson",
                "physicalobject", "other")
USER_AGENT = f"cartload-uploader/{__version__} (+https://github.com/cartload/cartload-uploader)"
API_TIMEOUT = (30, 60)
UPLOAD_TIMEOUT = (30, 30 * 60)  # multi-GB PUTs: Zenodo may take long to answer after the last byte
PUT_ATTEMPTS = 6
RETRY_STATUSES = (429, 500, 502, 503, 504)
BLOCK_SIZE = 1 << 20  # bytes per read and per send
READ_AHEAD_BLOCKS = 4


@dataclass(frozen=True)
class ZenodoToken:
    """A personal access token; its repr never shows it."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "ZenodoToken(****)"


@dataclass(frozen=True)
class ZenodoSettings:
    api_url: str
    token: ZenodoToken
    deposition_id: int | None
    metadata: dict[str, Any]  # only the fields the user passed
    publish: bool = False
    overwrite: bool = False
    n_jobs: int = 4


@dataclass
class RemoteFile:
    name: str
    size: int
    md5: str


@dataclass
class ZenodoDeposition:
    """What the uploader knows of one deposition."""

    id: int
    conceptrecid: str
    submitted: bool
    metadata: dict[str, Any]
    links: dict[str, str]
    files: dict[str, RemoteFile]
    doi: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ZenodoDeposition:
        files = {f["filename"]: RemoteFile(f["filename"], int(f["filesize"]), str(f["checksum"]).removeprefix("md5:"))
                 for f in data.get("files") or []}
        return cls(id=int(data["id"]), conceptrecid=str(data.get("conceptrecid", "")),
                   submitted=bool(data.get("submitted")), metadata=dict(data.get("metadata") or {}),
                   links=dict(data.get("links") or {}), files=files, doi=str(data.get("doi") or ""))

    @property
    def bucket(self) -> str:
        return self.links["bucket"]


class ZenodoClient:
    """HTTP calls to the deposit API, with errors turned into one-line UploaderErrors."""

    def __init__(self, api_url: str, token: ZenodoToken, pool_size: int) -> None:
        import requests
        from urllib3.util.retry import Retry

        self.api_url = api_url.rstrip("/")
        self.host = self.api_url.split("/api")[0]
        retry = Retry(total=6, connect=4, read=2, status=6, backoff_factor=0.5, backoff_jitter=0.5,
                      status_forcelist=RETRY_STATUSES, allowed_methods={"GET", "PUT", "DELETE"},
                      respect_retry_after_header=True, raise_on_status=False)
        self.api = self._session(token, _Adapter(max_retries=retry, pool_maxsize=pool_size))
        # Uploads: only failed connects are retried below the loop in put_file (a stream cannot be re-sent).
        self.uploads = self._session(token, _Adapter(max_retries=Retry(total=3, connect=3, read=0, status=0,
                                                                      backoff_factor=0.5),
                                                     pool_maxsize=pool_size))
        self._requests = requests

    @staticmethod
    def _session(token: ZenodoToken, adapter: Any) -> requests.Session:
        import requests

        session = requests.Session()
        session.headers.update({"Authorization": f"Bearer {token.value}", "User-Agent": USER_AGENT,
                                "Accept": "application/json"})
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    # -- calls --------------------------------------------------------------------------------

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
        assert response is not None  # only a `settled` check answers None
        return ZenodoDeposition.from_json(response.json())

    def new_version(self, record: ZenodoDeposition) -> ZenodoDeposition:
        """Open a new version of a published record and return its draft."""
        response = self._post(f"/deposit/depositions/{record.id}/actions/newversion", what="opening a new version")
        assert response is not None  # only a `settled` check answers None
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
        def settled() -> bool:  # a publish that timed out often completed: look before posting again
            return self.deposition(deposition.id).submitted

        response = self._post(f"/deposit/depositions/{deposition.id}/actions/publish", what="publishing",
                              settled=settled)
        if response is None:
            return self.deposition(deposition.id)
        return ZenodoDeposition.from_json(response.json())

    def delete_file(self, deposition: ZenodoDeposition, name: str) -> None:
        response = self._send("DELETE", f"{deposition.bucket}/{name}")
        if response.status_code not in (204, 404):  # 404 on a retry: the first attempt did it
            raise FileUploadError(f"delete refused ({response.status_code}): {_message(response)}")

    def put_file(self, deposition: ZenodoDeposition, file: LocalFile, progress: Callable[[int], None],
                 stop: threading.Event) -> tuple[str, str]:
        """Stream one file into the bucket, retrying transient failures.

        Returns the MD5 Zenodo computed and the MD5 of the bytes sent (computed while sending).
        """
        url = f"{deposition.bucket}/{file.name}"
        for attempt in range(1, PUT_ATTEMPTS + 1):
            with open(file.path, "rb") as handle:
                body = _CountingReader(handle, file.size, progress, stop)
                try:
                    response = self.uploads.put(url, data=body, timeout=UPLOAD_TIMEOUT, headers={
                        "Content-Type": "application/octet-stream", "Content-Length": str(file.size)})
                except self._requests.RequestException as exc:
                    progress(-body.sent)
                    if stop.is_set():
                        raise FileUploadError("interrupted") from None
                    if attempt == PUT_ATTEMPTS:
                        raise FileUploadError(f"connection failed {attempt} times: {type(exc).__name__}") from None
                    if body.sent == file.size and self._landed(deposition, file, body.md5()):
                        return body.md5(), body.md5()
                    _sleep(attempt, None)
                    continue
                finally:
                    body.close()  # the server may have answered before reading it all
            if response.status_code in (200, 201):
                return str(response.json().get("checksum", "")).removeprefix("md5:"), body.md5()
            progress(-body.sent)
            if response.status_code in RETRY_STATUSES and attempt < PUT_ATTEMPTS:
                _sleep(attempt, response.headers.get("Retry-After"))
                continue
            raise FileUploadError(f"Zenodo refused the upload ({response.status_code}): {_message(response)}",
                                  retryable=False)
        raise FileUploadError("gave up after repeated failures")

    def _landed(self, deposition: ZenodoDeposition, file: LocalFile, md5: str) -> bool:
        # A connection that dropped after the last byte may still have stored the file.
        try:
            listing = self._call("GET", f"/deposit/depositions/{deposition.id}/files", what="the file list").json()
        except Exception:
            return False
        return any(f.get("filename") == file.name and f.get("checksum") == md5 and f.get("filesize") == file.size
                   for f in listing)

    # -- plumbing -----------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.api_url}{path}"

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self.api.request(method, self._url(path), timeout=API_TIMEOUT, **kwargs)
        except self._requests.RequestException as exc:
            raise RemoteError(f"cannot reach Zenodo at {self.host}: {type(exc).__name__}; check --zenodo-url"
                              " and the network") from None

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        response = self._send(method, path, **kwargs)
        if response.status_code >= 400:
            raise self._error(response, what)
        return response

    def _post(self, path: str, what: str, settled: Callable[[], bool] | None = None,
              **kwargs: Any) -> requests.Response | None:
        # POST is not idempotent, so urllib3 does not retry it; here: after a 429 (not processed)
        # or a 5xx once the server's state shows the action did not happen.
        for attempt in range(1, PUT_ATTEMPTS + 1):
            response = self._send("POST", path, **kwargs)
            if response.status_code not in RETRY_STATUSES or attempt == PUT_ATTEMPTS:
                break
            _sleep(attempt, response.headers.get("Retry-After"))
            if response.status_code != 429 and settled is not None and settled():
                return None
        if response.status_code >= 400:
            raise self._error(response, what)
        return response

    def _error(self, response: requests.Response, what: str) -> Exception:
        status = response.status_code
        detail = _message(response)
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


class ZenodoBackend:
    """Publishes an UploadPlan into one Zenodo deposition (see runner.Backend)."""

    def __init__(self, settings: ZenodoSettings, cache: HashCache) -> None:
        self.settings = settings
        self.cache = cache
        self.client = ZenodoClient(settings.api_url, settings.token, pool_size=settings.n_jobs + 2)
        self.target: ZenodoDeposition | None = None  # the draft that receives the files
        self.record: ZenodoDeposition | None = None  # a published record that needs a new version
        self.published: ZenodoDeposition | None = None
        self._remote: dict[str, RemoteFile] = {}
        self._has_work = False

    def check_access(self, plan: UploadPlan, *, dry_run: bool) -> None:
        problems = [f"'{f.name}': Zenodo has no folders; upload method 'catalog' or 'all' needs plain file names"
                    for d in plan.datasets for f in d.all_files if "/" in f.name]
        if problems:
            raise InputError(problems)
        deposition_id = self.settings.deposition_id
        if deposition_id is None:
            self.client.check_token()
            return
        found = self.client.deposition(deposition_id)
        if not found.submitted:
            self.target = found
        else:
            drafts = [i for i in self.client.unpublished_versions(found.conceptrecid) if i != found.id]
            if drafts:
                self.target = self.client.deposition(drafts[0])
            else:
                self.record = found
        self._remote = dict((self.target or found).files)

    def decide(self, plan: UploadPlan, *, restart: bool) -> list[Operation]:
        dataset = plan.datasets[0]
        ops: list[Operation] = []
        if restart:
            ops += [Operation(Action.DELETE, dataset, None, name, "--restart: empty the draft first",
                              remote={"size": str(remote.size)}) for name, remote in self._remote.items()]
        for file in dataset.all_files:
            op = Operation(Action.UPLOAD, dataset, file, file.name, "new", is_catalog=file is dataset.catalog)
            remote = None if restart else self._remote.get(file.name)
            if remote is not None:
                md5 = self._md5(file)
                op.checksum = f"md5:{md5}"
                if md5 == remote.md5 and remote.size == file.size and not self.settings.overwrite:
                    op.action, op.reason = Action.SKIP, "unchanged (same MD5)"
                else:
                    op.action = Action.REPLACE
                    op.reason = "--overwrite" if md5 == remote.md5 else "content differs"
            ops.append(op)
        self._check_limits(ops)
        self._has_work = any(op.action is not Action.SKIP for op in ops)
        return ops

    def _check_limits(self, ops: list[Operation]) -> None:
        planned = {op.destination: op.size for op in ops if op.file is not None}
        deleted = {op.destination for op in ops if op.action is Action.DELETE}
        staying = {name: f.size for name, f in self._remote.items() if name not in deleted and name not in planned}
        final = staying | planned
        problems = [f"'{name}' is {size:,d} bytes; Zenodo takes at most {MAX_BYTES:,d} per file"
                    for name, size in planned.items() if size > MAX_BYTES]
        if len(final) > MAX_FILES:
            problems.append(f"the record would hold {len(final)} files ({len(staying)} already there); Zenodo allows"
                            f" {MAX_FILES}: zip small files together, or use --restart to drop old ones")
        if sum(final.values()) > MAX_BYTES:
            problems.append(f"the record would hold {sum(final.values()):,d} bytes; Zenodo allows {MAX_BYTES:,d}"
                            " (ask Zenodo for more, or split the dataset)")
        if problems:
            raise InputError(problems)

    def begin(self) -> None:
        if self.record is not None and not self._has_work and not self.settings.metadata:
            return  # the published record already holds these files: no new version for nothing
        if self.target is None and self.record is not None:
            self.target = self.client.new_version(self.record)
        elif self.target is None:
            self.target = self.client.create(self.settings.metadata)
            return
        if self.settings.metadata:
            self.target = self.client.update_metadata(self.target, self.settings.metadata)

    def transfer(self, op: Operation, progress: Callable[[int], None], stop: threading.Event) -> None:
        assert self.target is not None
        if op.action is Action.DELETE:
            self.client.delete_file(self.target, op.destination)
            return
        file = op.file
        assert file is not None
        stored, sent = self.client.put_file(self.target, file, progress, stop)
        op.checksum = f"md5:{sent}"
        if stored != sent:
            raise FileUploadError(f"Zenodo stored MD5 {stored}, the bytes sent have {sent}", retryable=True)
        if file.unchanged_on_disk():  # the bytes sent are the file's bytes: no second read to hash it
            self.cache.store(file, {"md5": sent})
        else:
            raise FileUploadError("the file changed on disk during the upload; re-run to upload its new content")

    def finish(self, ops: list[Operation], *, ok: bool) -> list[str]:
        if self.target is None:
            record = self.record
            return [f"the published record {record.links.get('html', record.id)} already holds these files;"
                    " no new version was opened"] if record else []
        if self.settings.publish and ok:
            try:
                self.published = self.client.publish(self.target)
            except UploaderError as refused:
                raise NotPublished(f"every file is in the draft {self.target.links.get('html')}, but {refused};"
                                   " add what is missing (--title, --creators, --description) and re-run with"
                                   " --publish, or publish it on the web page") from None
            links = self.published.links
            return [f"published: {links.get('record_html') or links.get('latest_html') or links.get('html')}",
                    f"DOI: {self.published.doi} ({links.get('doi', '')})"]
        lines = [f"draft: {self.target.links.get('html')} (review it there, then publish)"]
        if self.settings.publish:
            lines.append("not published: some files failed")
        return lines

    def cancel(self) -> None:
        """In-flight PUTs stop at their next read (the stop event); nothing else to undo."""

    def _md5(self, file: LocalFile, stop: threading.Event | None = None) -> str:
        try:
            return digests(file, ("md5",), self.cache, stop)["md5"]
        except Cancelled:
            raise FileUploadError("interrupted") from None


class _CountingReader:
    """A file body for requests: reads ahead in a thread that computes the MD5, reports progress, stops when asked.

    Hashing in the read-ahead thread (hashlib releases the GIL) overlaps it with
    sending: hashed in line, the MD5 alone made an upload ~1.8 x slower than curl.
    """

    def __init__(self, handle: BinaryIO, size: int, progress: Callable[[int], None], stop: threading.Event) -> None:
        self.handle, self.size, self.progress, self.stop = handle, size, progress, stop
        self.sent = 0
        self._md5 = hashlib.md5()
        self._chunks: queue.Queue[bytes | OSError] = queue.Queue(maxsize=READ_AHEAD_BLOCKS)
        self._closed = threading.Event()
        self._left = b""
        self._reader = threading.Thread(target=self._read_ahead, name="read-ahead", daemon=True)
        self._reader.start()

    def __len__(self) -> int:
        return self.size

    def read(self, amount: int = -1) -> bytes:
        if self.stop.is_set():
            raise OSError("upload interrupted")
        if not self._left:
            item = self._next_block()
            if isinstance(item, OSError):
                raise item
            self._left = item
        if amount is None or amount < 0 or amount >= len(self._left):
            data, self._left = self._left, b""  # the usual case: whole blocks, no copy
        else:
            data, self._left = self._left[:amount], self._left[amount:]
        self.sent += len(data)
        self.progress(len(data))
        return data

    def md5(self) -> str:
        """The MD5 of everything read (once the body has been read to its end)."""
        self._reader.join()
        return self._md5.hexdigest()

    def close(self) -> None:
        """Stop reading ahead (after a failed request), so the thread and its buffers go away."""
        self._closed.set()
        self._reader.join()

    def _read_ahead(self) -> None:
        while not (self._closed.is_set() or self.stop.is_set()):
            try:
                data = self.handle.read(BLOCK_SIZE)
            except OSError as exc:
                self._put(exc)
                return
            self._md5.update(data)
            if not self._put(data) or not data:
                return

    def _next_block(self) -> bytes | OSError:
        # Never wait for good: the read-ahead thread stops without a last block when the run is interrupted.
        while True:
            try:
                return self._chunks.get(timeout=0.2)
            except queue.Empty:
                if self.stop.is_set() or self._closed.is_set():
                    return OSError("upload interrupted")

    def _put(self, item: bytes | OSError) -> bool:
        while not (self._closed.is_set() or self.stop.is_set()):
            try:
                self._chunks.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False


def _adapter_class() -> Any:
    from requests.adapters import HTTPAdapter

    class BigBlocks(HTTPAdapter):
        """Send request bodies in 1 MiB blocks instead of http.client's 16 KiB (fewer Python calls per GB)."""

        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["blocksize"] = BLOCK_SIZE
            super().init_poolmanager(*args, **kwargs)

    return BigBlocks


def _Adapter(**kwargs: Any) -> Any:
    return _adapter_class()(**kwargs)


def _sleep(attempt: int, retry_after: str | None) -> None:
    delay = min(60.0, 0.5 * 2 ** (attempt - 1)) * (0.5 + random.random())
    if retry_after:
        with contextlib.suppress(ValueError):  # an HTTP date instead of seconds: keep the backoff
            delay = max(delay, min(300.0, float(retry_after)))
    time.sleep(delay)


def _message(response: requests.Response) -> str:
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

"""The calls of Zenodo's deposit API, and the file PUT: the only code that talks to Zenodo (through transport.py).

A POST, a file PUT or a publish may have been carried out although its
answer was lost, so before one is sent again the client looks at what the
last attempt left (a search, a listing, the deposition's state) and uses
that.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from uploader.errors import FileUploadError, RemoteError, UploaderError, UsageError
from uploader.local.plan import LocalFile
from uploader.zenodo import normal
from uploader.zenodo.body import HashingBody
from uploader.zenodo.pacing import Interrupted, ZenodoTiming
from uploader.zenodo.records import DepositionFile, ZenodoDeposition, ZenodoToken
from uploader.zenodo.records_api import RecordsApi
from uploader.zenodo.transport import (
    NOT_CARRIED_OUT,
    RETRY_STATUSES,
    OpenDraftExists,
    ZenodoTransport,
    describe,
    error_message,
)

if TYPE_CHECKING:
    import requests


class ZenodoClient:
    """The deposit API's calls, with errors turned into one-line UploaderErrors."""

    def __init__(self, api_url: str, token: ZenodoToken, pool_size: int, timing: ZenodoTiming) -> None:
        self.http = ZenodoTransport(api_url, token, pool_size, timing)
        self.host, self.timing, self.stop = self.http.host, timing, self.http.stop
        self.records = RecordsApi(self.http)

    # -- depositions ------------------------------------------------------------------------

    def deposition(self, deposition_id: int) -> ZenodoDeposition:
        response = self.http.call("GET", f"/deposit/depositions/{deposition_id}", what=f"deposition {deposition_id}")
        return ZenodoDeposition.from_json(response.json())

    def latest_version(self, record: ZenodoDeposition) -> ZenodoDeposition:
        """The concept's latest published version (a newversion starts from its files, whatever id is given)."""
        link = record.links.get("latest")
        if not link:
            return record
        what = f"the latest version of record {record.id}"
        response = self.http.call("GET", link, what=what, allow_redirects=False)  # each hop takes its turn
        if response.is_redirect:
            response = self.http.call("GET", response.headers["Location"], what=what)
        latest_id = int(response.json()["id"])
        return record if latest_id == record.id else self.deposition(latest_id)

    def concept_drafts(self, conceptrecid: str) -> list[ZenodoDeposition]:
        """The concept's unpublished drafts, newest first, as far as the search index shows them (it lags)."""
        return [d for d in self._search(f"conceptrecid:{conceptrecid}", "drafts of this record")
                if not d.submitted]

    def drafts_titled(self, title: str) -> list[ZenodoDeposition]:
        """Your never-published drafts with this title as Zenodo stores it, newest first (the search index lags)."""
        stored = normal.text(title)
        escaped = stored.replace("\\", "\\\\").replace('"', '\\"')
        found = self._search(f'title:"{escaped}"', f"drafts titled '{title}'")
        return [d for d in found if not d.submitted and not d.conceptdoi and normal.text(d.title) == stored]

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
        return self.http.post("/deposit/depositions", "creating a deposition", made_already,
                          json={"metadata": metadata} if metadata else {})

    def new_version(self, record: ZenodoDeposition,
                    made_already: Callable[[], ZenodoDeposition | None]) -> ZenodoDeposition:
        """Open a new version of a published record and return its draft (holding the latest version's files).

        Zenodo refuses it when the concept's open draft holds files: then `made_already` finds that draft.
        """
        try:
            answer = self.http.post(f"/deposit/depositions/{record.id}/actions/newversion", "opening a new version",
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
        response = self.http.call("POST", f"/deposit/depositions/{record.id}/actions/edit", what="opening an edit")
        return ZenodoDeposition.from_json(response.json())

    def discard_edit(self, record: ZenodoDeposition) -> None:
        """Close a metadata edit this run opened, the published metadata unchanged (a failed edit is not left open)."""
        self.http.call("POST", f"/deposit/depositions/{record.id}/actions/discard", what="closing the edit")

    def update_metadata(self, deposition: ZenodoDeposition, metadata: dict[str, Any]) -> ZenodoDeposition:
        """PUT the whole metadata (Zenodo replaces it: every field that should stay must be in `metadata`)."""
        response = self.http.call("PUT", f"/deposit/depositions/{deposition.id}", json={"metadata": metadata},
                              what="updating the metadata")
        return ZenodoDeposition.from_json(response.json())

    def publish(self, deposition: ZenodoDeposition) -> ZenodoDeposition:
        """Publish, waiting for a slow publish (it may outlast the answer) rather than posting it again."""
        path = f"/deposit/depositions/{deposition.id}/actions/publish"
        try:
            return self.http.post(path, "publishing", lambda: self._published(deposition, wait=True),
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
            self.http.wait(min(self.timing.backoff_delay(attempt), 10.0, max(0.0, deadline - time.monotonic())))
        raise AssertionError("unreachable")

    # -- files --------------------------------------------------------------------------------

    def files(self, deposition: ZenodoDeposition, *, earn: bool = True) -> list[DepositionFile]:
        answer = self.http.call("GET", f"/deposit/depositions/{deposition.id}/files", what="the file list",
                            earn=earn).json()
        return [DepositionFile.from_json(item) for item in answer]

    def delete_file(self, deposition: ZenodoDeposition, file_id: str, name: str) -> None:
        """Delete a draft's file by its id; whatever the answer says, a listing decides whether it is gone."""
        failure = ""
        try:
            response = self.http.call("DELETE", f"/deposit/depositions/{deposition.id}/files/{file_id}",
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
                self.http.pacer.wait_turn(stop)
            except Interrupted:
                raise FileUploadError("interrupted") from None
            outcome, body = self._put_once(url, file, progress, stop)
            if stop.is_set():
                raise FileUploadError("interrupted")
            if not isinstance(outcome, Exception):
                self.http.heed_limits(outcome)
                if outcome.status_code in (200, 201):
                    self.http.budget.earn()
                    return dict(outcome.json()), body.md5()
                if outcome.status_code not in RETRY_STATUSES:
                    raise _refused_upload(outcome)
            carried_out = isinstance(outcome, Exception) or outcome.status_code not in NOT_CARRIED_OUT
            if carried_out and body.sent == file.size and self._landed(deposition, file, body.md5()):
                return {"key": file.name, "size": file.size, "checksum": f"md5:{body.md5()}"}, body.md5()
            if not self.http.may_retry(attempt, outcome, stop):
                raise FileUploadError(f"gave up after {attempt} attempt(s): {describe(outcome)}")
        raise AssertionError("unreachable")

    def _put_once(self, url: str, file: LocalFile, progress: Callable[[int], None],
                  stop: threading.Event) -> tuple[requests.Response | Exception, HashingBody]:
        with open(file.path, "rb") as handle:
            body = HashingBody(handle, file.size, progress, stop)
            try:
                response = self.http.session.put(url, data=body, timeout=self.http.timeout(self.timing.upload_timeout),
                                            headers={"Content-Type": "application/octet-stream",
                                                     "Content-Length": str(file.size)})
            except self.http.requests.RequestException as exc:
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

    def _search(self, query: str, what: str) -> list[ZenodoDeposition]:
        response = self.http.call("GET", "/deposit/depositions", what=what, search=True,
                              params={"q": query, "allversions": "true", "size": 100})
        found = [ZenodoDeposition.from_json(item) for item in response.json()]
        return sorted(found, key=lambda d: d.id, reverse=True)

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

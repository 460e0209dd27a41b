"""Whose is an unfinished multipart upload? Leases kept on the store, so that any run can resume it.

A run that starts multipart uploads holds a lease: a small object,
`<prefix>/.cartload-uploader/runs/<run id>.json`, naming the run, its host
and process, and every upload it started, with what the store does not keep
for an unfinished upload (the file's SHA-256, its size, the part size). The
run rewrites it every LEASE_REFRESH seconds while it lives; the store's own
clock (the lease's Last-Modified against the answer's Date) tells how fresh
it is, whatever the clocks of the machines involved.

- A held, fresh lease is another live run: its uploads are left alone, and a
  file it is uploading fails here with a clear message (--take-over resumes
  it anyway).
- A released lease (its run was interrupted cleanly), a stale one (no
  heartbeat for LEASE_STALE), or one of this very host whose process is gone
  (killed) hands its uploads over: an upload of the same content and part
  size is resumed, any other is aborted.
- An upload no lease names (another tool's, or one whose lease is gone) is
  aborted once it is older than ABORT_AFTER days; --abort-incomplete-uploads
  aborts every one that no live run holds.
- An upload of the write-check key that older versions sent (and aborted
  seconds later, unless that run died first) is aborted once it is older
  than WRITE_CHECK_STALE seconds: no lease names it, and no live run holds
  one that long.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from uploader.errors import FileUploadError
from uploader.s3.own_keys import LEASES_DIR, WRITE_CHECK_NAME, is_tool_key

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

LEASE_REFRESH = float(os.environ.get("CARTLOAD_UPLOADER_LEASE_REFRESH", "60"))  # seconds between heartbeats
LEASE_STALE = float(os.environ.get("CARTLOAD_UPLOADER_LEASE_STALE", "600"))  # no heartbeat for this long: dead
ABORT_AFTER = float(os.environ.get("CARTLOAD_UPLOADER_ABORT_AFTER_DAYS", "7"))  # days, for uploads no lease names
WRITE_CHECK_STALE = float(os.environ.get("CARTLOAD_UPLOADER_WRITE_CHECK_STALE", "300"))  # seconds
WRITE_CHECK = WRITE_CHECK_NAME  # the key older versions' write check started an upload of
log = logging.getLogger("uploader")


@dataclass(frozen=True)
class UploadRecord:
    """What a lease says of one multipart upload: enough to know whether it holds this file's parts."""

    key: str
    upload_id: str
    sha256: str
    size: int
    part_size: int


@dataclass
class Lease:
    """A run's lease, as stored."""

    run: str
    host: str
    pid: int
    released: bool = False
    uploads: dict[str, UploadRecord] = field(default_factory=dict)  # by upload id

    def to_json(self) -> bytes:
        document = asdict(self)
        document["uploads"] = list(document["uploads"].values())
        return json.dumps(document, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Lease:
        document = json.loads(data)
        uploads = {item["upload_id"]: UploadRecord(**item) for item in document.get("uploads", [])}
        return cls(str(document["run"]), str(document.get("host", "?")), int(document.get("pid", 0)),
                   bool(document.get("released")), uploads)


@dataclass
class Holder:
    """Another run's lease and how it stands."""

    lease: Lease
    key: str  # the lease object's key
    live: bool  # held and fresh: that run is uploading right now

    def describe(self) -> str:
        return f"run {self.lease.run} on {self.lease.host} (pid {self.lease.pid})"


class Leases:
    """This run's lease, and what the store holds of other runs' unfinished uploads under the destination."""

    def __init__(self, client: S3Client, bucket: str, prefix: str, *, take_over: bool = False) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.take_over = take_over
        self.ours = Lease(uuid.uuid4().hex[:12], socket.gethostname(), os.getpid())
        self._our_key = self._lease_key(self.ours.run)
        self._lock = threading.Lock()
        self._written = False
        self._stopped = threading.Event()
        self._holders: dict[str, Holder] = {}  # by upload id: the runs that started them
        self._pending: dict[str, list[dict[str, Any]]] = {}  # key -> unfinished uploads found on the store
        self._handed_over: dict[str, set[str]] = {}  # a dead run's lease -> its uploads not yet finished

    # -- at the start of a run -------------------------------------------------------------------

    def survey(self, abort_all: bool = False) -> None:
        """Read the other runs' leases and the unfinished uploads; abort those nobody can resume."""
        holders = [holder for holder in self._read_leases() if holder.lease.run != self.ours.run]
        self._holders = {upload_id: holder for holder in holders for upload_id in holder.lease.uploads}
        uploads, write_checks = self._unfinished_uploads()
        for check in write_checks:
            if _older_than(check.get("Initiated"), days=WRITE_CHECK_STALE / 86400):
                self._abort(check["Key"], check["UploadId"], "", quiet=True)
        for upload in uploads:
            holder = self._holders.get(upload["UploadId"])
            if holder is not None and holder.live and not self.take_over:
                self._pending.setdefault(upload["Key"], []).append(upload)  # another live run is sending it
                continue
            if holder is None and (abort_all or _older_than(upload.get("Initiated"), days=ABORT_AFTER)):
                self._abort(upload["Key"], upload["UploadId"], "no run holds it")
                continue
            if holder is not None and abort_all:
                self._abort(upload["Key"], upload["UploadId"], "--abort-incomplete-uploads")
                continue
            self._pending.setdefault(upload["Key"], []).append(upload)
        unfinished = {upload["UploadId"] for upload in uploads}
        for holder in holders:
            if not holder.live:  # its lease goes once every upload it names is finished or gone
                self._handed_over[holder.key] = set(holder.lease.uploads) & unfinished
        self._remove_spent_leases()

    # -- for each multipart upload -----------------------------------------------------------------

    def claim(self, key: str, sha256: str, size: int, part_size: int) -> UploadRecord | None:
        """An unfinished upload of exactly this content to resume (now ours), or None to start a new one.

        Raises FileUploadError when another live run is uploading this key (unless --take-over).
        """
        with self._lock:
            own = next((record for record in self.ours.uploads.values() if record.key == key), None)
        if own is not None:  # an earlier attempt of this run: its stored parts are checked and kept
            if _may_hold(own, sha256, size, part_size):
                return own
            self._abort(key, own.upload_id, "the file changed since")
            self.finished(own.upload_id)
        resumable = None
        for upload in self._pending.pop(key, []):
            holder = self._holders.get(upload["UploadId"])
            record = holder.lease.uploads.get(upload["UploadId"]) if holder else None
            if holder is not None and holder.live and not self.take_over:
                raise FileUploadError(f"another upload to this prefix is running: {holder.describe()} is sending"
                                      " this file right now; let it finish (or pass --take-over if it is gone)")
            if record is None:
                continue  # not ours to resume (another tool's): aborted once it is old
            if resumable is None and _may_hold(record, sha256, size, part_size):
                resumable = record
            else:
                reason = "another part size" if record.part_size != part_size else "the file changed since"
                self._abort(key, record.upload_id, reason)
        if resumable is not None:
            self.started(resumable)
        return resumable

    def started(self, record: UploadRecord) -> None:
        """Name the upload in our lease before its first part is sent: a killed run loses parts in flight only."""
        with self._lock:
            self.ours.uploads[record.upload_id] = record
            self._write()
        self._keep_fresh()

    def finished(self, upload_id: str) -> None:
        """Completed or aborted: no longer ours to name (written with the next heartbeat or at the end)."""
        with self._lock:
            self.ours.uploads.pop(upload_id, None)
            for remaining in self._handed_over.values():
                remaining.discard(upload_id)
            late = self._stopped.is_set() and self._written and not self.ours.uploads
        if late:  # finished after the run released its lease (a send still winding down): nothing left to name
            self.release()

    # -- at the end ----------------------------------------------------------------------------------

    def release(self) -> None:
        """Hand our unfinished uploads to the next run at once (or, with none left, remove the lease)."""
        self._stopped.set()
        self._remove_spent_leases()
        with self._lock:
            if not self._written:
                return
            if self.ours.uploads:
                self.ours.released = True
                self._write()
            else:
                self._delete(self._our_key)
                self._written = False

    def kept(self) -> list[UploadRecord]:
        """The unfinished uploads this run leaves for the next one."""
        with self._lock:
            return list(self.ours.uploads.values())

    # -- the store -------------------------------------------------------------------------------------

    def _remove_spent_leases(self) -> None:
        """Dead runs' leases whose uploads are all finished or gone name nothing left to resume."""
        with self._lock:
            spent = [key for key, remaining in self._handed_over.items() if not remaining]
            for key in spent:
                del self._handed_over[key]
        for key in spent:
            self._delete(key)

    def _lease_key(self, run: str) -> str:
        return "/".join(part for part in (self.prefix, LEASES_DIR, f"{run}.json") if part)

    def _read_leases(self) -> list[Holder]:
        prefix = "/".join(part for part in (self.prefix, LEASES_DIR) if part) + "/"
        holders = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                try:
                    answer = self.client.get_object(Bucket=self.bucket, Key=item["Key"])
                    lease = Lease.from_json(answer["Body"].read())
                except Exception as exc:  # a lease we cannot read names nothing we can resume
                    log.warning("warning: lease %s is unreadable (%s); its uploads are treated as no run's",
                                item["Key"], exc)
                    continue
                fresh = _age_on_the_stores_clock(answer) < LEASE_STALE
                holders.append(Holder(lease, item["Key"], live=not lease.released and fresh and not _gone(lease)))
        return holders

    def _unfinished_uploads(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The unfinished uploads under the prefix: of dataset files, and of the old write-check key."""
        prefix = f"{self.prefix}/" if self.prefix else ""
        found: list[dict[str, Any]] = []
        write_checks: list[dict[str, Any]] = []
        for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                if upload["Key"].rsplit("/", 1)[-1] == WRITE_CHECK:
                    write_checks.append(dict(upload))
                elif not is_tool_key(upload["Key"], self.prefix):
                    found.append(dict(upload))
        return found, write_checks

    def _abort(self, key: str, upload_id: str, reason: str, *, quiet: bool = False) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except Exception as exc:  # the upload itself goes on; left-over parts only cost storage
            log.warning("warning: could not abort the unfinished upload of %s (%s); an"
                        " AbortIncompleteMultipartUpload lifecycle rule on the bucket removes it", key, exc)
            return
        if not quiet:
            log.warning("note: aborted an unfinished upload of %s (%s); the file is sent whole", key, reason)

    def _write(self) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._our_key, Body=self.ours.to_json(),
                               ContentType="application/json")
        self._written = True

    def _delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            log.warning("warning: could not remove the lease %s (%s)", key, exc)

    def _keep_fresh(self) -> None:
        """Rewrite our lease every LEASE_REFRESH seconds until release(): other runs see we are alive."""
        if getattr(self, "_heartbeat", None) is not None:
            return
        self._heartbeat = threading.Thread(target=self._beat, name="lease", daemon=True)
        self._heartbeat.start()

    def _beat(self) -> None:
        while not self._stopped.wait(LEASE_REFRESH):
            try:
                with self._lock:
                    if not self._stopped.is_set():
                        self._write()
            except Exception as exc:  # the next beat tries again; a lease that goes stale only invites a take-over
                log.warning("warning: could not refresh this run's lease (%s)", exc)


def _may_hold(record: UploadRecord, sha256: str, size: int, part_size: int) -> bool:
    """Whether an unfinished upload may hold parts of this file: its size and part size, and its SHA-256 where
    both are known (an upload that hashes what it sends knows it only at the end). Each part it holds is
    checked against the local part's MD5 before it is kept."""
    same_hash = not sha256 or not record.sha256 or record.sha256 == sha256
    return (record.size, record.part_size) == (size, part_size) and same_hash


def _gone(lease: Lease) -> bool:
    """A lease of this very host whose process is no longer running (killed): its uploads need not wait."""
    if lease.host != socket.gethostname() or lease.pid <= 0:
        return False  # another machine: only the heartbeat tells
    try:
        os.kill(lease.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # running, as another user
        return False
    return False


def _age_on_the_stores_clock(answer: Any) -> float:
    """Seconds since the object was written, by the store's clock (Last-Modified against the answer's Date)."""
    headers = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    try:
        written = parsedate_to_datetime(headers["last-modified"])
        now = parsedate_to_datetime(headers["date"])
    except (KeyError, TypeError, ValueError):
        return float("inf")  # no clock to go by: treated as stale
    return (now - written).total_seconds()


def _older_than(initiated: Any, days: float) -> bool:
    """Whether an upload's Initiated time (as the store gave it) is more than `days` ago."""
    try:
        when = datetime.fromisoformat(str(initiated).replace("Z", "+00:00"))
    except ValueError:
        try:
            when = parsedate_to_datetime(str(initiated))
        except (TypeError, ValueError):
            return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc) - when > timedelta(days=days)

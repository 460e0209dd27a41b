"""The S3 backend: the runner's view of a bucket (AWS, MinIO, SeaweedFS, Ceph, ...).

What only S3 knows stays here: which ETags are MD5s (single PUTs), which are
the MD5 of the part MD5s (multipart uploads with our part size), and which
tell nothing (another part size, SSE-KMS); the SHA-256 kept as
`x-amz-meta-sha256`; and the headers a store must keep.

Verification: a single PUT is confirmed by the ETag it returns (the server's
MD5 of what it stored); a multipart object, the catalog, and the first object
of each Content-Type by a HEAD (size, SHA-256, Content-Type, no
Content-Encoding): a store that drops headers drops them for every object.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from uploader.backend import RemoteFile, Stored
from uploader.content_types import content_type
from uploader.errors import FileUploadError, RemoteError
from uploader.hashing import multipart_etag_name, part_md5_name
from uploader.operations import Action, Operation, Status
from uploader.plan import Dataset, LocalFile, UploadPlan
from uploader.s3.client import (
    AUTH_CODES,
    S3Settings,
    as_file_upload_error,
    error_message,
    make_client,
    uploader_errors_for,
)
from uploader.s3.destination import S3Destination
from uploader.s3.leases import Leases
from uploader.s3.transport import Sent, make_transport
from uploader.s3.writer import ObjectWriter, is_multipart, part_size

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

SHA256_META = "sha256"
PROBE_KEY = ".cartload-uploader-write-check"
RELEASE_WAIT_SECONDS = 3
log = logging.getLogger("uploader")


class S3Backend:
    """Publishes an UploadPlan under an S3Destination (see backend.Backend)."""

    restart_empties_remote = False  # --restart re-sends the plan's files; other objects stay
    catalogs_go_live = True  # the viewer reads catalog.yaml the moment it is in the bucket

    def __init__(self, destination: S3Destination, settings: S3Settings) -> None:
        self.s3_dir = destination
        self.settings = settings
        self.client: S3Client = make_client(settings)
        transport = make_transport(self.client, destination.bucket, connections=settings.n_jobs)
        self.leases = Leases(self.client, destination.bucket, destination.prefix, take_over=settings.take_over)
        self.writer = ObjectWriter(self.client, destination.bucket, transport, self.leases)
        # Multipart uploads and sends verified by a HEAD wait for their answers in these threads.
        self._waiting = ThreadPoolExecutor(settings.n_jobs, thread_name_prefix="s3-send")
        self._bucket_there: Future[None] | None = None
        self._ready_to_write: Future[None] | None = None
        # A HEAD of the first object of each Content-Type proves the store keeps our headers; until it
        # has, the others of that type wait for it (the proof), then go out verified by their ETags.
        self._proofs: dict[str, Future[Stored]] = {}
        self._proofs_lock = threading.Lock()

    # -- what is there --------------------------------------------------------------------

    def destination(self, dataset: Dataset, name: str) -> str:
        return self.s3_dir.key(dataset, name)

    def digests_to_send(self, file: LocalFile) -> tuple[str, ...]:
        return "sha256", part_md5_name(part_size(file.size))

    def check_access(self, plan: UploadPlan, *, dry_run: bool) -> None:
        """Checks that go on beside the first listing (round trips on a WAN): the bucket, then writing."""
        self._bucket_there = self._waiting.submit(self._check_bucket)
        if not dry_run:
            self._ready_to_write = self._waiting.submit(self._prepare_to_write)

    def remote_files(self, dataset: Dataset) -> dict[str, RemoteFile]:
        listing = self._list(dataset)
        if self._bucket_there is not None:
            self._bucket_there.result()  # some stores list a missing bucket as empty
        return listing

    def _check_bucket(self) -> None:
        bucket = self.s3_dir.bucket
        with uploader_errors_for(f"bucket '{bucket}'", self.settings):
            self.client.head_bucket(Bucket=bucket)

    def _list(self, dataset: Dataset) -> dict[str, RemoteFile]:
        prefix = self.s3_dir.dataset_prefix(dataset)
        found: dict[str, RemoteFile] = {}
        with uploader_errors_for(f"listing {self.s3_dir.uri(prefix)}", self.settings):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.s3_dir.bucket,
                                                                          Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    size, etag = item["Size"], item.get("ETag", "").strip('"')
                    found[item["Key"]] = RemoteFile(item["Key"], size, _digests_of_etag(etag, size))
        return found

    def digests_on_request(self, remote: RemoteFile) -> dict[str, str]:
        with uploader_errors_for(f"reading {remote.name}", self.settings):
            head = self.client.head_object(Bucket=self.s3_dir.bucket, Key=remote.name)
        stored = head.get("Metadata", {}).get(SHA256_META)
        return {"sha256": stored} if stored else {}

    def read(self, remote: RemoteFile) -> bytes:
        with uploader_errors_for(f"reading {self.s3_dir.uri(remote.name)}", self.settings):
            return bytes(self.client.get_object(Bucket=self.s3_dir.bucket, Key=remote.name)["Body"].read())

    def check_plan(self, ops: list[Operation]) -> None:
        """Any plan fits in a bucket."""

    # -- writing --------------------------------------------------------------------------

    def begin(self, ops: list[Operation]) -> bool:
        """Before the first write: the write probe started at check_access must have passed."""
        if any(op.action is not Action.SKIP for op in ops) and self._ready_to_write is not None:
            self._ready_to_write.result()  # a refusal stops the run before gigabytes are sent
        return False

    def _prepare_to_write(self) -> None:
        """Prove write access and learn whose the unfinished uploads are, side by side with the listing."""
        assert self._bucket_there is not None
        self._bucket_there.result()  # a write to a missing bucket may create it on some stores
        with ThreadPoolExecutor(1, thread_name_prefix="leases") as pool:
            survey = pool.submit(self._survey_uploads)
            self._probe_write()
            survey.result()

    def _survey_uploads(self) -> None:
        with uploader_errors_for(f"listing unfinished uploads under {self.s3_dir.uri()}", self.settings):
            self.leases.survey(abort_all=self.settings.abort_incomplete)

    def start_send(self, op: Operation, digests: Mapping[str, str], progress: Callable[[int], None],
                   stop: threading.Event) -> Future[Stored]:
        """A small file goes out without a thread of ours once its Content-Type is proven; the rest wait in one."""
        file = op.file
        assert file is not None
        parts = part_size(file.size)
        part_md5s = digests[part_md5_name(parts)].split(",")
        kind = content_type(file.name)
        params: dict[str, Any] = {"ContentType": kind, "Metadata": {SHA256_META: digests["sha256"]}}
        if op.is_catalog:
            return self._waiting.submit(self._send_and_check, op, params, part_md5s, progress, stop, True)
        with self._proofs_lock:
            proof = self._proofs.get(kind)
            if proof is None or (proof.done() and proof.exception() is not None):
                proof = self._waiting.submit(self._send_and_check, op, params, part_md5s, progress, stop, True)
                self._proofs[kind] = proof
                return proof
        if not proof.done():
            stored: Future[Stored] = Future()
            proof.add_done_callback(lambda _: _forward(self.start_send(op, digests, progress, stop), stored))
            return stored
        if is_multipart(file.size):
            return self._waiting.submit(self._send_and_check, op, params, part_md5s, progress, stop, False)
        stored = Future()
        sending = self.writer.start_single(file, op.destination, params, part_md5s[0], progress)
        sending.add_done_callback(lambda sent: self._settle(op, sent, stored))
        return stored

    def _settle(self, op: Operation, sending: Future[Sent], stored: Future[Stored]) -> None:
        """In the transport's thread: what a single PUT stored, by its ETag (a HEAD where the ETag is no MD5)."""
        assert op.file is not None
        try:
            sent = sending.result()
        except Exception as exc:
            stored.set_exception(as_file_upload_error(exc))
            return
        if sent.encryption.startswith("aws:kms"):  # SSE-KMS: the ETag is no MD5; only a HEAD tells
            headed = self._waiting.submit(self._stored_as_headed, op.destination, op.file)
            headed.add_done_callback(lambda done: _copy_outcome(done, stored))
            return
        stored.set_result(Stored(op.file.size, {multipart_etag_name(part_size(op.file.size)): sent.etag}))

    def _send_and_check(self, op: Operation, params: dict[str, Any], part_md5s: list[str],
                        progress: Callable[[int], None], stop: threading.Event, head: bool) -> Stored:
        """Send and wait; what a HEAD shows when asked for (or the ETag is no MD5), else the ETag."""
        file = op.file
        assert file is not None
        try:
            sent = self.writer.put(file, op.destination, params, part_md5s, params["Metadata"][SHA256_META],
                                   progress, stop)
        except Exception as exc:
            raise as_file_upload_error(exc) from None
        if head or sent.encryption.startswith("aws:kms"):
            return replace(self._stored_as_headed(op.destination, file), resumed=sent.resumed)
        return Stored(file.size, {multipart_etag_name(part_size(file.size)): sent.etag}, resumed=sent.resumed)

    def delete(self, op: Operation) -> None:
        try:
            self.client.delete_object(Bucket=self.s3_dir.bucket, Key=op.destination)
        except Exception as exc:
            raise as_file_upload_error(exc) from None

    def finish(self, ops: list[Operation], *, ok: bool) -> list[str]:
        if self._ready_to_write is not None:
            self._ready_to_write.exception()  # a run with nothing to write still lets the probe clean up
        self.leases.release()
        published = [op.destination for op in ops if op.is_catalog and op.status in (Status.UPLOADED, Status.SKIPPED)]
        return [f"catalog: {self.s3_dir.uri(key)}" for key in published] + self._kept_uploads()

    def cancel(self) -> None:
        """Stop what is in flight; keep the unfinished uploads, and hand them to the next run at once."""
        self.writer.cancel()
        # Releasing the lease is a request: a dead endpoint must not hold the interrupt (stale after a while).
        releasing = threading.Thread(target=self._release_quietly, name="release", daemon=True)
        releasing.start()
        releasing.join(timeout=RELEASE_WAIT_SECONDS)
        for line in self._kept_uploads():
            log.warning("%s", line)

    def _release_quietly(self) -> None:
        try:
            self.leases.release()
        except Exception as exc:  # the lease goes stale instead, and the next run takes its uploads then
            log.warning("warning: could not release this run's lease (%s)", exc)

    def _kept_uploads(self) -> list[str]:
        return [f"kept: the unfinished upload of {record.key} ({record.size:,d} bytes) stays on the store;"
                " the same command continues it" for record in self.leases.kept()]

    def resume_options(self) -> list[str]:
        return []  # the same command resumes: S3 keys are the destination

    # -- helpers --------------------------------------------------------------------------

    def _probe_write(self) -> None:
        # A multipart upload that is started, given one tiny part with a Content-MD5, and aborted proves
        # write access, and that the store takes the Content-MD5 every upload carries, without leaving an
        # object behind, before gigabytes are sent.
        key = "/".join(p for p in (self.s3_dir.prefix, PROBE_KEY) if p)
        what = f"writing under {self.s3_dir.uri()}"
        with uploader_errors_for(what, self.settings):
            upload_id = self.client.create_multipart_upload(Bucket=self.s3_dir.bucket, Key=key)["UploadId"]
        try:
            self._probe_part_with_md5(key, upload_id, what)
        finally:
            with uploader_errors_for(what, self.settings):
                self.client.abort_multipart_upload(Bucket=self.s3_dir.bucket, Key=key, UploadId=upload_id)

    def _probe_part_with_md5(self, key: str, upload_id: str, what: str) -> None:
        import botocore.exceptions

        body = b"cartload-uploader write check\n"
        with uploader_errors_for(what, self.settings):
            try:
                self.client.upload_part(Bucket=self.s3_dir.bucket, Key=key, UploadId=upload_id, PartNumber=1,
                                        Body=body, ContentMD5=base64.b64encode(hashlib.md5(body).digest()).decode())
            except botocore.exceptions.ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code in AUTH_CODES or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 403:
                    raise  # reported as a permission problem
                raise RemoteError(f"the store refused a part carrying a Content-MD5 header ({code}:"
                                  f" {error_message(exc)}); every part this tool sends carries one, so that the"
                                  " store rejects corrupted bytes, so it cannot upload here: use a store that"
                                  " checks Content-MD5 (AWS S3, MinIO and SeaweedFS do)") from None

    def _stored_as_headed(self, key: str, file: LocalFile) -> Stored:
        """What a HEAD shows of the object; the headers the viewer needs are checked here."""
        try:
            head = self.client.head_object(Bucket=self.s3_dir.bucket, Key=key)
        except Exception as exc:
            raise as_file_upload_error(exc) from None
        problems = []
        if head.get("ContentType") != content_type(file.name):
            problems.append(f"Content-Type {head.get('ContentType')!r}")
        if head.get("ContentEncoding"):
            problems.append(f"unexpected Content-Encoding {head['ContentEncoding']!r}")
        if problems:
            raise FileUploadError(f"verification failed: {'; '.join(problems)}", retryable=True)
        vouched = {"sha256": head.get("Metadata", {}).get(SHA256_META, "")}
        if not _etag_is_opaque(head):  # with SSE-KMS or SSE-C the ETag is not an MD5
            vouched[multipart_etag_name(part_size(file.size))] = head.get("ETag", "").strip('"')
        return Stored(head["ContentLength"], vouched)


def _digests_of_etag(etag: str, size: int) -> dict[str, str]:
    """What a listed ETag vouches for: the MD5, our multipart ETag, or nothing (another part size, SSE-KMS)."""
    parts = part_size(size)
    if "-" in etag:
        count = etag.rsplit("-", 1)[1]
        expected = -(-size // parts)
        return {multipart_etag_name(parts): etag} if count.isdigit() and int(count) == expected else {}
    if len(etag) != 32:
        return {}
    # A plain MD5-shaped ETag: our single PUT, or another tool's single PUT of a bigger file.
    return {multipart_etag_name(parts): etag} if not is_multipart(size) else {"md5": etag}


def _etag_is_opaque(response: Any) -> bool:
    """With SSE-KMS or SSE-C the ETag is not the MD5 of the content."""
    return str(response.get("ServerSideEncryption", "")).startswith("aws:kms") \
        or bool(response.get("SSECustomerAlgorithm"))


def _forward(source: Future[Stored], target: Future[Stored]) -> None:
    """`target` ends as `source` will (without waiting for it here)."""
    source.add_done_callback(lambda done: _copy_outcome(done, target))


def _copy_outcome(source: Future[Stored], target: Future[Stored]) -> None:
    """Once `source` is done: the same result or error in `target`."""
    error = source.exception()
    if error is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())

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

import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from uploader.backend import RemoteFile, Stored
from uploader.content_types import content_type
from uploader.errors import FileUploadError
from uploader.hashing import multipart_etag_name, part_md5_name
from uploader.operations import Operation, Status
from uploader.plan import Dataset, LocalFile, UploadPlan
from uploader.s3.client import S3Settings, as_file_upload_error, make_client, uploader_errors_for
from uploader.s3.destination import S3Destination
from uploader.s3.writer import ObjectWriter, is_multipart, part_size

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

SHA256_META = "sha256"
PROBE_KEY = ".cartload-uploader-write-check"
log = logging.getLogger("uploader")


class S3Backend:
    """Publishes an UploadPlan under an S3Destination (see backend.Backend)."""

    restart_empties_remote = False  # --restart re-sends the plan's files; other objects stay

    def __init__(self, destination: S3Destination, settings: S3Settings) -> None:
        self.s3_dir = destination
        self.settings = settings
        self.client: S3Client = make_client(settings)
        self.writer = ObjectWriter(self.client, destination.bucket, settings.n_jobs)
        self._planned_keys: set[str] = set()
        self._headers_proven: set[str] = set()  # Content-Types a HEAD showed the store keeps

    # -- what is there --------------------------------------------------------------------

    def destination(self, dataset: Dataset, name: str) -> str:
        return self.s3_dir.key(dataset, name)

    def digests_to_send(self, file: LocalFile) -> tuple[str, ...]:
        return "sha256", part_md5_name(part_size(file.size))

    def check_access(self, plan: UploadPlan, *, dry_run: bool) -> None:
        bucket = self.s3_dir.bucket
        with uploader_errors_for(f"bucket '{bucket}'", self.settings):
            self.client.head_bucket(Bucket=bucket)
        if not dry_run:
            self._probe_write()

    def remote_files(self, dataset: Dataset) -> dict[str, RemoteFile]:
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

    def check_plan(self, ops: list[Operation]) -> None:
        """Any plan fits in a bucket."""

    # -- writing --------------------------------------------------------------------------

    def begin(self, ops: list[Operation]) -> bool:
        self._planned_keys = {op.destination for op in ops}
        self._abort_stale_uploads()
        return False

    def send(self, op: Operation, digests: Mapping[str, str], progress: Callable[[int], None],
             stop: threading.Event) -> Stored:
        file = op.file
        assert file is not None
        parts = part_size(file.size)
        part_md5s = digests[part_md5_name(parts)].split(",")
        extra = {"ContentType": content_type(file.name), "Metadata": {SHA256_META: digests["sha256"]}}
        try:
            response = self.writer.put(file, op.destination, extra, part_md5s, progress)
        except Exception as exc:
            raise as_file_upload_error(exc) from None
        proven = content_type(file.name) in self._headers_proven
        if response and not _etag_is_opaque(response) and proven and not op.is_catalog:
            return Stored(file.size, {multipart_etag_name(parts): response.get("ETag", "").strip('"')})
        return self._stored_as_headed(op.destination, file)

    def delete(self, op: Operation) -> None:
        raise FileUploadError("deleting objects is not part of upload_aws")

    def finish(self, ops: list[Operation], *, ok: bool) -> list[str]:
        self.writer.close()
        published = [op.destination for op in ops if op.is_catalog and op.status in (Status.UPLOADED, Status.SKIPPED)]
        return [f"catalog: {self.s3_dir.uri(key)}" for key in published]

    def cancel(self) -> None:
        self.writer.cancel()
        self._abort_stale_uploads()

    def resume_options(self) -> list[str]:
        return []  # the same command resumes: S3 keys are the destination

    # -- helpers --------------------------------------------------------------------------

    def _probe_write(self) -> None:
        # A multipart upload that is started and aborted proves write access
        # without leaving an object behind, before gigabytes are sent.
        key = "/".join(p for p in (self.s3_dir.prefix, PROBE_KEY) if p)
        with uploader_errors_for(f"writing under {self.s3_dir.uri()}", self.settings):
            upload_id = self.client.create_multipart_upload(Bucket=self.s3_dir.bucket, Key=key)["UploadId"]
            self.client.abort_multipart_upload(Bucket=self.s3_dir.bucket, Key=key, UploadId=upload_id)

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
        self._headers_proven.add(content_type(file.name))
        vouched = {"sha256": head.get("Metadata", {}).get(SHA256_META, "")}
        if not _etag_is_opaque(head):  # with SSE-KMS or SSE-C the ETag is not an MD5
            vouched[multipart_etag_name(part_size(file.size))] = head.get("ETag", "").strip('"')
        return Stored(head["ContentLength"], vouched)

    def _abort_stale_uploads(self) -> None:
        # Parts of an interrupted multipart upload are invisible but billed:
        # abort those for the keys this run publishes (left by a killed run).
        if not self._planned_keys:
            return
        prefixes = {key.rsplit("/", 1)[0] + "/" if "/" in key else "" for key in self._planned_keys}
        try:
            for prefix in prefixes:
                pages = self.client.get_paginator("list_multipart_uploads").paginate(
                    Bucket=self.s3_dir.bucket, Prefix=prefix)
                for page in pages:
                    for upload in page.get("Uploads", []):
                        if upload["Key"] in self._planned_keys:
                            self.client.abort_multipart_upload(Bucket=self.s3_dir.bucket,
                                                               Key=upload["Key"], UploadId=upload["UploadId"])
        except Exception as exc:  # the upload itself goes on; left-over parts only cost storage
            log.warning("warning: could not clean up incomplete multipart uploads under %s (%s); an"
                        " AbortIncompleteMultipartUpload lifecycle rule on the bucket removes them",
                        self.s3_dir.uri(), exc)


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

"""Writing one object: a single PUT, or a multipart upload run by us, every request with a Content-MD5.

The Content-MD5 of each part comes from the digests the runner hands in
(computed once, cached), so the server rejects bytes that differ from the
ones hashed (BadDigest). Parts are 8 MiB, as aws cli's, growing only for a
file that would need more than 10,000; so objects uploaded by either tool
have the same multipart ETag. The parts of every file share one budget of
parts in flight, which bounds memory whatever --n-jobs is.
"""

from __future__ import annotations

import base64
import contextlib
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from uploader.plan import LocalFile
from uploader.s3.transport import Body, Sent, Transport, TransportError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

PART_SIZE = 8 * 1024 * 1024
PARTS_IN_FLIGHT = 8  # x 8 MiB: what the store buffers for us at most, whatever --n-jobs is
CREATE_PARAMS = ("ContentType", "CacheControl", "ACL", "StorageClass", "ServerSideEncryption", "SSEKMSKeyId",
                 "RequestPayer", "Metadata")


def part_size(file_size: int) -> int:
    """8 MiB, doubled while a file would need more than 10,000 parts: aws cli's rule (s3transfer's own code)."""
    from s3transfer.utils import ChunksizeAdjuster

    return int(ChunksizeAdjuster().adjust_chunksize(PART_SIZE, file_size))


def is_multipart(file_size: int) -> bool:
    return file_size >= PART_SIZE  # aws cli's threshold: a file of exactly one part goes multipart too


class ObjectWriter:
    """Puts files into one bucket: single PUTs and multipart uploads through a Transport."""

    def __init__(self, client: S3Client, bucket: str, transport: Transport,
                 parts_in_flight: int = PARTS_IN_FLIGHT) -> None:
        self.client = client
        self.bucket = bucket
        self.transport = transport
        self._part_slots = threading.BoundedSemaphore(parts_in_flight)
        self._open_uploads: dict[str, str] = {}  # key -> upload id, while its parts are being sent
        self._lock = threading.Lock()

    def put(self, file: LocalFile, key: str, params: Mapping[str, Any], part_md5s: list[str],
            progress: Callable[[int], None], stop: threading.Event) -> Sent:
        """Upload `file` as `key`; the store's answer (ETag) to the PutObject or CompleteMultipartUpload."""
        if not is_multipart(file.size):
            body = Body(file.path, 0, file.size)
            return self.transport.put_object(key, body, _b64(part_md5s[0]), params, progress).result()
        return self._multipart(file, key, params, part_md5s, progress, stop)

    def cancel(self) -> None:
        """Stop every request in flight and abort the multipart uploads they belong to."""
        self.transport.cancel_all()
        with self._lock:
            uploads = dict(self._open_uploads)
        for key, upload_id in uploads.items():
            self._abort(key, upload_id)

    def _multipart(self, file: LocalFile, key: str, params: Mapping[str, Any], part_md5s: list[str],
                   progress: Callable[[int], None], stop: threading.Event) -> Sent:
        create = {name: value for name, value in params.items() if name in CREATE_PARAMS}
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **create)["UploadId"]
        with self._lock:
            self._open_uploads[key] = upload_id
        try:
            etags = self._send_parts(file, key, upload_id, params, part_md5s, progress, stop)
            parts: list[Any] = [{"PartNumber": number, "ETag": etag} for number, etag in enumerate(etags, start=1)]
            payer = {"RequestPayer": params["RequestPayer"]} if "RequestPayer" in params else {}
            answer = self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                           MultipartUpload={"Parts": parts}, **payer)
        except BaseException:
            self._abort(key, upload_id)
            raise
        finally:
            with self._lock:
                self._open_uploads.pop(key, None)
        return Sent(str(answer.get("ETag", "")).strip('"'), str(answer.get("ServerSideEncryption", "")))

    def _send_parts(self, file: LocalFile, key: str, upload_id: str, params: Mapping[str, Any],
                    part_md5s: list[str], progress: Callable[[int], None], stop: threading.Event) -> list[str]:
        size = part_size(file.size)
        sending: list[Future[Sent]] = []
        failed = threading.Event()

        def part_done(future: Future[Sent]) -> None:
            self._part_slots.release()
            if future.cancelled() or future.exception() is not None:
                failed.set()

        for number, md5_hex in enumerate(part_md5s, start=1):
            if failed.is_set():
                break  # a part failed: send no more of this file
            self._wait_for_a_slot(stop)
            offset = (number - 1) * size
            body = Body(file.path, offset, min(size, file.size - offset))
            future = self.transport.upload_part(key, upload_id, number, body, _b64(md5_hex), params, progress)
            future.add_done_callback(part_done)
            sending.append(future)
        # A failure raises here; parts still in flight end on their own once the upload is aborted.
        return [future.result().etag for future in sending]

    def _wait_for_a_slot(self, stop: threading.Event) -> None:
        while not self._part_slots.acquire(timeout=0.2):
            if stop.is_set():
                raise TransportError("", "interrupted")
        if stop.is_set():
            self._part_slots.release()
            raise TransportError("", "interrupted")

    def _abort(self, key: str, upload_id: str) -> None:
        # If this fails, the next run's clean-up (or a lifecycle rule) removes the parts.
        with contextlib.suppress(Exception):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)


def _b64(md5_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(md5_hex)).decode("ascii")

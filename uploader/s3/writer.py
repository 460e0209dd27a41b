"""Writing one object: a single PUT, or s3transfer's multipart upload, every request with a Content-MD5.

The Content-MD5 of each part comes from the digests the runner hands in
(computed once, cached), so the server rejects bytes that differ from the
ones hashed (BadDigest). One TransferManager serves the whole run.
"""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from uploader.plan import LocalFile

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from s3transfer.manager import TransferManager

PART_SIZE = 8 * 1024 * 1024  # aws cli's default too: its multipart ETags then match ours


def part_size(file_size: int) -> int:
    """The part size s3transfer will use for a file of this size (it grows parts past 10,000)."""
    from s3transfer.utils import ChunksizeAdjuster

    return int(ChunksizeAdjuster().adjust_chunksize(PART_SIZE, file_size))


def is_multipart(file_size: int) -> bool:
    return file_size >= PART_SIZE  # s3transfer's rule with multipart_threshold=PART_SIZE


class ObjectWriter:
    """Puts files into one bucket with the run's client."""

    def __init__(self, client: S3Client, bucket: str, n_jobs: int) -> None:
        self.client = client
        self.bucket = bucket
        self.n_jobs = n_jobs
        self._part_md5s: dict[str, list[str]] = {}  # key -> Content-MD5 (hex) of each part in flight
        self._manager: TransferManager | None = None
        self._manager_lock = threading.Lock()
        client.meta.events.register("before-parameter-build.s3.UploadPart", self._add_part_md5)
        # On 'before-call.s3', after botocore's own handler there that adds the header.
        client.meta.events.register_last("before-call.s3", _no_continue_for_small_bodies)

    def put(self, file: LocalFile, key: str, extra: dict[str, Any], part_md5s: list[str],
            progress: Callable[[int], None]) -> dict[str, Any]:
        """Upload `file` as `key`; returns the PutObject response (empty for a multipart upload)."""
        if is_multipart(file.size):
            self._put_multipart(file, key, extra, part_md5s, progress)
            return {}
        response = self._put_single(file, key, extra, part_md5s[0])
        progress(file.size)
        return response

    def cancel(self) -> None:
        """Stop in-flight multipart uploads; s3transfer's failure clean-up aborts them."""
        with self._manager_lock:
            manager = self._manager
        if manager is not None:
            # The context-manager exit is the path that cancels correctly: shutdown(cancel=True)
            # hands its arguments on shifted in s3transfer 0.19 and fails on a live transfer.
            interrupt = KeyboardInterrupt("interrupted")
            manager.__exit__(KeyboardInterrupt, interrupt, None)

    def close(self) -> None:
        with self._manager_lock:
            if self._manager is not None:
                self._manager.shutdown()
                self._manager = None

    def _put_single(self, file: LocalFile, key: str, extra: dict[str, Any], md5_hex: str) -> dict[str, Any]:
        # Read whole (it is under one part): an in-memory body is sent without
        # 'Expect: 100-continue' (_no_continue_for_small_bodies), one round trip less per file.
        with open(file.path, "rb") as handle:
            body = handle.read()
        response = self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentMD5=_b64(md5_hex),
                                          **extra)
        return dict(response)

    def _put_multipart(self, file: LocalFile, key: str, extra: dict[str, Any], part_md5s: list[str],
                       progress: Callable[[int], None]) -> None:
        from s3transfer.subscribers import BaseSubscriber

        class _Progress(BaseSubscriber):  # type: ignore[misc]
            def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
                progress(bytes_transferred)

        self._part_md5s[key] = part_md5s
        try:
            future = self._transfer_manager().upload(str(file.path), self.bucket, key, extra_args=extra,
                                                     subscribers=[_Progress()])
            future.result()
        finally:
            self._part_md5s.pop(key, None)

    def _add_part_md5(self, params: dict[str, Any], **kwargs: Any) -> None:
        part_md5s = self._part_md5s.get(params.get("Key", ""))
        if part_md5s and 1 <= params.get("PartNumber", 0) <= len(part_md5s):
            params["ContentMD5"] = _b64(part_md5s[params["PartNumber"] - 1])

    def _transfer_manager(self) -> TransferManager:
        with self._manager_lock:
            if self._manager is None:
                from s3transfer.manager import TransferConfig, TransferManager

                config = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE,
                                        max_request_concurrency=self.n_jobs)
                self._manager = TransferManager(self.client, config)
            return self._manager


def _no_continue_for_small_bodies(params: dict[str, Any], **kwargs: Any) -> None:
    # botocore asks for '100-continue' before any body; for a body under one part,
    # in memory, that round trip costs more than sending it would.
    body = params.get("body")
    if isinstance(body, io.BytesIO) and body.getbuffer().nbytes < PART_SIZE:
        params.get("headers", {}).pop("Expect", None)


def _b64(md5_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(md5_hex)).decode("ascii")

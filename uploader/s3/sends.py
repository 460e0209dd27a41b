"""Sending a file to the bucket and verifying what it stored, for the S3 backend.

A single PUT is confirmed by the ETag it returns (the server's MD5 of what it
stored), a multipart upload by CompleteMultipartUpload's; the catalog, and the
first object of each Content-Type, by a HEAD (size, SHA-256, Content-Type, no
Content-Encoding, and the object options given): a store that drops headers
drops them for every object. The others of that type go out beside that first
one; once it passed, their ETags verify them, else a HEAD each.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from uploader.engine.operations import Operation, Stored
from uploader.errors import UploaderError
from uploader.local.content_types import content_type
from uploader.local.digests import multipart_etag_name, part_md5_name
from uploader.local.plan import LocalFile
from uploader.s3.access import FirstWrite
from uploader.s3.options import ObjectOptions
from uploader.s3.transport import Sent
from uploader.s3.updates import InPlaceUpdates
from uploader.s3.verify import SHA256_META, stored_as_headed
from uploader.s3.writer import ObjectWriter, is_multipart, part_size

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


class VerifiedSends:
    """Starts each file's send and settles it with what the store holds (see the module's text)."""

    def __init__(self, client: S3Client, bucket: str, writer: ObjectWriter, objects: ObjectOptions,
                 waiting: ThreadPoolExecutor, first_write: FirstWrite, updates: InPlaceUpdates,
                 surveyed: Callable[[], None]) -> None:
        self.client = client
        self.bucket = bucket
        self.writer = writer
        self.objects = objects
        self.first_write = first_write  # until a write is stored, a refused one stops the run (access.py)
        self.updates = updates
        self._surveyed = surveyed  # waited for before a multipart upload
        self._waiting = waiting  # multipart uploads and sends verified by a HEAD wait for their answers here
        self._proofs: dict[str, Future[Stored]] = {}  # the first send of each Content-Type, verified by a HEAD
        self._proofs_lock = threading.Lock()

    def start(self, op: Operation, digests: Mapping[str, str], progress: Callable[[int], None],
              stop: threading.Event) -> Future[Stored]:
        """A small file goes out without a thread of ours; a multipart upload or a HEAD waits in one."""
        file = op.file
        assert file is not None
        known = digests.get(part_md5_name(part_size(file.size)))
        part_md5s = known.split(",") if known else []  # none: a multipart upload hashes what it sends (writer.py)
        sha256 = digests.get("sha256", "")
        kind = content_type(file.name)
        params: dict[str, Any] = {"ContentType": kind, "Metadata": {SHA256_META: sha256} if sha256 else {},
                                  **self.objects.put_params(catalog=op.is_catalog)}
        if op.is_catalog:
            return self._waiting.submit(self._send_and_check, op, params, part_md5s, progress, stop, True)
        with self._proofs_lock:
            proof = self._proofs.get(kind)
            if proof is None or (proof.done() and proof.exception() is not None):
                proof = self._waiting.submit(self._send_and_check, op, params, part_md5s, progress, stop, True)
                self._proofs[kind] = proof
                return proof
        if is_multipart(file.size):
            sending = self._waiting.submit(self._send_and_check, op, params, part_md5s, progress, stop, False)
        else:
            sending = Future()
            started = self.writer.start_single(file, op.destination, params, part_md5s[0], progress, stop)
            started.add_done_callback(lambda sent: self._settle(op, sent, sending))
        if proof.done():
            return sending
        # Sent beside the proof (a round trip or two saved on a WAN), and settled once it has its answer.
        stored: Future[Stored] = Future()
        proof.add_done_callback(lambda _: sending.add_done_callback(lambda _: self._once_proven(op, proof, sending,
                                                                                                 stored)))
        return stored

    def _once_proven(self, op: Operation, proof: Future[Stored], sending: Future[Stored],
                     stored: Future[Stored]) -> None:
        """A file sent before its Content-Type was proven: its ETag stands if the proof passed, else a HEAD tells."""
        assert op.file is not None
        file = op.file
        if sending.exception() is not None or proof.exception() is None:
            _copy_outcome(sending, stored)
            return
        resumed = sending.result().resumed
        headed = self._waiting.submit(lambda: replace(self._stored_as_headed(op.destination, file), resumed=resumed))
        headed.add_done_callback(lambda done: _copy_outcome(done, stored))

    def _settle(self, op: Operation, sending: Future[Sent], stored: Future[Stored]) -> None:
        """In the transport's thread: what a single PUT stored, by its ETag (a HEAD where the ETag is no MD5)."""
        assert op.file is not None
        try:
            sent = sending.result()
        except Exception as exc:
            stored.set_exception(self.first_write.failure(exc))
            return
        self.first_write.stored()
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
        if is_multipart(file.size):
            self._surveyed()
        try:
            sent = self.writer.put(file, op.destination, params, part_md5s, params["Metadata"].get(SHA256_META, ""),
                                   progress, stop)
        except Exception as exc:
            failure = self.first_write.failure(exc)
            if isinstance(failure, UploaderError) and is_multipart(file.size):
                self.writer.abandon(op.destination)  # the run stops for its access: nothing of it to resume
            raise failure from None
        self.first_write.stored()
        if sent.encryption.startswith("aws:kms") and sent.digests:  # a bucket's default SSE-KMS: the ETag vouches
            self.updates.add_sha256(op.destination, file, sent.digests["sha256"])  # for nothing; the SHA-256 will
        if head or sent.encryption.startswith("aws:kms"):
            return replace(self._stored_as_headed(op.destination, file), resumed=sent.resumed,
                           sent_digests=sent.digests)
        return Stored(file.size, {multipart_etag_name(part_size(file.size)): sent.etag}, resumed=sent.resumed,
                      sent_digests=sent.digests)

    def _stored_as_headed(self, key: str, file: LocalFile) -> Stored:
        return stored_as_headed(self.client, self.bucket, key, file, self.objects)


def _copy_outcome(source: Future[Stored], target: Future[Stored]) -> None:
    """Once `source` is done: the same result or error in `target`."""
    error = source.exception()
    if error is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())

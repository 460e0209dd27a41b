"""Writing one object: a single PUT, or a multipart upload run by us, every request with a Content-MD5.

The Content-MD5 of each part comes from the digests the runner hands in
(computed once, cached), so the server rejects bytes that differ from the
ones hashed (BadDigest). Parts are 8 MiB, as aws cli's, growing only for a
file that would need more than 10,000; so objects uploaded by either tool
have the same multipart ETag. The transport holds each request's body while
it is sent, so every body in flight, parts and whole small files alike,
counts against one budget of bytes, which bounds memory whatever --n-jobs is.

A multipart upload whose part MD5s are not known yet (a first upload: the
key is not on the store, nothing is cached) hashes its parts as it sends
them, instead of reading the whole file first: each part is read, its MD5
(the Content-MD5) and the whole file's SHA-256 computed from those bytes,
and the part is sent right after (the transport reads it again, from the
page cache: holding the bytes instead cost 80 MiB of memory; bytes that
changed in between do not match the Content-MD5, and the store refuses
them). Its object then carries no
SHA-256 metadata (it is known only after CreateMultipartUpload): its
multipart ETag at the fixed part size, the MD5 of the part MD5s, identifies
the content, and the digests computed while sending are handed back for the
hash cache, so that a re-run compares that ETag without reading the file.

An unfinished multipart upload is kept, not aborted, when its file fails or
the run is interrupted: the next attempt (or run) resumes it. Whose it is
and what it holds is in the run's lease (leases.py); every part already
stored is checked against the local part's MD5 before it is kept.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

from uploader.local.digests import part_md5_name
from uploader.local.plan import LocalFile
from uploader.s3.leases import Leases, UploadRecord
from uploader.s3.transport import Body, Sent, Transport, TransportError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

PART_SIZE = 8 * 1024 * 1024
BYTES_IN_FLIGHT = 64 * 1024 * 1024  # bodies being sent at once, at most (8 parts of 8 MiB), whatever --n-jobs is
CREATE_PARAMS = ("ContentType", "CacheControl", "ACL", "StorageClass", "ServerSideEncryption", "SSEKMSKeyId",
                 "RequestPayer", "Metadata")


def part_size(file_size: int) -> int:
    """8 MiB, doubled while a file would need more than 10,000 parts: aws cli's rule (s3transfer's own code)."""
    if file_size <= PART_SIZE * 10_000:
        return PART_SIZE  # asked for every file: the common answer without building an adjuster
    from s3transfer.utils import ChunksizeAdjuster

    return int(ChunksizeAdjuster().adjust_chunksize(PART_SIZE, file_size))


def is_multipart(file_size: int) -> bool:
    return file_size >= PART_SIZE  # aws cli's threshold: a file of exactly one part goes multipart too


class ObjectWriter:
    """Puts files into one bucket: single PUTs and multipart uploads through a Transport."""

    def __init__(self, client: S3Client, bucket: str, transport: Transport, leases: Leases,
                 bytes_in_flight: int = BYTES_IN_FLIGHT) -> None:
        self.client = client
        self.bucket = bucket
        self.transport = transport
        self.leases = leases
        self._budget = ByteBudget(bytes_in_flight)

    def put(self, file: LocalFile, key: str, params: Mapping[str, Any], part_md5s: list[str], sha256: str,
            progress: Callable[[int], None], stop: threading.Event) -> Sent:
        """Upload `file` as `key` and wait; the store's answer to the PutObject or CompleteMultipartUpload.

        A multipart upload without `part_md5s` (and `sha256`) reads the file once, hashing what it sends.
        """
        if not is_multipart(file.size):
            return self.start_single(file, key, params, part_md5s[0], progress, stop).result()
        return self._multipart(file, key, params, part_md5s, sha256, progress, stop)

    def start_single(self, file: LocalFile, key: str, params: Mapping[str, Any], md5_hex: str,
                     progress: Callable[[int], None], stop: threading.Event) -> Future[Sent]:
        """Start the one PUT of a file under a part, once its body fits the budget: nothing waits for it."""
        self._budget.take(file.size, stop)
        sending = self.transport.put_object(key, Body(file.path, 0, file.size), _b64(md5_hex), params, progress)
        sending.add_done_callback(lambda _: self._budget.give_back(file.size))
        return sending

    def cancel(self) -> None:
        """Stop every request in flight; the multipart uploads they belong to are kept for the next run."""
        self.transport.cancel_all()

    def abandon(self, key: str) -> None:
        """Abort this run's unfinished upload of `key`: the run stops before anything of it was worth keeping."""
        for record in self.leases.kept():
            if record.key == key:
                with contextlib.suppress(Exception):  # a store that refused the upload may refuse this too
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=record.upload_id)
                self.leases.finished(record.upload_id)

    def _multipart(self, file: LocalFile, key: str, params: Mapping[str, Any], part_md5s: list[str], sha256: str,
                   progress: Callable[[int], None], stop: threading.Event) -> Sent:
        size = part_size(file.size)
        record = self.leases.claim(key, sha256, file.size, size)
        reading = None if part_md5s else _PartsRead(file, size)
        stored: dict[int, str] = {}
        if record is None:
            create = {name: value for name, value in params.items() if name in CREATE_PARAMS}
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **create)["UploadId"]
            self.leases.started(UploadRecord(key, upload_id, sha256, file.size, size))
        else:
            upload_id = record.upload_id
            stored = self._parts_to_keep(file, key, upload_id, part_md5s or None)
        try:
            if reading is not None:
                etags = self._read_and_send_parts(reading, key, upload_id, params, stored, progress, stop)
            else:
                etags = self._send_parts(file, key, upload_id, params, part_md5s, stored, progress, stop)
            parts: list[Any] = [{"PartNumber": number, "ETag": etag} for number, etag in enumerate(etags, start=1)]
            payer = {"RequestPayer": params["RequestPayer"]} if "RequestPayer" in params else {}
            answer = self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                           MultipartUpload={"Parts": parts}, **payer)
        except Exception as exc:
            if "NoSuchUpload" in str(exc):  # aborted by someone else: nothing left to resume
                self.leases.finished(upload_id)
            raise
        self.leases.finished(upload_id)
        kept = stored if reading is None else {number: stored[number] for number in reading.kept}
        resumed = sum(min(size, file.size - (number - 1) * size) for number in kept)
        return Sent(str(answer.get("ETag", "")).strip('"'), str(answer.get("ServerSideEncryption", "")), resumed,
                    reading.digests() if reading is not None else {})

    def _parts_to_keep(self, file: LocalFile, key: str, upload_id: str,
                       part_md5s: list[str] | None) -> dict[int, str]:
        """The parts an unfinished upload already holds with exactly the local bytes (by MD5 and size).

        Without `part_md5s` (not read yet), every part of the right size: each is kept only if the MD5 of the
        local part, read before it would be sent, is its ETag.
        """
        size = part_size(file.size)
        count = -(-file.size // size)
        keep = {}
        pages = self.client.get_paginator("list_parts").paginate(Bucket=self.bucket, Key=key, UploadId=upload_id)
        for page in pages:
            for part in page.get("Parts", []):
                number, etag = int(part["PartNumber"]), str(part.get("ETag", "")).strip('"')
                expected_size = min(size, file.size - (number - 1) * size)
                if 1 <= number <= count and (part_md5s is None or etag == part_md5s[number - 1]) \
                        and part.get("Size") == expected_size:
                    keep[number] = etag  # anything else (a corrupted or short part) is sent again
        return keep

    def _send_parts(self, file: LocalFile, key: str, upload_id: str, params: Mapping[str, Any],
                    part_md5s: list[str], stored: dict[int, str], progress: Callable[[int], None],
                    stop: threading.Event) -> list[str]:
        size = part_size(file.size)
        sending: dict[int, Future[Sent]] = {}
        failed = threading.Event()

        def part_done(future: Future[Sent], *, length: int) -> None:
            self._budget.give_back(length)
            if future.cancelled() or future.exception() is not None:
                failed.set()

        for number, md5_hex in enumerate(part_md5s, start=1):
            if number in stored:
                continue
            if failed.is_set():
                break  # a part failed: send no more of this file
            offset = (number - 1) * size
            body = Body(file.path, offset, min(size, file.size - offset))
            self._budget.take(body.length, stop)
            future = self.transport.upload_part(key, upload_id, number, body, _b64(md5_hex), params, progress)
            future.add_done_callback(partial(part_done, length=body.length))
            sending[number] = future
        # A failure raises here; the parts stored so far stay for the next attempt to resume.
        sent = {number: future.result().etag for number, future in sending.items()}
        return [stored.get(number) or sent[number] for number in range(1, len(part_md5s) + 1)]

    def _read_and_send_parts(self, reading: _PartsRead, key: str, upload_id: str, params: Mapping[str, Any],
                             stored: dict[int, str], progress: Callable[[int], None],
                             stop: threading.Event) -> list[str]:
        """Each part read in order: hashed, kept if the unfinished upload holds it, else sent."""
        sending: dict[int, Future[Sent]] = {}
        failed = threading.Event()

        def part_done(future: Future[Sent], *, length: int) -> None:
            self._budget.give_back(length)
            if future.cancelled() or future.exception() is not None:
                failed.set()

        with reading:
            for number in range(1, reading.count + 1):
                if failed.is_set():
                    break  # a part failed: send no more of this file
                length = reading.length(number)
                self._budget.take(length, stop)
                body, md5_hex = reading.part(number)
                if stored.get(number) == md5_hex:
                    reading.kept.append(number)
                    self._budget.give_back(length)
                    continue
                future = self.transport.upload_part(key, upload_id, number, body, _b64(md5_hex), params, progress)
                future.add_done_callback(partial(part_done, length=length))
                sending[number] = future
        sent = {number: future.result().etag for number, future in sending.items()}
        return [sent.get(number) or stored[number] for number in range(1, reading.count + 1)]


class _PartsRead:
    """A file read part by part, in order: each part's MD5 and the whole file's SHA-256 from the bytes read.

    The SHA-256 of a part goes on in a helper thread while the next part is read and its MD5 taken (hashlib
    lets go of the interpreter lock): two hashes side by side on two cores, in two buffers used in turn.
    """

    def __init__(self, file: LocalFile, size: int) -> None:
        self.file = file
        self.size = size
        self.count = max(1, -(-file.size // size))
        self.kept: list[int] = []  # parts the unfinished upload already held
        self._md5s: list[str] = []
        self._sha256 = hashlib.sha256()
        self._fd = -1
        self._helper = ThreadPoolExecutor(1, thread_name_prefix="sha256")
        self._buffers = [bytearray(min(size, file.size)) for _ in range(2 if file.size > size else 1)]
        self._hashing: list[Future[None] | None] = [None] * len(self._buffers)

    def __enter__(self) -> _PartsRead:
        self._fd = os.open(self.file.path, os.O_RDONLY | os.O_CLOEXEC)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)
        self._helper.shutdown()

    def length(self, number: int) -> int:
        return min(self.size, self.file.size - (number - 1) * self.size)

    def part(self, number: int) -> tuple[Body, str]:
        """Part `number` (the next one), and its MD5."""
        offset, length = (number - 1) * self.size, self.length(number)
        turn = number % len(self._buffers)
        if (hashing := self._hashing[turn]) is not None:
            hashing.result()  # the SHA-256 of the part read into this buffer before is done with it
        data = memoryview(self._buffers[turn])[:length]
        if os.preadv(self._fd, [data], offset) != length:
            raise OSError("the file ended early: it shrank while being sent")
        self._hashing[turn] = self._helper.submit(self._sha256.update, data)  # in order: one helper thread
        md5_hex = hashlib.md5(data).hexdigest()
        self._md5s.append(md5_hex)
        return Body(self.file.path, offset, length), md5_hex

    def digests(self) -> dict[str, str]:
        """The whole file's, once every part was read: what the hash cache keeps for the next run."""
        self._helper.shutdown()
        return {"sha256": self._sha256.hexdigest(), part_md5_name(self.size): ",".join(self._md5s)}


class ByteBudget:
    """Bytes of request bodies in flight: taking more than is left waits until enough is given back."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._left = limit
        self._changed = threading.Condition()

    def take(self, count: int, stop: threading.Event) -> None:
        count = min(count, self.limit)  # a body bigger than the whole budget goes alone
        with self._changed:
            while self._left < count:
                if stop.is_set():
                    raise TransportError("", "interrupted")
                self._changed.wait(timeout=0.2)
            if stop.is_set():
                raise TransportError("", "interrupted")
            self._left -= count

    def give_back(self, count: int) -> None:
        with self._changed:
            self._left = min(self.limit, self._left + min(count, self.limit))
            self._changed.notify_all()


def _b64(md5_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(md5_hex)).decode("ascii")

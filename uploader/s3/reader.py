"""Reading what a dataset prefix holds: its listing, an object's stored digests, and its bytes.

The read side of the S3 backend, apart from the writer so that verify_aws can
use it with read-only or no credentials (--no-sign-request): nothing here
writes. A whole object is read in byte ranges, several side by side, and
hashed in order: memory stays at RANGES_IN_FLIGHT ranges, however many
objects are read at once.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cached_property
from typing import TYPE_CHECKING

from uploader.engine.operations import RemoteFile
from uploader.errors import RemoteError
from uploader.local.plan import Dataset
from uploader.s3.client import uploader_errors_for
from uploader.s3.destination import S3Destination
from uploader.s3.settings import S3Settings
from uploader.s3.verify import SHA256_META, listed_files

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

RANGE_SIZE = 4 * 1024 * 1024  # 8 MiB was no faster, on a loopback, and held twice the memory
RANGES_IN_FLIGHT = 16  # of every object read at once: at most this many ranges (64 MiB) in memory
RANGES_PER_OBJECT = 8


class S3Reader:
    """What is under an S3Destination, read with the run's client (see engine.audit.PublishedRemote)."""

    def __init__(self, client: S3Client, destination: S3Destination, settings: S3Settings) -> None:
        self.client = client
        self.s3_dir = destination
        self.settings = settings
        self._slots = threading.BoundedSemaphore(RANGES_IN_FLIGHT)

    @cached_property
    def _ranges(self) -> ThreadPoolExecutor:
        """The threads that read ranges, for every object read at once (made at the first)."""
        return ThreadPoolExecutor(RANGES_IN_FLIGHT, thread_name_prefix="range")

    def destination(self, dataset: Dataset, name: str) -> str:
        return self.s3_dir.key(dataset, name)

    def remote_files(self, dataset: Dataset) -> dict[str, RemoteFile]:
        """Every object under the dataset's prefix, with what its listed ETag vouches for."""
        prefix = self.s3_dir.dataset_prefix(dataset)
        with uploader_errors_for(f"listing {self.s3_dir.uri(prefix)}", self.settings):
            expected = [self.destination(dataset, file.name) for file in (*dataset.all_files, *dataset.checked_only)]
            return listed_files(self.client, self.s3_dir.bucket, prefix, expected)

    def digests_on_request(self, remote: RemoteFile) -> dict[str, str]:
        """The SHA-256 the uploader stored with the object (a HEAD), if it has one."""
        with uploader_errors_for(f"reading {remote.name}", self.settings):
            head = self.client.head_object(Bucket=self.s3_dir.bucket, Key=remote.name)
        stored = head.get("Metadata", {}).get(SHA256_META)
        return {"sha256": stored} if stored else {}

    def read(self, remote: RemoteFile) -> bytes:
        with uploader_errors_for(f"reading {self.s3_dir.uri(remote.name)}", self.settings):
            return bytes(self.client.get_object(Bucket=self.s3_dir.bucket, Key=remote.name)["Body"].read())

    def downloaded_digests(self, remote: RemoteFile, names: Sequence[str]) -> dict[str, str]:
        """The digests of the object's bytes, read in ranges (several side by side) and hashed in order.

        Every object read at once shares RANGES_IN_FLIGHT slots: an object takes a slot per range it asks
        for, and gives it back once that range is hashed. One that holds ranges never waits for a slot (it
        hashes what it has first), so no object starves another into a standstill.
        """
        hashers = {name: hashlib.new(name) for name in names}
        starts = deque(range(0, remote.size, RANGE_SIZE))
        pending: deque[Future[bytes]] = deque()
        try:
            while starts or pending:
                while starts and len(pending) < RANGES_PER_OBJECT and self._slots.acquire(blocking=not pending):
                    pending.append(self._ranges.submit(self._range, remote, starts.popleft()))
                data = pending.popleft().result()
                for hasher in hashers.values():
                    hasher.update(data)
                self._slots.release()
        finally:
            for left in pending:  # a failed range ends the run: the slots of the others are given back
                left.cancel()
                self._slots.release()
        return {name: hasher.hexdigest() for name, hasher in hashers.items()}

    def _range(self, remote: RemoteFile, start: int) -> bytes:
        end = min(start + RANGE_SIZE, remote.size) - 1
        with uploader_errors_for(f"reading {self.s3_dir.uri(remote.name)}", self.settings):
            answer = self.client.get_object(Bucket=self.s3_dir.bucket, Key=remote.name, Range=f"bytes={start}-{end}")
            data = bytes(answer["Body"].read())
        if len(data) != end - start + 1:
            raise RemoteError(f"reading {self.s3_dir.uri(remote.name)}: bytes {start}-{end} came back as"
                              f" {len(data):,d} bytes (the object changed while it was read?); re-run")
        return data

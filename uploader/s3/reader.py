"""Reading what a dataset prefix holds: its listing, an object's stored digests, and its bytes.

The read side of the S3 backend, apart from the writer so that verify_aws can
use it with read-only or no credentials (--no-sign-request): nothing here
writes. A whole object is read in byte ranges, a few side by side, and
hashed in order: memory stays at RANGES_IN_FLIGHT ranges per object read.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import TYPE_CHECKING

from uploader.engine.operations import RemoteFile
from uploader.errors import RemoteError
from uploader.local.plan import Dataset
from uploader.s3.client import S3Settings, uploader_errors_for
from uploader.s3.destination import S3Destination
from uploader.s3.verify import SHA256_META, listed_files

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

RANGE_SIZE = 8 * 1024 * 1024
RANGES_IN_FLIGHT = 4


class S3Reader:
    """What is under an S3Destination, read with the run's client (see engine.audit.PublishedRemote)."""

    def __init__(self, client: S3Client, destination: S3Destination, settings: S3Settings) -> None:
        self.client = client
        self.s3_dir = destination
        self.settings = settings

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
        """The digests of the object's bytes, read in ranges (a few side by side) and hashed in order."""
        hashers = {name: hashlib.new(name) for name in names}
        starts = iter(range(0, remote.size, RANGE_SIZE))
        with ThreadPoolExecutor(RANGES_IN_FLIGHT, thread_name_prefix="range") as pool:
            pending: deque[Future[bytes]] = deque(pool.submit(self._range, remote, start)
                                                  for start in islice(starts, RANGES_IN_FLIGHT))
            while pending:
                data = pending.popleft().result()
                start = next(starts, None)
                if start is not None:
                    pending.append(pool.submit(self._range, remote, start))
                for hasher in hashers.values():
                    hasher.update(data)
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

"""Write access: the bucket is there before the first write, and the run's own first write proves the rest.

The bucket is checked beside the first listing (some stores list a missing
bucket as empty, and SeaweedFS creates one on a first write). Whether these
credentials may write under the prefix, and whether the store takes the
Content-MD5 (and the object options) every upload carries, is what the
run's first write proves: until one write has been stored, a refusal of any
write stops the run at once with one line (exit 3 for a permission, 4 for a
store that refuses Content-MD5, 2 for object options it refuses), instead of
failing file after file. No probe of its own is sent (a no-op run writes
nothing and checks nothing), so none can be left behind; the unfinished
uploads of the write-check key that older versions sent are removed by the
survey of unfinished uploads (leases.py) once they are a few minutes old.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from uploader.errors import FileUploadError, RemoteError, UploaderError, UsageError
from uploader.s3.client import (
    INTEGRITY_CODES,
    TRANSIENT_CODES,
    as_file_upload_error,
    is_auth_refusal,
    refusal_as_error,
    uploader_errors_for,
)
from uploader.s3.destination import S3Destination
from uploader.s3.options import ObjectOptions
from uploader.s3.settings import S3Settings

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

# Refusals that belong to one object, not to the run's access: told as that file's failure.
ONE_OBJECT_CODES = {"KeyTooLongError", "EntityTooLarge", "EntityTooSmall", "InvalidObjectName", "NoSuchUpload",
                    "InvalidPart", "InvalidPartOrder", "PreconditionFailed"}
CARRIES_MD5 = {"PutObject": "an upload", "UploadPart": "a part"}  # what the Content-MD5 refusal names
CARRIES_OPTIONS = {"PutObject", "CreateMultipartUpload", "CopyObject", "PutObjectAcl"}


def check_bucket(client: S3Client, bucket: str, settings: S3Settings) -> None:
    with uploader_errors_for(f"bucket '{bucket}'", settings):
        client.head_bucket(Bucket=bucket)


class FirstWrite:
    """Until a write has been stored, a refused write is the run's access problem, told in one line."""

    def __init__(self, s3_dir: S3Destination, settings: S3Settings, objects: ObjectOptions) -> None:
        self.s3_dir = s3_dir
        self.settings = settings
        self.objects = objects
        self._stored = threading.Event()

    def stored(self) -> None:
        """A data write was stored: access, Content-MD5 and the object options are proven for the run."""
        self._stored.set()

    def failure(self, exc: BaseException) -> Exception:
        """What a failed write raises: an UploaderError that stops the run, or this file's FileUploadError."""
        if not self._stored.is_set():
            refused = self._refusal(exc)
            if refused is not None:
                return refused
        return as_file_upload_error(exc)

    def _refusal(self, exc: BaseException) -> UploaderError | None:
        answer = _store_answer(exc)
        if answer is None:
            return None
        operation, code, status, message = answer
        if status is None or code in ONE_OBJECT_CODES | INTEGRITY_CODES | TRANSIENT_CODES:
            return None
        what = f"writing under {self.s3_dir.uri()}"
        if is_auth_refusal(code, status):
            return refusal_as_error(code, status, message, what, self.settings)
        if status not in (400, 501):
            return None
        if self.objects.flags and operation in CARRIES_OPTIONS:
            # An ACL on a bucket without ACLs, an unknown storage class or KMS key: the options' fault.
            return UsageError(f"the store refused an upload with {', '.join(self.objects.flags)} ({code}:"
                              f" {message}); check those options, or leave out what this store does not support")
        if operation in CARRIES_MD5:
            return RemoteError(f"the store refused {CARRIES_MD5[operation]} carrying a Content-MD5 header ({code}:"
                               f" {message}); every part this tool sends carries one, so that the store rejects"
                               " corrupted bytes, so it cannot upload here: use a store that checks Content-MD5"
                               " (AWS S3, MinIO and SeaweedFS do)")
        return None


def _store_answer(exc: BaseException) -> tuple[str, str, int | None, str] | None:
    """The operation, S3 error code, HTTP status and message of a request the store refused; None for no answer."""
    import botocore.exceptions

    from uploader.s3.transport import TransportError

    if isinstance(exc, FileUploadError):  # already told as a file's failure: what the store said is its cause
        cause = exc.__cause__ or exc.__context__
        return _store_answer(cause) if cause is not None else None
    if isinstance(exc, TransportError):
        return (exc.operation, exc.code, exc.status, exc.message) if exc.code else None
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return exc.operation_name, str(error.get("Code", "")), status, str(error.get("Message", "")) or str(exc)
    return None

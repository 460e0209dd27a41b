"""Before the first write: the bucket is there, these credentials may write under the prefix, and the store
takes the Content-MD5 (and the object options) every upload carries.

A multipart upload that is started, given one tiny part with its Content-MD5,
and aborted proves all of it without leaving an object behind, before
gigabytes are sent (the abort goes beside the first uploads).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from uploader.errors import RemoteError, UsageError
from uploader.s3.client import AUTH_CODES, error_message, uploader_errors_for
from uploader.s3.destination import S3Destination
from uploader.s3.options import ObjectOptions
from uploader.s3.own_keys import WRITE_CHECK_NAME
from uploader.s3.settings import S3Settings

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

PROBE_KEY = WRITE_CHECK_NAME  # one of the tool's own keys (own_keys.py): never a dataset's file


def check_bucket(client: S3Client, bucket: str, settings: S3Settings) -> None:
    with uploader_errors_for(f"bucket '{bucket}'", settings):
        client.head_bucket(Bucket=bucket)


def probe_write(client: S3Client, s3_dir: S3Destination, settings: S3Settings,
                objects: ObjectOptions) -> Callable[[], None]:
    """Start a multipart upload with the run's object options and send one part with its Content-MD5.

    Returns the abort of that upload, for the caller to send beside its first uploads (a round trip less
    before them); a refused part is aborted here.
    """
    key = "/".join(p for p in (s3_dir.prefix, PROBE_KEY) if p)
    what = f"writing under {s3_dir.uri()}"
    with uploader_errors_for(what, settings), _options_refused_as_usage(objects):
        # With the object options of the run: a store that refuses one (an ACL on a bucket without
        # ACLs, an unknown storage class or KMS key) says so before any upload.
        upload_id = client.create_multipart_upload(Bucket=s3_dir.bucket, Key=key,
                                                   **objects.put_params(catalog=False))["UploadId"]

    def abort() -> None:
        with uploader_errors_for(f"removing the write check's upload of {s3_dir.uri(key)}", settings):
            client.abort_multipart_upload(Bucket=s3_dir.bucket, Key=key, UploadId=upload_id)

    try:
        _probe_part_with_md5(client, s3_dir.bucket, key, upload_id, what, settings)
    except BaseException:
        abort()
        raise
    return abort


def _probe_part_with_md5(client: S3Client, bucket: str, key: str, upload_id: str, what: str,
                         settings: S3Settings) -> None:
    import botocore.exceptions

    body = b"cartload-uploader write check\n"
    with uploader_errors_for(what, settings):
        try:
            client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=body,
                               ContentMD5=base64.b64encode(hashlib.md5(body).digest()).decode())
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in AUTH_CODES or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 403:
                raise  # reported as a permission problem
            raise RemoteError(f"the store refused a part carrying a Content-MD5 header ({code}:"
                              f" {error_message(exc)}); every part this tool sends carries one, so that the"
                              " store rejects corrupted bytes, so it cannot upload here: use a store that"
                              " checks Content-MD5 (AWS S3, MinIO and SeaweedFS do)") from None


@contextmanager
def _options_refused_as_usage(objects: ObjectOptions) -> Iterator[None]:
    """A request the store refuses as invalid (400, 501) while object options are given: those options' fault."""
    import botocore.exceptions

    try:
        yield
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if not objects.flags or status not in (400, 501) or code in AUTH_CODES:
            raise
        raise UsageError(f"the store refused an upload with {', '.join(objects.flags)} ({code}:"
                         f" {error_message(exc)}); check those options, or leave out what this store does"
                         " not support") from None

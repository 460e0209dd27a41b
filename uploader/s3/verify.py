"""What an object on the store vouches for: its listed ETag, or what a HEAD shows of it.

Which ETags are MD5s (single PUTs), which are the MD5 of the part MD5s
(multipart uploads with our part size), and which tell nothing (another part
size, SSE-KMS, SSE-C); and a HEAD's check of what the viewer needs (the
Content-Type, no Content-Encoding) and of the object options given.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from uploader.engine.operations import RemoteFile, Stored
from uploader.errors import FileUploadError
from uploader.local.content_types import content_type
from uploader.local.digests import multipart_etag_name
from uploader.local.plan import LocalFile
from uploader.s3.client import as_file_upload_error
from uploader.s3.options import ObjectOptions, canned_acl_of, stored_values
from uploader.s3.own_keys import is_tool_key
from uploader.s3.writer import is_multipart, part_size

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

SHA256_META = "sha256"
LISTING_PAGE = 1000  # keys in a ListObjectsV2 page, at most and by default
RANGES_AT_ONCE = 8


def listed_files(client: S3Client, bucket: str, prefix: str, expected: Iterable[str] = ()) -> dict[str, RemoteFile]:
    """Every object under `prefix` with what its listed ETag vouches for; the tool's own bookkeeping left out.

    More than a page of `expected` keys is listed in key ranges side by side, split at every 1,000th of them:
    on a WAN, the listing that comes before a catalog of 8,000 files is one round trip instead of eight.
    """
    bounds: list[str | None] = list(sorted(expected)[LISTING_PAGE - 1::LISTING_PAGE])
    ranges = list(zip([None, *bounds], [*bounds, None], strict=True))
    if len(ranges) == 1:
        return _listed_range(client, bucket, prefix, None, None)
    found: dict[str, RemoteFile] = {}
    with ThreadPoolExecutor(min(RANGES_AT_ONCE, len(ranges)), thread_name_prefix="list-range") as pool:
        for part in pool.map(lambda bounds: _listed_range(client, bucket, prefix, *bounds), ranges):
            found.update(part)
    return found


def _listed_range(client: S3Client, bucket: str, prefix: str, after: str | None,
                  upto: str | None) -> dict[str, RemoteFile]:
    """The objects under `prefix` whose keys sort after `after` and up to `upto` (None: no bound)."""
    found: dict[str, RemoteFile] = {}
    start: dict[str, Any] = {"StartAfter": after} if after is not None else {}
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, **start,
                                                             PaginationConfig={"PageSize": LISTING_PAGE})
    for page in pages:
        for item in page.get("Contents", []):
            key = item["Key"]
            if upto is not None and key > upto:
                return found  # the next range's
            if not is_tool_key(key, prefix):  # the tool's own: not compared, never verified, never deleted
                size, etag = item["Size"], item.get("ETag", "").strip('"')
                found[key] = RemoteFile(key, size, digests_of_etag(etag, size))
            if key == upto:
                return found  # no page more to ask for
    return found


def object_now_at(client: S3Client, bucket: str, key: str) -> RemoteFile | None:
    """What a HEAD shows of `key` (its ETag's digests and stored SHA-256), or None when there is no such object."""
    import botocore.exceptions

    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    size = int(head["ContentLength"])
    vouched = {} if etag_is_opaque(head) else digests_of_etag(head.get("ETag", "").strip('"'), size)
    if stored := head.get("Metadata", {}).get(SHA256_META):
        vouched["sha256"] = stored
    return RemoteFile(key, size, vouched)


def stored_as_headed(client: S3Client, bucket: str, key: str, file: LocalFile, objects: ObjectOptions, *,
                     updated: bool = False) -> Stored:
    """What a HEAD shows of the object; the headers the viewer needs, and the options given, are checked here.

    `updated`: after a copy onto itself, whose new ETag is accepted as the store makes it (AWS gives a
    copied multipart object a plain MD5, which only reading the whole file again could check).
    """
    try:
        head = client.head_object(Bucket=bucket, Key=key)
        wanted = objects.stored()
        kept = stored_values(head, wanted)
        if "--acl" in wanted:
            kept["--acl"] = canned_acl_of(client.get_object_acl(Bucket=bucket, Key=key),
                                          wanted["--acl"])
    except Exception as exc:
        raise as_file_upload_error(exc) from None
    problems = []
    if head.get("ContentType") != content_type(file.name):
        problems.append(f"Content-Type {head.get('ContentType')!r}")
    if head.get("ContentEncoding"):
        problems.append(f"unexpected Content-Encoding {head['ContentEncoding']!r}")
    if problems:
        raise FileUploadError(f"verification failed: {'; '.join(problems)}", retryable=True)
    if dropped := [f"{name} {value} (it holds {kept.get(name) or 'none'})" for name, value in wanted.items()
                   if kept.get(name) != value]:
        raise FileUploadError(f"the store did not keep {'; '.join(dropped)}: it ignores what was asked for; leave"
                              " the option out, or use a store that keeps it")
    sha256 = head.get("Metadata", {}).get(SHA256_META, "")  # none on a multipart upload hashed while sent
    vouched = {"sha256": sha256} if sha256 else {}
    etag, size = head.get("ETag", "").strip('"'), int(head["ContentLength"])
    opaque = etag_is_opaque(head)  # with SSE-KMS or SSE-C the ETag is not an MD5
    if updated and not opaque:
        vouched.update((name, value) for name, value in digests_of_etag(etag, size).items() if name != "md5")
    elif not opaque:
        vouched[multipart_etag_name(part_size(file.size))] = etag
    return Stored(size, vouched)


def digests_of_etag(etag: str, size: int) -> dict[str, str]:
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


def etag_is_opaque(response: Any) -> bool:
    """With SSE-KMS or SSE-C the ETag is not the MD5 of the content."""
    return str(response.get("ServerSideEncryption", "")).startswith("aws:kms") \
        or bool(response.get("SSECustomerAlgorithm"))

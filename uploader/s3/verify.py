"""What an object on the store vouches for: its listed ETag, or what a HEAD shows of it.

Which ETags are MD5s (single PUTs), which are the MD5 of the part MD5s
(multipart uploads with our part size), and which tell nothing (another part
size, SSE-KMS, SSE-C); and a HEAD's check of what the viewer needs (the
Content-Type, no Content-Encoding) and of the object options given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from uploader.backend import RemoteFile, Stored
from uploader.content_types import content_type
from uploader.errors import FileUploadError
from uploader.hashing import multipart_etag_name
from uploader.plan import LocalFile
from uploader.s3.access import OWN_KEY_MARK
from uploader.s3.client import as_file_upload_error
from uploader.s3.options import ObjectOptions, canned_acl_of, stored_values
from uploader.s3.writer import is_multipart, part_size

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

SHA256_META = "sha256"


def listed_files(client: S3Client, bucket: str, prefix: str) -> dict[str, RemoteFile]:
    """Every object under `prefix` with what its listed ETag vouches for; the tool's own bookkeeping left out."""
    found: dict[str, RemoteFile] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if item["Key"].rsplit("/", 1)[-1].startswith(OWN_KEY_MARK):
                continue  # not compared, never deleted
            size, etag = item["Size"], item.get("ETag", "").strip('"')
            found[item["Key"]] = RemoteFile(item["Key"], size, digests_of_etag(etag, size))
    return found


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
    vouched = {"sha256": head.get("Metadata", {}).get(SHA256_META, "")}
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

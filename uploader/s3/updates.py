"""Giving an unchanged object the object options a run asks for, without sending its bytes again.

engine/decide.py decides (an UPDATE when an option given differs from what the
object holds, read with a HEAD, or GetObjectAcl for --acl); this carries it
out: a server-side copy onto itself (MetadataDirective REPLACE) that keeps
its bytes, SHA-256 and Content-Type, or only a new ACL.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from uploader.engine.operations import Operation, Stored
from uploader.errors import FileUploadError
from uploader.local.content_types import content_type
from uploader.local.plan import LocalFile
from uploader.s3.client import as_file_upload_error
from uploader.s3.options import HEAD_FIELDS_KEPT, ObjectOptions, canned_acl_of, grants_as_params, stored_values
from uploader.s3.verify import SHA256_META, digests_of_etag, etag_is_opaque, stored_as_headed
from uploader.s3.writer import PART_SIZE

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

COPY_LIMIT = 5 * 1024**3  # the largest object one CopyObject copies; beyond, a multipart copy


class InPlaceUpdates:
    """Reads the options objects hold, and updates those whose options differ (see the module's text)."""

    def __init__(self, client: S3Client, bucket: str, objects: ObjectOptions) -> None:
        self.client = client
        self.bucket = bucket
        self.objects = objects
        self._lock = threading.Lock()
        self._copier: Any = None  # s3transfer's TransferManager, made for the first update of an object over 5 GiB
        # The HEAD each object's options were compared by: its update starts from it (one request less each).
        self._heads: dict[str, Any] = {}
        self._proven = threading.Event()  # an update was read back: the store keeps what it is asked
        self._acls: bool | None = None  # whether the bucket has object ACLs, once asked

    def stored_values(self, key: str, wanted: Mapping[str, str]) -> dict[str, str]:
        """What the object holds for each wanted option, in the options' terms."""
        found: dict[str, str] = {}
        if set(wanted) - {"--acl"}:
            head: Mapping[str, Any] = self.client.head_object(Bucket=self.bucket, Key=key)
            found.update(stored_values(head, wanted))
            # Kept for every compared object, changed or not: only what a copy onto itself reads.
            self._heads[key] = {name: head[name] for name in (*HEAD_FIELDS_KEPT, "ContentLength", "ETag", "Metadata")
                                if name in head}
        if "--acl" in wanted:
            acl = self.client.get_object_acl(Bucket=self.bucket, Key=key)
            found["--acl"] = canned_acl_of(acl, wanted["--acl"])
        return found

    def update(self, op: Operation, sha256: str) -> Stored:
        """Give an unchanged object the options this run asks for, without sending its bytes again."""
        file = op.file
        assert file is not None
        assert op.remote is not None
        try:
            if set(op.changes) - {"--acl"}:
                stored = self._copy_onto_itself(op.destination, file, sha256)
            else:  # only the ACL: its own request; the bytes, and so the listed digests, stay as they are
                acl: Any = self.objects.given["--acl"]
                self.client.put_object_acl(Bucket=self.bucket, Key=op.destination, ACL=acl)
                stored = Stored(op.remote.size, op.remote.digests)
        except Exception as exc:
            raise as_file_upload_error(exc) from None
        if stored is None or not self._proven.is_set():
            # As for uploads: the first update of a run is read back (a store that drops an option drops it
            # for every object); so is a copy whose answer vouches for nothing (SSE-KMS, a new plain MD5).
            stored = stored_as_headed(self.client, self.bucket, op.destination, file, self.objects, updated=True)
            self._proven.set()
        return stored

    def add_sha256(self, key: str, file: LocalFile, sha256: str) -> None:
        """Give an object stored before its SHA-256 was known (hashed while sent) that SHA-256, in place: where the
        ETag is no MD5 (SSE-KMS), only the SHA-256 vouches for its bytes."""
        try:
            self._copy_onto_itself(key, file, sha256)
        except Exception as exc:
            raise as_file_upload_error(exc) from None

    def close(self, *, cancel: bool = False) -> None:
        if self._copier is None:
            return
        if cancel:  # the context-manager exit is the way s3transfer 0.19 cancels a live copy
            self._copier.__exit__(KeyboardInterrupt, KeyboardInterrupt("interrupted"), None)
        else:
            self._copier.shutdown()

    def _copy_onto_itself(self, key: str, file: LocalFile, sha256: str) -> Stored | None:
        """A server-side copy with new headers (MetadataDirective REPLACE) that keeps what it is not asked to change.

        REPLACE drops every header not given again, and a copy's ACL is private unless given: what the
        object holds is read first and given again (its grants as Grant* headers: the copy is never
        private for a moment), with this run's options over it.
        """
        bucket = self.bucket
        head: Mapping[str, Any] = self._heads.pop(key, None) or self.client.head_object(Bucket=bucket, Key=key)
        if head["ContentLength"] != file.size:
            raise FileUploadError("it changed on the remote since it was listed; re-run to compare it again")
        grants = {} if "--acl" in self.objects.given or not self._bucket_has_acls() else self._grants_to_keep(key)
        kept = {name: head[name] for name in HEAD_FIELDS_KEPT if head.get(name)}
        if "--sse" in self.objects.given:
            kept.pop("SSEKMSKeyId", None)  # the key of the encryption it had, not of the one asked for
        extra = {**kept, **grants, "MetadataDirective": "REPLACE", "ContentType": content_type(file.name),
                 "Metadata": {**head.get("Metadata", {}), **({SHA256_META: sha256} if sha256 else {})},
                 "CopySourceIfMatch": head["ETag"],  # the object compared, not one written meanwhile
                 **self.objects.put_params(catalog=False)}
        source: Any = {"Bucket": bucket, "Key": key}
        if file.size > COPY_LIMIT:
            self._copy_manager().copy(source, bucket, key, extra_args=extra).result()
            return None
        copied = self.client.copy_object(Bucket=bucket, Key=key, CopySource=source, **extra)
        if etag_is_opaque(copied):
            return None
        etag = str(copied.get("CopyObjectResult", {}).get("ETag", "")).strip('"')
        vouched = {name: value for name, value in digests_of_etag(etag, file.size).items() if name != "md5"}
        return Stored(file.size, vouched) if vouched else None  # the source's size: CopySourceIfMatch held

    def _bucket_has_acls(self) -> bool:
        """False when the bucket's ObjectOwnership is BucketOwnerEnforced (AWS's default): no ACL to keep."""
        import botocore.exceptions

        with self._lock:
            if self._acls is None:
                try:
                    rules = self.client.get_bucket_ownership_controls(Bucket=self.bucket)
                    owners = {rule.get("ObjectOwnership") for rule in rules["OwnershipControls"]["Rules"]}
                    self._acls = owners != {"BucketOwnerEnforced"}
                except botocore.exceptions.ClientError:  # none set, not implemented, or not allowed to ask
                    self._acls = True
            return self._acls

    def _grants_to_keep(self, key: str) -> dict[str, str]:
        """The object's ACL as Grant* parameters, if it grants more than its owner's FULL_CONTROL (else none)."""
        import botocore.exceptions

        try:
            acl = self.client.get_object_acl(Bucket=self.bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NotImplemented", "AccessControlListNotSupported"):
                return {}  # a store or bucket without ACLs: nothing to lose
            raise
        return {} if canned_acl_of(acl, "private") == "private" else grants_as_params(acl)

    def _copy_manager(self) -> Any:
        """One s3transfer manager for the run, for objects over 5 GiB: a multipart copy in our part size."""
        with self._lock:
            if self._copier is None:
                from s3transfer.manager import TransferConfig, TransferManager

                self._copier = TransferManager(self.client, TransferConfig(
                    multipart_threshold=COPY_LIMIT, multipart_chunksize=PART_SIZE))
            return self._copier

"""The object options S3 users know from aws cli and s5cmd: ACL, Cache-Control, storage class, SSE, requester pays.

They are given once for the run and go with every PutObject and
CreateMultipartUpload (and the request payer with every request). Those
stored with an object (all but the request payer) are compared with what an
unchanged object holds, on a run that gives them: the values a HEAD (or, for
the ACL, GetObjectAcl) shows are turned here into the options' own terms, so
that equal means "nothing to update".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

# The canned ACLs of an object (aws-exec-read, for EC2 AMI bundles, and log-delivery-write, a bucket's, are not).
CANNED_ACLS = ("private", "public-read", "public-read-write", "authenticated-read", "bucket-owner-read",
               "bucket-owner-full-control")
# aws cli's choices, less those whose objects cannot be read until restored (see settings).
STORAGE_CLASSES = ("STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR")
ARCHIVE_STORAGE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")
SSE_ALGORITHMS = ("AES256", "aws:kms", "aws:kms:dsse")
REQUEST_PAYERS = ("requester",)
# The viewer reads catalog.yaml first; re-published when a layer is added, it must not be served stale.
CATALOG_CACHE_CONTROL = "no-cache"

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
# What each canned ACL grants beyond the object owner's FULL_CONTROL ("user": another account, the bucket owner).
_GRANTS_OF = {
    "private": frozenset(),
    "public-read": frozenset({(ALL_USERS, "READ")}),
    "public-read-write": frozenset({(ALL_USERS, "READ"), (ALL_USERS, "WRITE")}),
    "authenticated-read": frozenset({(AUTHENTICATED_USERS, "READ")}),
    "bucket-owner-read": frozenset({("user", "READ")}),
    "bucket-owner-full-control": frozenset({("user", "FULL_CONTROL")}),
}


@dataclass(frozen=True)
class ObjectOptions:
    """The object options of a run (None: not given, the store's default)."""

    acl: str | None = None
    cache_control: str | None = None
    storage_class: str | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = None
    request_payer: str | None = None

    def stored(self) -> dict[str, str]:
        """The options given that an object keeps, by option name: compared with an unchanged object's."""
        given = {"--acl": self.acl, "--cache-control": self.cache_control, "--storage-class": self.storage_class,
                 "--sse": self.sse, "--sse-kms-key-id": self.sse_kms_key_id}
        if self.sse_kms_key_id and is_kms_alias(self.sse_kms_key_id):
            del given["--sse-kms-key-id"]  # an object shows its key's ARN, never the alias: not comparable
        return {name: value for name, value in given.items() if value}

    def put_params(self, *, catalog: bool) -> dict[str, Any]:
        """What a PutObject or CreateMultipartUpload of a file carries, in boto3's names."""
        params = {"ACL": self.acl, "CacheControl": self.cache_control or (CATALOG_CACHE_CONTROL if catalog else None),
                  "StorageClass": self.storage_class, "ServerSideEncryption": self.sse,
                  "SSEKMSKeyId": self.sse_kms_key_id, "RequestPayer": self.request_payer}
        return {name: value for name, value in params.items() if value}

    @property
    def flags(self) -> list[str]:
        """The options given, as they were typed (for messages)."""
        values = {"--acl": self.acl, "--cache-control": self.cache_control, "--storage-class": self.storage_class,
                  "--sse": self.sse, "--sse-kms-key-id": self.sse_kms_key_id, "--request-payer": self.request_payer}
        return [f"{name} {value}" for name, value in values.items() if value]


def send_request_payer_always(client: S3Client, payer: str) -> None:
    """--request-payer on every request that takes it (list, HEAD, copy...), not only on writes."""
    def add(params: dict[str, Any], model: Any, **kwargs: Any) -> None:  # botocore's before-parameter-build
        shape = model.input_shape
        if shape is not None and "RequestPayer" in shape.members:
            params.setdefault("RequestPayer", payer)

    client.meta.events.register("before-parameter-build.s3", add)


def is_kms_alias(key_id: str) -> bool:
    return key_id.startswith("alias/") or ":alias/" in key_id


def stored_values(head: Mapping[str, Any], wanted: Mapping[str, str]) -> dict[str, str]:
    """What a HEAD shows for each wanted option except --acl, in the option's terms (and the headers asked)."""
    shown = {
        "--cache-control": str(head.get("CacheControl") or ""),
        "--storage-class": str(head.get("StorageClass") or "STANDARD"),  # a HEAD leaves STANDARD out
        "--sse": str(head.get("ServerSideEncryption") or ""),
        "--sse-kms-key-id": same_kms_key(str(head.get("SSEKMSKeyId") or ""), wanted.get("--sse-kms-key-id", "")),
        # Headers readers depend on (S3Backend.published_headers), compared as stored.
        "Content-Type": str(head.get("ContentType") or ""),
        "Content-Encoding": str(head.get("ContentEncoding") or ""),
    }
    return {name: shown[name] for name in wanted if name in shown}


def same_kms_key(stored: str, given: str) -> str:
    """The stored key as given when it is that key: S3 shows its ARN, a user may give its id."""
    if stored and given and (stored == given or stored.endswith(f":key/{given}")):
        return given
    return stored


def canned_acl_of(acl: Mapping[str, Any], wanted: str) -> str:
    """The canned ACL a GetObjectAcl answer amounts to (`wanted` when it is that one), else its grants in words."""
    owner = acl.get("Owner", {}).get("ID")
    extra = set()
    for grant in acl.get("Grants", []):
        grantee, permission = grant.get("Grantee", {}), grant.get("Permission", "")
        if grantee.get("Type") == "Group":
            extra.add((grantee.get("URI", ""), permission))
        elif grantee.get("ID") != owner or permission != "FULL_CONTROL":
            extra.add(("user", permission))
    if not extra and wanted.startswith("bucket-owner-"):
        return wanted  # the uploader owns the bucket: these grant it nothing more (as on buckets without ACLs)
    for name, grants in _GRANTS_OF.items():
        if extra == grants:
            return name
    return "grants " + ", ".join(sorted(f"{who.rsplit('/', 1)[-1]} {permission}" for who, permission in extra))


# A grant's permission as the header that gives it with an upload or copy (an object's WRITE means nothing).
_GRANT_PARAMS = {"READ": "GrantRead", "READ_ACP": "GrantReadACP", "WRITE_ACP": "GrantWriteACP",
                 "FULL_CONTROL": "GrantFullControl"}
_GRANTEE_KEYS = {"CanonicalUser": ("id", "ID"), "Group": ("uri", "URI"), "AmazonCustomerByEmail": ("emailAddress",
                                                                                                 "EmailAddress")}


def grants_as_params(acl: Mapping[str, Any]) -> dict[str, str]:
    """A GetObjectAcl answer as the Grant* parameters that give an upload or a copy the same ACL."""
    by_param: dict[str, list[str]] = {}
    for grant in acl.get("Grants", []):
        grantee, param = grant.get("Grantee", {}), _GRANT_PARAMS.get(grant.get("Permission", ""))
        key = _GRANTEE_KEYS.get(grantee.get("Type", ""))
        if param and key and grantee.get(key[1]):
            by_param.setdefault(param, []).append(f'{key[0]}="{grantee[key[1]]}"')
    return {param: ", ".join(grantees) for param, grantees in by_param.items()}

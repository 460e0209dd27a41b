"""The object options S3 users know from aws cli and s5cmd: ACL, Cache-Control, storage class, SSE, requester pays.

They are given once for the run and go with every PutObject and
CreateMultipartUpload (and the request payer with every request). Those
stored with an object (all but the request payer) are compared with what an
unchanged object holds, on a run that gives them: the values a HEAD (or, for
the ACL, GetObjectAcl) shows are turned here into the options' own terms, so
that equal means "nothing to update".

Every object option is one row of OBJECT_OPTIONS: its name, its boto3
parameter, how its value is checked, and how a HEAD shows it. The request
parameters, the headers a copy onto itself keeps, the comparison with a
stored object and the checks of the command line are all made from that
table: a new object option is its line in the usage text and its row here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from uploader.engine.settings import Given, choice
from uploader.errors import UsageError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

# The canned ACLs of an object (aws-exec-read, for EC2 AMI bundles, and log-delivery-write, a bucket's, are not).
CANNED_ACLS = ("private", "public-read", "public-read-write", "authenticated-read", "bucket-owner-read",
               "bucket-owner-full-control")
# aws cli's choices, less those whose objects cannot be read until restored.
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

# option name, value given, the object options checked before it (by name), the summary's notes -> the value to use
Check = Callable[[str, str, Mapping[str, str], list[str]], str]
# a HEAD's answer, the value wanted -> what the object holds, in the option's terms
Shown = Callable[[Mapping[str, Any], str], str]


@dataclass(frozen=True)
class ObjectOption:
    """One object option: its name on the command line, its boto3 parameter, its check, how a stored object shows
    it."""

    name: str  # e.g. --cache-control
    param: str  # boto3's name of the request parameter, e.g. CacheControl
    check: Check
    head: Shown | None = None  # how a HEAD shows it (None: it does not; --acl is read with GetObjectAcl)
    kept: bool = True  # an object keeps it (then it is compared with an unchanged object's)
    comparable: Callable[[str], bool] = lambda value: True  # whether a stored object can show this value
    catalog_default: str | None = None  # what the catalog gets when the option is not given


def _one_of(choices: tuple[str, ...]) -> Check:
    def check(name: str, value: str, earlier: Mapping[str, str], notes: list[str]) -> str:
        return str(choice(value, name, choices))
    return check


def _header_value(examples: str) -> Check:
    """An HTTP header value: printable ASCII, spaces around it dropped."""
    def check(name: str, value: str, earlier: Mapping[str, str], notes: list[str]) -> str:
        stripped = value.strip()
        if not stripped or not (stripped.isascii() and stripped.isprintable()):
            raise UsageError(f"{name} {value!r}: must be an HTTP header value of printable ASCII, e.g. {examples}")
        return stripped
    return check


def _check_storage_class(name: str, value: str, earlier: Mapping[str, str], notes: list[str]) -> str:
    if value.upper() in ARCHIVE_STORAGE_CLASSES:
        raise UsageError(f"--storage-class {value}: objects in {value.upper()} cannot be read until restored, so the"
                         " viewer cannot open the dataset and a re-run cannot read its catalog; use GLACIER_IR"
                         " (instant retrieval) or STANDARD_IA, or move old data to"
                         f" {value.upper()} with a lifecycle rule")
    return str(choice(value.upper(), "--storage-class", STORAGE_CLASSES))


def _check_kms_key(name: str, value: str, earlier: Mapping[str, str], notes: list[str]) -> str:
    if not earlier.get("--sse", "").startswith("aws:kms"):
        raise UsageError(f"--sse-kms-key-id {value}: a KMS key needs --sse aws:kms (or aws:kms:dsse)")
    if not value.strip():
        raise UsageError("--sse-kms-key-id: give the key's id, ARN or alias (alias/NAME)")
    if is_kms_alias(value):
        notes.append(f"--sse-kms-key-id {value}: an object shows its key's ARN, never an alias, so objects already"
                     " there are not compared by key; new and changed files use it (--restart re-sends them all)")
    return value


def is_kms_alias(key_id: str) -> bool:
    return key_id.startswith("alias/") or ":alias/" in key_id


def same_kms_key(stored: str, given: str) -> str:
    """The stored key as given when it is that key: S3 shows its ARN, a user may give its id."""
    if stored and given and (stored == given or stored.endswith(f":key/{given}")):
        return given
    return stored


OBJECT_OPTIONS = (
    ObjectOption("--acl", "ACL", _one_of(CANNED_ACLS)),
    ObjectOption("--cache-control", "CacheControl", _header_value("'no-cache' or 'public, max-age=3600'"),
                 head=lambda head, wanted: str(head.get("CacheControl") or ""), catalog_default=CATALOG_CACHE_CONTROL),
    ObjectOption("--storage-class", "StorageClass", _check_storage_class,
                 head=lambda head, wanted: str(head.get("StorageClass") or "STANDARD")),  # a HEAD leaves STANDARD out
    ObjectOption("--sse", "ServerSideEncryption", _one_of(SSE_ALGORITHMS),
                 head=lambda head, wanted: str(head.get("ServerSideEncryption") or "")),
    ObjectOption("--sse-kms-key-id", "SSEKMSKeyId", _check_kms_key,
                 head=lambda head, wanted: same_kms_key(str(head.get("SSEKMSKeyId") or ""), wanted),
                 comparable=lambda key: not is_kms_alias(key)),  # an object shows its key's ARN, never the alias
    ObjectOption("--request-payer", "RequestPayer", _one_of(REQUEST_PAYERS), kept=False),
)
# What a HEAD shows of an object that a copy onto itself (MetadataDirective REPLACE) must give again, or the object
# loses it: the headers no option sets, and those the object options set.
HEAD_FIELDS_KEPT = tuple(dict.fromkeys(("ContentDisposition", "ContentLanguage",
                                        *(row.param for row in OBJECT_OPTIONS if row.head))))


def read_object_options(given: Given) -> ObjectOptions:
    """The object options given on the command line, each checked by its row, in the table's order."""
    checked: dict[str, str] = {}
    for row in OBJECT_OPTIONS:
        if given[row.name] is not None:
            checked[row.name] = row.check(row.name, given[row.name], checked, given.notes)
    return ObjectOptions(checked)


@dataclass(frozen=True)
class ObjectOptions:
    """The object options of a run, by name, as checked (those not given: the store's default)."""

    given: Mapping[str, str] = field(default_factory=dict)

    def stored(self) -> dict[str, str]:
        """The options given that an object keeps, by option name: compared with an unchanged object's."""
        return {row.name: self.given[row.name] for row in OBJECT_OPTIONS
                if row.kept and self.given.get(row.name) and row.comparable(self.given[row.name])}

    def put_params(self, *, catalog: bool) -> dict[str, Any]:
        """What a PutObject or CreateMultipartUpload of a file carries, in boto3's names."""
        params = {row.param: self.given.get(row.name) or (row.catalog_default if catalog else None)
                  for row in OBJECT_OPTIONS}
        return {name: value for name, value in params.items() if value}

    @property
    def flags(self) -> list[str]:
        """The options given, as they were typed (for messages)."""
        return [f"{row.name} {self.given[row.name]}" for row in OBJECT_OPTIONS if self.given.get(row.name)]


def send_request_payer_always(client: S3Client, payer: str) -> None:
    """--request-payer on every request that takes it (list, HEAD, copy...), not only on writes."""
    def add(params: dict[str, Any], model: Any, **kwargs: Any) -> None:  # botocore's before-parameter-build
        shape = model.input_shape
        if shape is not None and "RequestPayer" in shape.members:
            params.setdefault("RequestPayer", payer)

    client.meta.events.register("before-parameter-build.s3", add)


def stored_values(head: Mapping[str, Any], wanted: Mapping[str, str]) -> dict[str, str]:
    """What a HEAD shows for each wanted option except --acl, in the option's terms (and the reader headers asked)."""
    shown = {row.name: row.head(head, wanted[row.name]) for row in OBJECT_OPTIONS if row.head and row.name in wanted}
    return shown | {name: str(head.get(field) or "") for name, field in READER_HEADERS.items() if name in wanted}


# Headers readers depend on (S3Backend.published_headers), as a HEAD shows them: compared as stored.
READER_HEADERS = {"Content-Type": "ContentType", "Content-Encoding": "ContentEncoding"}


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

"""Options gathered from the command line (and environment) into typed settings.

Each value is checked here, so that the rest of the program can trust it and
a bad value is reported by the option's name before anything else happens.

The options both commands share are one dataclass, `CommonSettings`, read
field by field from the parsed usage (field `n_jobs` is option `--n-jobs`):
a new shared option is its line in cli.COMMON_OPTIONS and its field here.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from uploader.errors import InputError, UsageError
from uploader.local.catalog import Group
from uploader.local.plan import ALL_GROUPS, CATALOG_NAME, Shard
from uploader.local.shards import parse_shard
from uploader.s3.options import (
    ARCHIVE_STORAGE_CLASSES,
    CANNED_ACLS,
    REQUEST_PAYERS,
    SSE_ALGORITHMS,
    STORAGE_CLASSES,
    ObjectOptions,
    is_kms_alias,
)
from uploader.s3.viewer import VIEWER_URL, ViewerSettings
from uploader.zenodo.pacing import ZenodoTiming

log = logging.getLogger("uploader")

MAX_JOBS = 256  # cartloader sets no limit; its users pass up to a few hundred on HPC nodes


@dataclass(frozen=True)
class CommonSettings:
    """The options every upload command shares (cli.COMMON_OPTIONS), one field per option."""

    in_dir: Path
    catalog_yaml: Path | None
    n_jobs: int
    dry_run: bool
    restart: bool
    report: Path | None
    quiet: bool
    no_progress: bool
    no_markers: bool

    @property
    def catalog_path(self) -> Path:
        return self.catalog_yaml or self.in_dir / CATALOG_NAME


@dataclass(frozen=True)
class AwsSettings:
    """upload_aws: where to, which groups, and how to reach the store."""

    common: CommonSettings
    s3_dir: str
    in_list: Path | None
    groups: frozenset[Group]
    profile: str | None
    endpoint_url: str | None
    notes: tuple[str, ...] = ()  # about cartloader's options accepted here, told with the summary
    addressing_style: str = "auto"
    viewer: ViewerSettings = field(default_factory=ViewerSettings)
    stall_seconds: float = 120.0  # stop after this long without progress
    take_over: bool = False
    abort_incomplete: bool = False
    objects: ObjectOptions = field(default_factory=ObjectOptions)  # --acl, --cache-control, ... --request-payer
    delete: bool = False  # --delete: remove what the catalog does not name, once it is published
    shard: Shard | None = None  # --shard: this worker's share of the files


@dataclass(frozen=True)
class ZenodoCommandSettings:
    """upload_zenodo: what to upload and where (the backend's own settings are built from this)."""

    common: CommonSettings
    upload_method: str
    files: tuple[str, ...]
    api_url: str
    token: str = field(repr=False)
    deposition_id: int | None
    metadata: dict[str, Any]
    publish: bool
    overwrite: bool
    max_record_bytes: int  # Zenodo's quota of this record (50 GB unless Zenodo raised it)
    timing: ZenodoTiming  # timeouts, waits and pacing (CARTLOAD_UPLOADER_ZENODO_* variables)
    notes: tuple[str, ...] = ()  # about defaults filled in and cartloader's old spellings, told with the summary


# -- the shared options ---------------------------------------------------------------------


def common_settings(args: dict[str, Any], defaults: dict[str, Any]) -> CommonSettings:
    """The shared options of a parsed usage; `defaults` fills those the command defaults itself."""
    values: dict[str, Any] = {}
    for spec in fields(CommonSettings):
        option = "--" + spec.name.replace("_", "-")
        raw = args.get(option)
        values[spec.name] = defaults.get(spec.name) if raw is None else _CONVERTERS[str(spec.type)](raw, option)
    settings = CommonSettings(**values)
    if settings.report is not None:
        _check_report_path(settings.report)
    return settings


def _required_path(raw: str, option: str) -> Path:
    return Path(raw)


def _optional_path(raw: str | None, option: str) -> Path | None:
    return Path(raw) if raw else None


def _flag(raw: bool, option: str) -> bool:
    return bool(raw)


def _jobs(raw: str, option: str) -> int:
    return positive_int(raw, option, maximum=MAX_JOBS)


_CONVERTERS: dict[str, Callable[[Any, str], Any]] = {
    "Path": _required_path, "Path | None": _optional_path, "bool": _flag, "int": _jobs,
}


def _check_report_path(report: Path) -> None:
    if str(report) == "-":
        return
    parent = report.absolute().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UsageError(f"--report {report}: directory {parent} does not exist or is not writable")


def positive_int(text: str, option: str, maximum: int) -> int:
    """Parse a whole number from 1 to `maximum` or raise a UsageError naming the option."""
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{option} {text}: must be a whole number from 1 to {maximum}") from None
    if not 1 <= value <= maximum:
        raise UsageError(f"{option} {text}: must be a whole number from 1 to {maximum}")
    return value


# -- upload_aws -----------------------------------------------------------------------------


AWS_DEFAULTS = {"n_jobs": 256}  # many small requests in flight: a WAN round trip each (as s5cmd)
VIEWER_TIMEOUT_ENV = "CARTLOAD_UPLOADER_VIEWER_TIMEOUT"
ADDRESSING_STYLES = ("auto", "path", "virtual")
GROUP_FLAGS = {"--upload-basics-only": Group.BASICS, "--upload-optional-only": Group.OPTIONAL,
               "--upload-basemap-only": Group.BASEMAP}


def aws_settings(args: dict[str, Any]) -> AwsSettings:
    """upload_aws settings from its parsed usage."""
    common = common_settings(args, AWS_DEFAULTS)
    if args["--in-list"] and common.catalog_yaml:
        raise UsageError("--catalog-yaml cannot be used with --in-list: each sample's catalog.yaml"
                         " is read from its own directory")
    endpoint = args["--endpoint-url"]
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise UsageError(f"--endpoint-url {endpoint}: must start with http:// or https://")
    notes = []
    if args["--aws"]:
        notes.append(f"--aws {args['--aws']} is not needed: uploads go through boto3, no AWS CLI is used")
    if args["--makefn"]:
        notes.append(f"--makefn {args['--makefn']} is ignored: no Makefile is written (a re-run compares"
                     " with the bucket instead)")
    style = args["--addressing-style"] or "auto"
    if style not in ADDRESSING_STYLES:
        raise UsageError(f"--addressing-style {style}: choose one of {', '.join(ADDRESSING_STYLES)}")
    stall = args["--stall-timeout"]
    objects = _object_options(args, notes)
    groups = _groups(args)
    shard = parse_shard(args["--shard"], os.environ) if args["--shard"] is not None else None
    if args["--delete"]:
        _check_delete(args)
    return AwsSettings(common=common, s3_dir=args["--s3-dir"], in_list=_optional_path(args["--in-list"], ""),
                       groups=groups, profile=args["--profile"], endpoint_url=endpoint, notes=tuple(notes),
                       addressing_style=style, viewer=_viewer(args), objects=objects, delete=bool(args["--delete"]),
                       stall_seconds=_seconds(stall, "--stall-timeout", 86400) if stall else AwsSettings.stall_seconds,
                       take_over=bool(args["--take-over"]), abort_incomplete=bool(args["--abort-incomplete-uploads"]),
                       shard=shard)


def _object_options(args: dict[str, Any], notes: list[str]) -> ObjectOptions:
    """--acl, --cache-control, --storage-class, --sse, --sse-kms-key-id and --request-payer, checked."""
    acl = _choice(args["--acl"], "--acl", CANNED_ACLS)
    cache_control = args["--cache-control"]
    if cache_control is not None:
        cache_control = cache_control.strip()
        if not cache_control or not (cache_control.isascii() and cache_control.isprintable()):
            raise UsageError(f"--cache-control {args['--cache-control']!r}: must be an HTTP header value of"
                             " printable ASCII, e.g. 'no-cache' or 'public, max-age=3600'")
    storage_class = args["--storage-class"]
    if storage_class and storage_class.upper() in ARCHIVE_STORAGE_CLASSES:
        raise UsageError(f"--storage-class {storage_class}: objects in {storage_class.upper()} cannot be read"
                         " until restored, so the viewer cannot open the dataset and a re-run cannot read its"
                         " catalog; use GLACIER_IR (instant retrieval) or STANDARD_IA, or move old data to"
                         f" {storage_class.upper()} with a lifecycle rule")
    storage_class = _choice(storage_class and storage_class.upper(), "--storage-class", STORAGE_CLASSES)
    sse = _choice(args["--sse"], "--sse", SSE_ALGORITHMS)
    key = args["--sse-kms-key-id"]
    if key is not None and not (sse or "").startswith("aws:kms"):
        raise UsageError(f"--sse-kms-key-id {key}: a KMS key needs --sse aws:kms (or aws:kms:dsse)")
    if key is not None and not key.strip():
        raise UsageError("--sse-kms-key-id: give the key's id, ARN or alias (alias/NAME)")
    if key and is_kms_alias(key):
        notes.append(f"--sse-kms-key-id {key}: an object shows its key's ARN, never an alias, so objects already"
                     " there are not compared by key; new and changed files use it (--restart re-sends them all)")
    payer = _choice(args["--request-payer"], "--request-payer", REQUEST_PAYERS)
    return ObjectOptions(acl=acl, cache_control=cache_control, storage_class=storage_class, sse=sse,
                         sse_kms_key_id=key, request_payer=payer)


def _choice(value: str | None, option: str, choices: tuple[str, ...]) -> str | None:
    """`value` as spelled in `choices` (any letter case), None when not given; else a UsageError naming them."""
    if value is None:
        return None
    found = next((choice for choice in choices if choice.lower() == value.lower()), None)
    if found is None:
        raise UsageError(f"{option} {value}: choose one of {', '.join(choices)}")
    return found


def _check_delete(args: dict[str, Any]) -> None:
    """--delete needs the dataset's whole plan, and a prefix to stay inside."""
    from uploader.s3.destination import S3Destination

    partial = [flag for flag in GROUP_FLAGS if args[flag]] + (["--shard"] if args.get("--shard") else [])
    if partial:
        raise UsageError(f"--delete cannot be used with {partial[0]}: that run sends only part of the dataset,"
                         " so what the rest of the catalog needs is not known to be in place; run --delete with"
                         " the full upload")
    if not args["--in-list"] and not S3Destination.parse(args["--s3-dir"]).prefix:
        raise UsageError(f"--delete with --s3-dir {args['--s3-dir']}: without a prefix it would delete every object"
                         " of the bucket that the catalog does not name; give the dataset's own prefix,"
                         " s3://BUCKET/PREFIX")


def _viewer(args: dict[str, Any]) -> ViewerSettings:
    if args["--no-viewer-check"] and args["--require-viewer-ready"]:
        raise UsageError("--no-viewer-check and --require-viewer-ready exclude each other: choose one")
    url = args["--viewer-url"] or VIEWER_URL
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise UsageError(f"--viewer-url {url}: must be an https:// URL, e.g. {VIEWER_URL}")
    timeout = os.environ.get(VIEWER_TIMEOUT_ENV, "").strip()
    return ViewerSettings(url=url, check=not args["--no-viewer-check"],
                          require_ready=bool(args["--require-viewer-ready"]), setup=bool(args["--setup-viewer-access"]),
                          timeout=_seconds(timeout, VIEWER_TIMEOUT_ENV) if timeout else ViewerSettings.timeout)


def _seconds(text: str, name: str, at_most: float = 3600) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= at_most:
        separator = "=" if name.isupper() else " "  # an environment variable, or an option
        raise UsageError(f"{name}{separator}{text}: must be a number of seconds, more than 0 and at most"
                         f" {at_most:g}")
    return value


def _groups(args: dict[str, Any]) -> frozenset[Group]:
    only = [flag for flag in GROUP_FLAGS if args[flag]]
    if len(only) > 1:
        raise UsageError(f"{' and '.join(only)} exclude each other: choose one (or none, to upload every group)")
    return frozenset({GROUP_FLAGS[only[0]]}) if only else ALL_GROUPS


# -- upload_zenodo --------------------------------------------------------------------------


ZENODO_DEFAULTS = {"n_jobs": 4}
ZENODO_TOKEN_ENV = "ZENODO_TOKEN"
ZENODO_URL_ENV = "CARTLOAD_UPLOADER_ZENODO_URL"
UPLOAD_METHODS = ("catalog", "all", "files")


def zenodo_settings(args: dict[str, Any]) -> ZenodoCommandSettings:
    """upload_zenodo settings from its parsed usage."""
    common = common_settings(args, ZENODO_DEFAULTS)
    notes: list[str] = []
    method, names = _upload_method(args, common, notes)
    deposition_id = _deposition_id(args)
    metadata = _metadata(args, notes, new_deposition=deposition_id is None)
    return ZenodoCommandSettings(
        common=common, upload_method=method, files=names, api_url=_api_url(args),
        token=read_zenodo_token(_token_path(args, notes)), deposition_id=deposition_id, metadata=metadata,
        publish=bool(args["--publish"]), overwrite=bool(args["--overwrite"]),
        max_record_bytes=_max_record_bytes(args), timing=ZenodoTiming.from_environment(os.environ), notes=tuple(notes),
    )


def _max_record_bytes(args: dict[str, Any]) -> int:
    from uploader.zenodo.backend import MAX_BYTES

    raw = args["--max-record-bytes"]
    return positive_int(raw, "--max-record-bytes", maximum=10**15) if raw else MAX_BYTES


def _upload_method(args: dict[str, Any], common: CommonSettings, notes: list[str]) -> tuple[str, tuple[str, ...]]:
    method, names = args["--upload-method"], list(args["--files"])
    if method == "user_list" or args["--in-list"]:
        method, names = _legacy_user_list(args, notes)
    method = method or "catalog"
    if method not in UPLOAD_METHODS:
        raise UsageError(f"--upload-method {method}: choose one of {', '.join(UPLOAD_METHODS)}")
    if method != "files" and names:
        raise UsageError(f"--files names the files of --upload-method files, not of --upload-method {method}")
    if method == "files" and not names:
        raise UsageError("--upload-method files needs the files: --files NAME...")
    names = [_name_in_dir(name, common.in_dir) for name in names]
    if len(set(names)) != len(names):
        raise UsageError("--files: a file is named twice; Zenodo file names are unique")
    if common.catalog_yaml and method != "catalog":
        raise UsageError("--catalog-yaml only applies to --upload-method catalog")
    return method, tuple(names)


def _legacy_user_list(args: dict[str, Any], notes: list[str]) -> tuple[str, list[str]]:
    """cartloader's first upload_zenodo: `--upload-method user_list --in-list NAME...` meant today's files."""
    method = args["--upload-method"]
    if method not in (None, "user_list"):
        raise UsageError(f"--in-list names the files of --upload-method user_list, not of --upload-method {method}")
    if args["--files"]:
        raise UsageError("--in-list and --files both name files to upload; give --files only")
    if not args["--in-list"]:
        raise UsageError("--upload-method user_list needs its files: --in-list NAME... (today: --files NAME...)")
    notes.append("--upload-method user_list --in-list NAME... is cartloader's old spelling of"
                 " --upload-method files --files NAME...; use that")
    return "files", list(args["--in-list"])


def _name_in_dir(name: str, in_dir: Path) -> str:
    """A --files value as a name in --in-dir: cartloader also takes the absolute path of a file there."""
    path = Path(name)
    if not path.is_absolute():
        return name
    if os.path.realpath(path.parent) != os.path.realpath(in_dir):
        raise UsageError(f"--files {name}: not directly inside --in-dir {in_dir}; Zenodo has no folders,"
                         " so name files in --in-dir (copy it there first)")
    return path.name


def _token_path(args: dict[str, Any], notes: list[str]) -> str | None:
    path, legacy = args["--zenodo-token"], args["--token-file"]
    if not legacy:
        return str(path) if path else None
    if path and path != legacy:
        raise UsageError("--token-file and --zenodo-token name different files; give --zenodo-token only")
    notes.append("--token-file is deprecated; use --zenodo-token FILE (the same)")
    return str(legacy)


def _api_url(args: dict[str, Any]) -> str:
    from uploader.zenodo.backend import PRODUCTION_API, SANDBOX_API

    if args["--zenodo-url"] and args["--sandbox"]:
        raise UsageError("--zenodo-url and --sandbox exclude each other: --sandbox means --zenodo-url " + SANDBOX_API)
    where, api_url = "--zenodo-url", args["--zenodo-url"] or (SANDBOX_API if args["--sandbox"] else "")
    if not api_url and os.environ.get(ZENODO_URL_ENV):
        where, api_url = ZENODO_URL_ENV, os.environ[ZENODO_URL_ENV]
    api_url = str(api_url or PRODUCTION_API)
    if not api_url.startswith(("http://", "https://")):
        raise UsageError(f"{where} {api_url}: must start with https:// (e.g. {PRODUCTION_API})")
    return api_url.rstrip("/")


def _deposition_id(args: dict[str, Any]) -> int | None:
    ids = {i for i in (args["--zenodo-id"], args["--zenodo-deposition-id"]) if i}
    if len(ids) > 1:
        raise UsageError("--zenodo-id and --zenodo-deposition-id name different depositions; give one")
    return positive_int(ids.pop(), "--zenodo-id", maximum=10**12) if ids else None


def _metadata(args: dict[str, Any], notes: list[str], *, new_deposition: bool) -> dict[str, Any]:
    """The metadata fields the options (and --metadata FILE) give: only those, the rest of a deposition stays."""
    from uploader.zenodo.record_metadata import wanted_metadata

    return wanted_metadata(args, notes, new_deposition=new_deposition)


def read_zenodo_token(path: str | None) -> str:
    """The token from --zenodo-token FILE, else $ZENODO_TOKEN; never echoed, not even in part.

    A file saved by a Windows editor (UTF-8 BOM, CRLF) or with spaces around the
    token is read as the token alone; a file with two non-empty lines is refused
    rather than guessed at.
    """
    if path:
        return _one_token(_read_token_file(Path(path)), f"--zenodo-token {path}")
    text = os.environ.get(ZENODO_TOKEN_ENV, "")
    if not text.strip():
        raise UsageError("no Zenodo token: pass --zenodo-token FILE (a file holding the token)"
                         f" or set {ZENODO_TOKEN_ENV}")
    return _one_token(text, ZENODO_TOKEN_ENV)


def _read_token_file(path: Path) -> str:
    where = f"--zenodo-token {path}"
    try:
        data = path.read_bytes()
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError([f"{where}: file not found"]) from None
    except PermissionError:
        raise InputError([unreadable_token_file(str(path))]) from None
    except OSError as exc:
        raise InputError([f"{where}: cannot read it ({exc.strerror or exc.__class__.__name__})"]) from None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        # As ssh does for a private key: say so, and go on.
        log.warning("warning: %s is readable by other users (mode %s); make it private: chmod 600 %s",
                    where, oct(stat.S_IMODE(mode))[2:].zfill(4), path)
    try:
        return data.decode("utf-8-sig")  # -sig: a byte-order mark is not part of the token
    except UnicodeDecodeError:
        raise InputError([f"{where}: is not a text file; put only the token in it"]) from None


def _one_token(text: str, where: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise InputError([f"{where}: the file is empty; put the token in it"])
    if len(lines) > 1:
        raise InputError([f"{where}: holds {len(lines)} non-empty lines; put only the token in it, on one line"])
    token = lines[0]
    if not token.isprintable() or any(character.isspace() for character in token):
        raise InputError([f"{where}: the token contains spaces or control characters; put only the token in it"])
    return token


def unreadable_token_file(path: str) -> str:
    """Who cannot read the token file and the fix (typically a `chmod 600` file mounted into a container run as
    another uid)."""
    try:
        info = os.stat(path)
        owner = f" (owner uid {info.st_uid}, mode {info.st_mode & 0o777:o})"
    except OSError:
        owner = ""
    return (f"--zenodo-token {path}: not readable by uid {os.getuid()}{owner}; run as the file's owner"
            f" (docker run --user \"$(id -u):$(id -g)\"), or pass the token in {ZENODO_TOKEN_ENV} instead")

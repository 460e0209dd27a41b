"""Options gathered from the command line (and environment) into typed settings.

Each value is checked here, so that the rest of the program can trust it and
a bad value is reported by the option's name before anything else happens.

The options both commands share are one dataclass, `CommonSettings`, read
field by field from the parsed usage (field `n_jobs` is option `--n-jobs`):
a new shared option is its line in cli.COMMON_OPTIONS and its field here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from uploader.catalog import Group
from uploader.errors import UsageError
from uploader.plan import ALL_GROUPS, CATALOG_NAME
from uploader.zenodo.pacing import ZenodoTiming

MAX_JOBS = 64


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
    aws_cli: str | None


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


AWS_DEFAULTS = {"n_jobs": 8}
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
    return AwsSettings(common=common, s3_dir=args["--s3-dir"], in_list=_optional_path(args["--in-list"], ""),
                       groups=_groups(args), profile=args["--profile"], endpoint_url=endpoint, aws_cli=args["--aws"])


def _groups(args: dict[str, Any]) -> frozenset[Group]:
    only = [flag for flag in GROUP_FLAGS if args[flag]]
    if len(only) > 1:
        raise UsageError(f"{' and '.join(only)} exclude each other: choose one (or none, to upload every group)")
    return frozenset({GROUP_FLAGS[only[0]]}) if only else ALL_GROUPS


# -- upload_zenodo --------------------------------------------------------------------------


ZENODO_DEFAULTS = {"n_jobs": 4}
ZENODO_TOKEN_ENV = "ZENODO_TOKEN"
UPLOAD_METHODS = ("catalog", "all", "files")


def zenodo_settings(args: dict[str, Any]) -> ZenodoCommandSettings:
    """upload_zenodo settings from its parsed usage."""
    common = common_settings(args, ZENODO_DEFAULTS)
    method, names = _upload_method(args, common)
    deposition_id = _deposition_id(args)
    metadata = _metadata(args, new_deposition=deposition_id is None)
    return ZenodoCommandSettings(
        common=common, upload_method=method, files=names, api_url=_api_url(args),
        token=read_zenodo_token(args["--zenodo-token"]), deposition_id=deposition_id, metadata=metadata,
        publish=bool(args["--publish"]), overwrite=bool(args["--overwrite"]),
        max_record_bytes=_max_record_bytes(args), timing=ZenodoTiming.from_environment(os.environ),
    )


def _max_record_bytes(args: dict[str, Any]) -> int:
    from uploader.zenodo.backend import MAX_BYTES

    raw = args["--max-record-bytes"]
    return positive_int(raw, "--max-record-bytes", maximum=10**15) if raw else MAX_BYTES


def _upload_method(args: dict[str, Any], common: CommonSettings) -> tuple[str, tuple[str, ...]]:
    method = args["--upload-method"] or "catalog"
    if method not in UPLOAD_METHODS:
        raise UsageError(f"--upload-method {method}: choose one of {', '.join(UPLOAD_METHODS)}")
    names = tuple(args["<name>"] or ())
    if (method == "files") != bool(args["--files"]):
        raise UsageError("--upload-method files goes with --files NAME... (and --files only with it)")
    if method == "files" and not names:
        raise UsageError("--files needs at least one file name")
    if len(set(names)) != len(names):
        raise UsageError("--files: a file is named twice; Zenodo file names are unique")
    if common.catalog_yaml and method != "catalog":
        raise UsageError("--catalog-yaml only applies to --upload-method catalog")
    return method, names


def _api_url(args: dict[str, Any]) -> str:
    from uploader.zenodo.backend import PRODUCTION_API, SANDBOX_API

    if args["--zenodo-url"] and args["--sandbox"]:
        raise UsageError("--zenodo-url and --sandbox exclude each other: --sandbox means --zenodo-url " + SANDBOX_API)
    api_url = str(args["--zenodo-url"] or (SANDBOX_API if args["--sandbox"] else PRODUCTION_API))
    if not api_url.startswith(("http://", "https://")):
        raise UsageError(f"--zenodo-url {api_url}: must start with https:// (e.g. {PRODUCTION_API})")
    return api_url.rstrip("/")


def _deposition_id(args: dict[str, Any]) -> int | None:
    ids = {i for i in (args["--zenodo-id"], args["--zenodo-deposition-id"]) if i}
    if len(ids) > 1:
        raise UsageError("--zenodo-id and --zenodo-deposition-id name different depositions; give one")
    return positive_int(ids.pop(), "--zenodo-id", maximum=10**12) if ids else None


def _metadata(args: dict[str, Any], *, new_deposition: bool) -> dict[str, Any]:
    """The metadata fields the options give (only those: the rest of a deposition's metadata stays)."""
    from uploader.zenodo.backend import UPLOAD_TYPES

    metadata: dict[str, Any] = {}
    if args["--title"]:
        metadata["title"] = args["--title"]
    creators = [name.strip() for value in args["--creators"] or [] for name in value.split(";") if name.strip()]
    if creators:
        metadata["creators"] = [{"name": name} for name in creators]
    if args["--description"]:
        metadata["description"] = args["--description"]
    upload_type = args["--upload-type"] or ("dataset" if new_deposition else None)
    if upload_type:
        if upload_type not in UPLOAD_TYPES:
            raise UsageError(f"--upload-type {upload_type}: choose one of {', '.join(UPLOAD_TYPES)}")
        metadata["upload_type"] = upload_type
    if new_deposition and not (metadata.get("title") and metadata.get("creators")):
        raise UsageError("a new deposition needs --title and --creators \"Family, Given\""
                         " (or pass --zenodo-id to upload into an existing one)")
    return metadata


def read_zenodo_token(path: str | None) -> str:
    """The token from --zenodo-token FILE (whitespace stripped), else $ZENODO_TOKEN."""
    if path:
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise UsageError(f"--zenodo-token {path}: file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--zenodo-token {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") \
                from None
        if not token:
            raise UsageError(f"--zenodo-token {path}: the file is empty; put the token in it")
        return token
    token = os.environ.get(ZENODO_TOKEN_ENV, "").strip()
    if not token:
        raise UsageError("no Zenodo token: pass --zenodo-token FILE (a file holding the token)"
                         f" or set {ZENODO_TOKEN_ENV}")
    return token

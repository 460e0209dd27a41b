"""Options gathered from the command line (and environment) into typed settings.

Each value is checked here, so that the rest of the program can trust it and
a bad value is reported by the option's name before anything else happens.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uploader.catalog import Group
from uploader.errors import UsageError
from uploader.plan import ALL_GROUPS, CATALOG_NAME

DEFAULT_JOBS = 8


@dataclass(frozen=True)
class CommonSettings:
    """Options every upload command shares."""

    in_dir: Path
    catalog_yaml: Path
    n_jobs: int
    dry_run: bool
    restart: bool
    report: Path | None
    quiet: bool
    no_progress: bool
    resume_command: str


@dataclass(frozen=True)
class AwsSettings:
    """upload_aws: where to and how to reach the store."""

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


def common_settings(args: dict[str, Any], argv: list[str]) -> CommonSettings:
    """The shared options of a parsed docopt dictionary."""
    in_dir = Path(args["--in-dir"])
    report = Path(args["--report"]) if args.get("--report") else None
    if report is not None and str(report) != "-":
        parent = report.absolute().parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise UsageError(f"--report {report}: directory {parent} does not exist or is not writable")
    return CommonSettings(
        in_dir=in_dir,
        catalog_yaml=Path(args["--catalog-yaml"]) if args.get("--catalog-yaml") else in_dir / CATALOG_NAME,
        n_jobs=positive_int(args.get("--n-jobs") or str(DEFAULT_JOBS), "--n-jobs", maximum=64),
        dry_run=bool(args.get("--dry-run")),
        restart=bool(args.get("--restart")),
        report=report,
        quiet=bool(args.get("--quiet")),
        no_progress=bool(args.get("--no-progress")),
        resume_command=resume_command(argv),
    )


def aws_settings(args: dict[str, Any], argv: list[str]) -> AwsSettings:
    """upload_aws settings from its parsed docopt dictionary."""
    if args["--in-list"] and args["--catalog-yaml"]:
        raise UsageError("--catalog-yaml cannot be used with --in-list: each sample's catalog.yaml"
                         " is read from its own directory")
    only = [flag for flag in ("--upload-basics-only", "--upload-optional-only", "--upload-basemap-only")
            if args[flag]]
    if len(only) > 1:
        raise UsageError(f"{' and '.join(only)} exclude each other: choose one (or none, to upload every group)")
    groups = ALL_GROUPS
    if args["--upload-basics-only"]:
        groups = frozenset({Group.BASICS})
    elif args["--upload-optional-only"]:
        groups = frozenset({Group.OPTIONAL})
    elif args["--upload-basemap-only"]:
        groups = frozenset({Group.BASEMAP})
    endpoint = args["--endpoint-url"]
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise UsageError(f"--endpoint-url {endpoint}: must start with http:// or https://")
    return AwsSettings(
        common=common_settings(args, argv),
        s3_dir=args["--s3-dir"],
        in_list=Path(args["--in-list"]) if args["--in-list"] else None,
        groups=groups,
        profile=args["--profile"],
        endpoint_url=endpoint,
        aws_cli=args["--aws"],
    )


def positive_int(text: str, option: str, maximum: int) -> int:
    """Parse a whole number from 1 to `maximum` or raise a UsageError naming the option."""
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{option} {text}: must be a whole number from 1 to {maximum}") from None
    if not 1 <= value <= maximum:
        raise UsageError(f"{option} {text}: must be a whole number from 1 to {maximum}")
    return value


def resume_command(argv: list[str]) -> str:
    """The command line that resumes this run: the same one, without --restart."""
    program = sys.argv[0] if sys.argv and sys.argv[0] else "cartload-uploader"
    if program.endswith("__main__.py"):
        head = ["python", "-m", "uploader"]
    elif program.endswith(".py"):
        head = ["python", program]
    else:
        head = [os.path.basename(program)]
    return shlex.join(head + [arg for arg in argv if arg != "--restart"])


ZENODO_TOKEN_ENV = "ZENODO_TOKEN"
UPLOAD_METHODS = ("catalog", "all", "files")


def zenodo_settings(args: dict[str, Any], argv: list[str]) -> ZenodoCommandSettings:
    """upload_zenodo settings from its parsed docopt dictionary."""
    from uploader.zenodo import PRODUCTION_API, SANDBOX_API, UPLOAD_TYPES

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
    if args["--catalog-yaml"] and method != "catalog":
        raise UsageError("--catalog-yaml only applies to --upload-method catalog")
    if args["--zenodo-url"] and args["--sandbox"]:
        raise UsageError("--zenodo-url and --sandbox exclude each other: --sandbox means --zenodo-url " + SANDBOX_API)
    api_url = args["--zenodo-url"] or (SANDBOX_API if args["--sandbox"] else PRODUCTION_API)
    if not api_url.startswith(("http://", "https://")):
        raise UsageError(f"--zenodo-url {api_url}: must start with https:// (e.g. {PRODUCTION_API})")
    ids = {i for i in (args["--zenodo-id"], args["--zenodo-deposition-id"]) if i}
    if len(ids) > 1:
        raise UsageError("--zenodo-id and --zenodo-deposition-id name different depositions; give one")
    deposition_id = positive_int(ids.pop(), "--zenodo-id", maximum=10**12) if ids else None
    metadata: dict[str, Any] = {}
    if args["--title"]:
        metadata["title"] = args["--title"]
    creators = [name.strip() for value in args["--creators"] or [] for name in value.split(";") if name.strip()]
    if creators:
        metadata["creators"] = [{"name": name} for name in creators]
    if args["--description"]:
        metadata["description"] = args["--description"]
    upload_type = args["--upload-type"] or (None if deposition_id else "dataset")
    if upload_type:
        if upload_type not in UPLOAD_TYPES:
            raise UsageError(f"--upload-type {upload_type}: choose one of {', '.join(UPLOAD_TYPES)}")
        metadata["upload_type"] = upload_type
    if deposition_id is None and not (metadata.get("title") and metadata.get("creators")):
        raise UsageError("a new deposition needs --title and --creators \"Family, Given\""
                         " (or pass --zenodo-id to upload into an existing one)")
    return ZenodoCommandSettings(
        common=common_settings(args, argv), upload_method=method, files=names, api_url=api_url.rstrip("/"),
        token=read_zenodo_token(args["--zenodo-token"]), deposition_id=deposition_id, metadata=metadata,
        publish=bool(args["--publish"]), overwrite=bool(args["--overwrite"]),
    )


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

"""upload_aws's own options, read once into the S3 backend's settings (the shared ones are engine.settings').

Each field names the options it is read from and the one function that reads
and checks them; the fields are read in their order, so the first bad value
is the one reported. The object options (--acl, --cache-control, ...) are
one field, read by their table (options.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from uploader.engine.settings import Given, flag, option, seconds, text
from uploader.errors import UsageError
from uploader.local.catalog import Group
from uploader.local.plan import ALL_GROUPS, Shard
from uploader.local.shards import parse_shard
from uploader.s3.destination import S3Destination
from uploader.s3.options import OBJECT_OPTIONS, ObjectOptions, read_object_options

DEFAULT_JOBS = 256  # many small requests in flight: a WAN round trip each (as s5cmd)
VIEWER_URL = "https://v3o-main.carto-scope.org/dataset?uri="
VIEWER_TIMEOUT_ENV = "CARTLOAD_UPLOADER_VIEWER_TIMEOUT"
ADDRESSING_STYLES = ("auto", "path", "virtual")
GROUP_FLAGS = {"--upload-basics-only": Group.BASICS, "--upload-optional-only": Group.OPTIONAL,
               "--upload-basemap-only": Group.BASEMAP}
VIEWER_FLAGS = ("--viewer-url", "--no-viewer-check", "--require-viewer-ready", "--setup-viewer-access")


@dataclass(frozen=True)
class ViewerSettings:
    """The viewer link and check after an upload_aws run (--viewer-url and the viewer flags)."""

    url: str = VIEWER_URL
    check: bool = True
    require_ready: bool = False
    setup: bool = False
    timeout: float = 10.0  # per anonymous request (CARTLOAD_UPLOADER_VIEWER_TIMEOUT)

    @property
    def origin(self) -> str:
        """The viewer page's origin, as a browser sends it in `Origin`."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"


# -- the readers, in the order of the fields ---------------------------------------------------------


def _destination(given: Given) -> S3Destination:
    return S3Destination.parse(given["--s3-dir"])


def _in_list(given: Given) -> Path | None:
    if given["--in-list"] and given["--catalog-yaml"]:
        raise UsageError("--catalog-yaml cannot be used with --in-list: each sample's catalog.yaml"
                         " is read from its own directory")
    return Path(given["--in-list"]) if given["--in-list"] else None


def _endpoint(given: Given) -> str | None:
    endpoint: str | None = given["--endpoint-url"]
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise UsageError(f"--endpoint-url {endpoint}: must start with http:// or https://")
    return endpoint


def _cartloader_only(given: Given) -> tuple[str, ...]:
    """cartloader's options that mean nothing here: accepted, and said so with the summary."""
    if given["--aws"]:
        given.notes.append(f"--aws {given['--aws']} is not needed: uploads go through boto3, no AWS CLI is used")
    if given["--makefn"]:
        given.notes.append(f"--makefn {given['--makefn']} is ignored: no Makefile is written (a re-run compares"
                           " with the bucket instead)")
    return tuple(name for name in ("--aws", "--makefn") if given[name])


def _addressing_style(given: Given) -> str:
    style = given["--addressing-style"] or "auto"
    if style not in ADDRESSING_STYLES:
        raise UsageError(f"--addressing-style {style}: choose one of {', '.join(ADDRESSING_STYLES)}")
    return str(style)


def _groups(given: Given) -> frozenset[Group]:
    only = [name for name in GROUP_FLAGS if given[name]]
    if len(only) > 1:
        raise UsageError(f"{' and '.join(only)} exclude each other: choose one (or none, to upload every group)")
    return frozenset({GROUP_FLAGS[only[0]]}) if only else ALL_GROUPS


def _shard(given: Given) -> Shard | None:
    return parse_shard(given["--shard"], os.environ) if given["--shard"] is not None else None


def _delete(given: Given) -> bool:
    """--delete needs the dataset's whole plan, and a prefix to stay inside."""
    if not given["--delete"]:
        return False
    partial = [name for name in GROUP_FLAGS if given[name]] + (["--shard"] if given["--shard"] else [])
    if partial:
        raise UsageError(f"--delete cannot be used with {partial[0]}: that run sends only part of the dataset,"
                         " so what the rest of the catalog needs is not known to be in place; run --delete with"
                         " the full upload")
    if not given["--in-list"] and not S3Destination.parse(given["--s3-dir"]).prefix:
        raise UsageError(f"--delete with --s3-dir {given['--s3-dir']}: without a prefix it would delete every object"
                         " of the bucket that the catalog does not name; give the dataset's own prefix,"
                         " s3://BUCKET/PREFIX")
    return True


def _viewer(given: Given) -> ViewerSettings:
    if given["--no-viewer-check"] and given["--require-viewer-ready"]:
        raise UsageError("--no-viewer-check and --require-viewer-ready exclude each other: choose one")
    url = given["--viewer-url"] or VIEWER_URL
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise UsageError(f"--viewer-url {url}: must be an https:// URL, e.g. {VIEWER_URL}")
    timeout = os.environ.get(VIEWER_TIMEOUT_ENV, "").strip()
    return ViewerSettings(url=url, check=not given["--no-viewer-check"],
                          require_ready=bool(given["--require-viewer-ready"]),
                          setup=bool(given["--setup-viewer-access"]),
                          timeout=seconds(timeout, VIEWER_TIMEOUT_ENV) if timeout else ViewerSettings.timeout)


def _stall_seconds(given: Given) -> float:
    stall = given["--stall-timeout"]
    return seconds(stall, "--stall-timeout", 86400) if stall else S3Settings.stall_seconds


# -- the settings -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class S3Settings:
    """upload_aws's own options (the S3 backend's settings), one field per option or group of options."""

    s3_dir: S3Destination = option(_destination, "--s3-dir", required=True)
    in_list: Path | None = option(_in_list, "--in-list")  # collection mode: the samples' TSV
    endpoint_url: str | None = option(_endpoint, "--endpoint-url")  # None: botocore's usual chain
    ignored: tuple[str, ...] = option(_cartloader_only, "--aws", "--makefn", default=())
    addressing_style: str = option(_addressing_style, "--addressing-style", default="auto")
    objects: ObjectOptions = option(read_object_options, *(row.name for row in OBJECT_OPTIONS),
                                    default=ObjectOptions())
    groups: frozenset[Group] = option(_groups, *GROUP_FLAGS, default=ALL_GROUPS)
    shard: Shard | None = option(_shard, "--shard")  # this worker's share of the files
    delete: bool = option(_delete, "--delete", default=False)  # remove what the catalog does not name, once published
    viewer: ViewerSettings = option(_viewer, *VIEWER_FLAGS, default=ViewerSettings())
    stall_seconds: float = option(_stall_seconds, "--stall-timeout", default=120.0)  # stop after this long idle
    profile: str | None = option(text("--profile"), "--profile")  # None: AWS_PROFILE, else the default chain
    take_over: bool = option(flag("--take-over"), "--take-over", default=False)  # resume under a fresh lease
    abort_incomplete: bool = option(flag("--abort-incomplete-uploads"), "--abort-incomplete-uploads", default=False)
    notes: tuple[str, ...] = option(lambda given: tuple(given.notes), default=())  # told with the summary


"""upload_zenodo's own options, read once into the Zenodo backend's settings; and reading the token.

Each field names the options it is read from and the one function that reads
and checks them (the shared options are engine.settings'); the fields are
read in their order, so the first bad value is the one reported.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uploader.engine.settings import Given, flag, option, positive_int
from uploader.errors import InputError, UsageError
from uploader.local.hash_cache import default_cache_dir
from uploader.zenodo.pacing import ZenodoTiming
from uploader.zenodo.record_metadata import RECORD_OPTIONS, wanted_metadata
from uploader.zenodo.records import ZenodoToken

PRODUCTION_API = "https://zenodo.org/api"
SANDBOX_API = "https://sandbox.zenodo.org/api"
MAX_BYTES = 50 * 10**9  # per file always; per record unless Zenodo raised it (--max-record-bytes)
DEFAULT_JOBS = 4
ZENODO_TOKEN_ENV = "ZENODO_TOKEN"
ZENODO_URL_ENV = "CARTLOAD_UPLOADER_ZENODO_URL"
UPLOAD_METHODS = ("catalog", "all", "files")
log = logging.getLogger("uploader")


@dataclass(frozen=True)
class FilesToUpload:
    """--upload-method and the files it names (--files, for the method `files`)."""

    method: str = "catalog"  # catalog, all or files
    names: tuple[str, ...] = ()


# -- the readers, in the order of the fields ---------------------------------------------------------


def _files_to_upload(given: Given) -> FilesToUpload:
    method, names = given["--upload-method"], list(given["--files"] or [])
    if method == "user_list" or given["--in-list"]:
        method, names = _legacy_user_list(given)
    method = method or "catalog"
    if method not in UPLOAD_METHODS:
        raise UsageError(f"--upload-method {method}: choose one of {', '.join(UPLOAD_METHODS)}")
    if method != "files" and names:
        raise UsageError(f"--files names the files of --upload-method files, not of --upload-method {method}")
    if method == "files" and not names:
        raise UsageError("--upload-method files needs the files: --files NAME...")
    names = [_name_in_dir(name, Path(given["--in-dir"])) for name in names]
    if len(set(names)) != len(names):
        raise UsageError("--files: a file is named twice; Zenodo file names are unique")
    if given["--catalog-yaml"] and method != "catalog":
        raise UsageError("--catalog-yaml only applies to --upload-method catalog")
    return FilesToUpload(method, tuple(names))


def _legacy_user_list(given: Given) -> tuple[str, list[str]]:
    """cartloader's first upload_zenodo: `--upload-method user_list --in-list NAME...` meant today's files."""
    method = given["--upload-method"]
    if method not in (None, "user_list"):
        raise UsageError(f"--in-list names the files of --upload-method user_list, not of --upload-method {method}")
    if given["--files"]:
        raise UsageError("--in-list and --files both name files to upload; give --files only")
    if not given["--in-list"]:
        raise UsageError("--upload-method user_list needs its files: --in-list NAME... (today: --files NAME...)")
    given.notes.append("--upload-method user_list --in-list NAME... is cartloader's old spelling of"
                       " --upload-method files --files NAME...; use that")
    return "files", list(given["--in-list"])


def _name_in_dir(name: str, in_dir: Path) -> str:
    """A --files value as a name in --in-dir: cartloader also takes the absolute path of a file there."""
    path = Path(name)
    if not path.is_absolute():
        return name
    if os.path.realpath(path.parent) != os.path.realpath(in_dir):
        raise UsageError(f"--files {name}: not directly inside --in-dir {in_dir}; Zenodo has no folders,"
                         " so name files in --in-dir (copy it there first)")
    return path.name


def _deposition_id(given: Given) -> int | None:
    ids = {i for i in (given["--zenodo-id"], given["--zenodo-deposition-id"]) if i}
    if len(ids) > 1:
        raise UsageError("--zenodo-id and --zenodo-deposition-id name different depositions; give one")
    return positive_int(ids.pop(), "--zenodo-id", maximum=10**12) if ids else None


def _metadata(given: Given) -> dict[str, Any]:
    """The metadata fields the options and --metadata FILE give (only those: the rest of a deposition stays)."""
    return wanted_metadata(given.values, given.notes, new_deposition=_deposition_id(given) is None)


def _new_only(given: Given) -> frozenset[str]:
    """The metadata _metadata fills in by default for a new deposition (not given): never sent to an existing one."""
    if _deposition_id(given) is not None:
        return frozenset()
    return frozenset(key for key in ("description", "upload_type") if not given[f"--{key.replace('_', '-')}"])


def _api_url(given: Given) -> str:
    if given["--zenodo-url"] and given["--sandbox"]:
        raise UsageError("--zenodo-url and --sandbox exclude each other: --sandbox means --zenodo-url " + SANDBOX_API)
    where, api_url = "--zenodo-url", given["--zenodo-url"] or (SANDBOX_API if given["--sandbox"] else "")
    if not api_url and os.environ.get(ZENODO_URL_ENV):
        where, api_url = ZENODO_URL_ENV, os.environ[ZENODO_URL_ENV]
    api_url = str(api_url or PRODUCTION_API)
    if not api_url.startswith(("http://", "https://")):
        raise UsageError(f"{where} {api_url}: must start with https:// (e.g. {PRODUCTION_API})")
    return api_url.rstrip("/")


def _token(given: Given) -> ZenodoToken:
    path, legacy = given["--zenodo-token"], given["--token-file"]
    if legacy:
        if path and path != legacy:
            raise UsageError("--token-file and --zenodo-token name different files; give --zenodo-token only")
        given.notes.append("--token-file is deprecated; use --zenodo-token FILE (the same)")
        path = legacy
    return ZenodoToken(read_zenodo_token(str(path) if path else None))


def _max_record_bytes(given: Given) -> int:
    raw = given["--max-record-bytes"]
    return positive_int(raw, "--max-record-bytes", maximum=10**15) if raw else MAX_BYTES


# -- the settings -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ZenodoSettings:
    """upload_zenodo's own options (the Zenodo backend's settings), one field per option or group of options."""

    files: FilesToUpload = option(_files_to_upload, "--upload-method", "--files", "--in-list",
                                  default=FilesToUpload())
    deposition_id: int | None = option(_deposition_id, "--zenodo-id", "--zenodo-deposition-id")
    metadata: dict[str, Any] = option(_metadata, *RECORD_OPTIONS, default_factory=dict)  # only the fields given
    new_only: frozenset[str] = option(_new_only, default=frozenset())  # of `metadata`: for a new deposition only
    api_url: str = option(_api_url, "--zenodo-url", "--sandbox", required=True)
    token: ZenodoToken = option(_token, "--zenodo-token", "--token-file", required=True)
    publish: bool = option(flag("--publish"), "--publish", default=False)
    overwrite: bool = option(flag("--overwrite"), "--overwrite", default=False)
    max_record_bytes: int = option(_max_record_bytes, "--max-record-bytes", default=MAX_BYTES)  # Zenodo's quota
    # timeouts, waits and pacing (CARTLOAD_UPLOADER_ZENODO_* variables)
    timing: ZenodoTiming = option(lambda given: ZenodoTiming.from_environment(os.environ),
                                  default_factory=ZenodoTiming)
    cache_dir: Path | None = option(lambda given: default_cache_dir())  # where the deposition a command made is kept
    notes: tuple[str, ...] = option(lambda given: tuple(given.notes), default=())  # told with the summary


# -- the token --------------------------------------------------------------------------------------


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

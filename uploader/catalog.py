"""The cartload catalog: which files a dataset consists of, and in which upload group.

This module knows nothing of S3 or Zenodo. It reads `catalog.yaml` and walks
its structure: a string leaf may name a file unless its key is an identifier
or free text (`id`, `title`, `description`, `default`, ...). Unknown keys are
walked like any other, so newer pipeline versions do not break it.

How sure a value is a file name decides what a missing file means (`Mention`):
under `assets` (what the viewer reads), a value shaped like a file name (an
extension or a path, spaces or not) must be there; any other value there is
a file if the dataset has it, else text. Outside `assets`, a value shaped
like a file name is a file if the dataset has it, else only worth a warning.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from uploader.errors import InputError

# libyaml's loader when PyYAML was built with it: ten times faster on a catalog naming thousands of files.
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Keys whose values are identifiers, labels or free text, never file names.
NON_FILE_KEYS = frozenset(
    {
        "id", "title", "name", "description", "default", "model_id", "proj_id",
        "decode_id", "cells_id", "cell_id", "square_id", "raw_pixel_col",
        "analysis", "analysis_type", "version", "label", "url", "license",
    }
)
OPTIONAL_KEYS = frozenset({"umap", "alias"})  # cartloader's optional group


class Group(enum.Enum):
    """cartloader's upload groups (`--upload-basics-only` and friends)."""

    BASICS = "basics"
    OPTIONAL = "optional"
    BASEMAP = "basemap"


class Mention(enum.IntEnum):
    """How surely a catalog value names a file; the stronger mention of a name twice wins."""

    IF_PRESENT = 1  # under assets, not shaped like a file name: a file if the dataset has it, else text
    WARN_IF_MISSING = 2  # outside assets, shaped like a file name: a file if present, else a warning
    FILE = 3  # under assets, shaped like a file name: it must be there


@dataclass(frozen=True)
class FileRef:
    """One value the catalog may name a file by, where it was named, and its upload group."""

    name: str
    group: Group
    where: str  # e.g. "assets.factors[0].de", for error messages
    mention: Mention = Mention.FILE


@dataclass(frozen=True)
class Catalog:
    """A parsed catalog.yaml: its id and the files it references."""

    path: Path
    id: str | None
    files: tuple[FileRef, ...]


def load_catalog(path: Path) -> Catalog:
    """Read and walk a catalog.yaml; raise InputError naming the file when it is unusable."""
    try:
        text = path.read_bytes().decode("utf-8")
        document = yaml.load(text, Loader=SafeLoader)
    except FileNotFoundError:
        raise InputError([f"{path}: catalog not found (pass --catalog-yaml, or check --in-dir)"]) from None
    except IsADirectoryError:
        raise InputError([f"{path}: is a directory, not a catalog file (check --catalog-yaml)"]) from None
    except PermissionError:
        raise InputError([f"{path}: catalog is not readable (check its permissions)"]) from None
    except UnicodeDecodeError as exc:
        raise InputError([f"{path}: catalog is not valid UTF-8 (byte {exc.start}); re-export it as UTF-8"]) from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise InputError([f"{path}: catalog is not valid YAML{where}: {problem}; fix the file"]) from None
    if not isinstance(document, dict):
        raise InputError([f"{path}: catalog must be a YAML mapping with an 'assets' section; fix the file"])
    if not isinstance(document.get("assets"), (dict, list)):
        raise InputError([f"{path}: catalog has no 'assets' section; is this a cartload catalog.yaml?"])
    catalog_id = document.get("id")
    return Catalog(
        path=path,
        id=str(catalog_id) if catalog_id not in (None, "") else None,
        files=tuple(_dedupe(_walk(document, ()))),
    )


def _walk(node: Any, path: tuple[str | int, ...]) -> Iterator[FileRef]:
    if isinstance(node, dict):
        for key, value in node.items():
            if str(key) not in NON_FILE_KEYS:
                yield from _walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*path, index))
    elif isinstance(node, str):
        mention = _mention(node, under_assets=bool(path) and path[0] == "assets")
        if mention is not None:
            yield FileRef(name=node, group=group_of(path), where=_dotted(path), mention=mention)


# An extension as file names have them: a dot, a letter, then a few letters or digits ("tsv", "pmtiles", "gz").
_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9_-]{0,15}$")


def _mention(value: str, *, under_assets: bool) -> Mention | None:
    """How surely `value` names a file (None: it is text, never checked)."""
    if "://" in value or not value.strip():
        return None  # a URL or nothing
    if _shaped_like_file_name(value):
        return Mention.FILE if under_assets else Mention.WARN_IF_MISSING
    return Mention.IF_PRESENT if under_assets else None


def _shaped_like_file_name(value: str) -> bool:
    # A file name cartloader writes has an extension, and anything shaped like
    # a path is checked (and refused if it leaves --in-dir). With whitespace,
    # only a real extension counts: "Version 2.0" or "e.g. this" are text.
    if any(ch.isspace() for ch in value):
        return bool(_EXTENSION.search(value))
    return "/" in value or "\\" in value or bool(PurePosixPath(value).suffix)


def group_of(path: tuple[str | int, ...]) -> Group:
    """The upload group of a value found at `path` in the catalog document."""
    keys = [key for key in path if isinstance(key, str)]
    if any(key in OPTIONAL_KEYS for key in keys):
        return Group.OPTIONAL
    if len(path) >= 3 and path[0] == "assets" and path[1] == "basemap" and path[2] != "sge":
        return Group.BASEMAP
    return Group.BASICS


def _dedupe(refs: Iterator[FileRef]) -> Iterator[FileRef]:
    # A file named twice is uploaded once; if any mention puts it in the
    # basic set, it belongs there (a shared file must not become optional),
    # and the surest mention decides what a missing file means.
    chosen: dict[str, FileRef] = {}
    for ref in refs:
        first = chosen.setdefault(ref.name, ref)
        if ref.group is Group.BASICS and first.group is not Group.BASICS:
            first = chosen[ref.name] = replace(first, group=Group.BASICS)
        if ref.mention > first.mention:
            chosen[ref.name] = replace(first, mention=ref.mention, where=ref.where)
    yield from chosen.values()


def _dotted(path: tuple[str | int, ...]) -> str:
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else key)
    return text

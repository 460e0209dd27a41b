"""The cartload catalog: which files a dataset consists of, and in which upload group.

This module knows nothing of S3 or Zenodo. It reads `catalog.yaml` and walks
its structure: a string leaf is a file reference unless its key is an
identifier or free text (`id`, `title`, `description`, `default`, ...). Unknown
keys are walked like any other, so newer pipeline versions do not break it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True)
class FileRef:
    """One file the catalog names, where it was named, and its upload group."""

    name: str
    group: Group
    where: str  # e.g. "assets.factors[0].de", for error messages


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
    elif isinstance(node, str) and _looks_like_file_name(node):
        yield FileRef(name=node, group=group_of(path), where=_dotted(path))


def _looks_like_file_name(value: str) -> bool:
    # Free text under an unknown key (a sentence, a colour, a URL) is not a
    # file; a file name cartloader writes has an extension, and anything
    # shaped like a path is checked (and refused if it leaves --in-dir).
    if "://" in value or not value.strip() or any(ch.isspace() for ch in value):
        return False
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
    # basic set, it belongs there (a shared file must not become optional).
    chosen: dict[str, FileRef] = {}
    for ref in refs:
        if ref.name not in chosen or ref.group is Group.BASICS:
            chosen.setdefault(ref.name, ref)
            if ref.group is Group.BASICS:
                chosen[ref.name] = FileRef(ref.name, Group.BASICS, chosen[ref.name].where)
    yield from chosen.values()


def _dotted(path: tuple[str | int, ...]) -> str:
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else key)
    return text


def file_names_in(text: bytes) -> frozenset[str] | None:
    """Every file name a catalog's text names, in any group; None when the text is not a readable catalog.

    Used on a catalog already published, to learn which remote files it vouches for.
    """
    try:
        document = yaml.load(text.decode("utf-8"), Loader=SafeLoader)
    except (UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(document, dict):
        return None
    return frozenset(ref.name for ref in _walk(document, ()))

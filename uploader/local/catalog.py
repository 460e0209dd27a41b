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

A collection's `multi-catalog.yaml` is read the same way; there the sections
that name files for sure are `samples` (each sample's catalog), `factors` and
`shared` (the files shared by the samples), besides `assets`.
"""

from __future__ import annotations

import enum
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
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

# Catalogs the pipeline writes are 1-20 KB, a few hundred values, nested about 6 deep. The limits are far
# above that and keep a hostile or mistaken file (a YAML alias bomb, /dev/zero, a 50 MB table) from
# taking hours or gigabytes: a catalog at the size limit (262,000 file names) loads in about 5 s and 150 MB.
MAX_CATALOG_BYTES = 8 * 2**20
MAX_CATALOG_VALUES = 1_000_000  # scalars and collections, counting each use of an alias in full
MAX_CATALOG_DEPTH = 100


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
    document = _load_document(path)
    if not isinstance(document.get("assets"), (dict, list)):
        raise InputError([f"{path}: catalog has no 'assets' section; is this a cartload catalog.yaml?"])
    return _catalog(path, document, ASSET_SECTIONS)


# The sections of a collection's multi-catalog.yaml that name files: each sample's catalog ("samples"), the
# shared factor files ("factors": at the top in cartloader's writer, under "assets" in its newer shape) and
# the older "shared" section, which points into the first sample's directory.
COLLECTION_SECTIONS = frozenset({"samples", "factors", "shared", "assets"})


def load_collection_catalog(path: Path) -> Catalog:
    """Read and walk a collection's multi-catalog.yaml (cartloader's run_cartload2_multi writes it)."""
    document = _load_document(path)
    if not isinstance(document.get("samples"), dict):
        raise InputError([f"{path}: has no 'samples' section naming each sample's catalog; is this the"
                          " multi-catalog.yaml cartloader writes for a collection?"])
    return _catalog(path, document, COLLECTION_SECTIONS)


def _catalog(path: Path, document: dict[str, Any], file_sections: frozenset[str]) -> Catalog:
    catalog_id = document.get("id")
    return Catalog(
        path=path,
        id=str(catalog_id) if catalog_id not in (None, "") else None,
        files=tuple(_dedupe(_walk(document, (), file_sections))),
    )


def _load_document(path: Path) -> dict[str, Any]:
    """The YAML mapping in a catalog file; InputError naming the file when it is not one."""
    text = _read_catalog_text(path)
    try:
        _check_shape(text)
        document = yaml.load(text, Loader=SafeLoader)
    except _Hostile as exc:
        raise InputError([f"{path}: {exc}; this is not a catalog the pipeline writes"]) from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise InputError([f"{path}: catalog is not valid YAML{where}: {problem}; fix the file"]) from None
    if not isinstance(document, dict):
        raise InputError([f"{path}: catalog must be a YAML mapping with an 'assets' section; fix the file"])
    return document


def _read_catalog_text(path: Path) -> str:
    """The catalog's text, read only from a regular file of at most MAX_CATALOG_BYTES.

    Opened without blocking and checked on the open descriptor: a FIFO would
    wait forever for a writer, /dev/zero never ends.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError([f"{path}: catalog not found (pass --catalog-yaml, or check --in-dir)"]) from None
    except PermissionError:
        raise InputError([f"{path}: catalog is not readable (check its permissions)"]) from None
    except OSError as exc:
        raise InputError([f"{path}: catalog cannot be opened ({exc.strerror or exc})"]) from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        if stat.S_ISDIR(mode):
            raise InputError([f"{path}: is a directory, not a catalog file (check --catalog-yaml)"])
        raise InputError([f"{path}: is not a regular file (a pipe or a device); point --catalog-yaml at the"
                          " catalog.yaml file itself"])
    with os.fdopen(descriptor, "rb") as handle:
        data = handle.read(MAX_CATALOG_BYTES + 1)
    if len(data) > MAX_CATALOG_BYTES:
        raise InputError([f"{path}: catalog is larger than {MAX_CATALOG_BYTES // 2**20} MiB, far beyond what the"
                          " pipeline writes (1-20 KB); check --catalog-yaml"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError([f"{path}: catalog is not valid UTF-8 (byte {exc.start}); re-export it as UTF-8"]) from None


class _Hostile(Exception):
    """A YAML document that would take unbounded time or memory to load and walk."""


def _check_shape(text: str) -> None:
    """Refuse, before anything is built, a document nested too deeply or too big once aliases are expanded.

    PyYAML shares an aliased node instead of copying it, but walking the
    catalog visits every use: a 500-byte "billion laughs" document means
    billions of visits. One pass over the parser's events counts the values
    as expanded (an alias counts the whole anchored node), so such a
    document is refused after a few events; a document nested deeper than
    any catalog would crash libyaml's recursive composer, so depth is
    limited too. Anchors and aliases within the limits load as usual.
    """
    expanded = 0
    anchored: dict[str, int] = {}  # anchor -> the expanded size of its node
    open_nodes: list[list[Any]] = []  # [expanded size so far, anchor] of each collection being read
    for event in yaml.parse(text, Loader=SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_nodes) >= MAX_CATALOG_DEPTH:
                raise _Hostile(f"catalog nests collections more than {MAX_CATALOG_DEPTH} levels deep")
            open_nodes.append([1, event.anchor])
            expanded += 1
            continue
        if isinstance(event, yaml.ScalarEvent):
            size, anchor = 1, event.anchor
            expanded += 1
        elif isinstance(event, yaml.AliasEvent):
            if any(node[1] == event.anchor for node in open_nodes):
                raise _Hostile(f"catalog has a recursive alias (*{event.anchor} inside &{event.anchor})")
            size, anchor = anchored.get(str(event.anchor), 0), None  # an undefined alias: the loader says so
            expanded += size
        elif isinstance(event, yaml.CollectionEndEvent):
            size, anchor = open_nodes.pop()
        else:
            continue
        if expanded > MAX_CATALOG_VALUES:
            raise _Hostile(f"catalog holds more than {MAX_CATALOG_VALUES:,d} values once its aliases are expanded")
        if anchor is not None:
            anchored[anchor] = size
        if open_nodes:
            open_nodes[-1][0] += size


ASSET_SECTIONS = frozenset({"assets"})  # where a dataset's catalog names files for sure (see Mention)


def _walk(node: Any, path: tuple[str | int, ...], file_sections: frozenset[str] = ASSET_SECTIONS
          ) -> Iterator[FileRef]:
    if isinstance(node, dict):
        for key, value in node.items():
            if str(key) not in NON_FILE_KEYS:
                yield from _walk(value, (*path, str(key)), file_sections)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*path, index), file_sections)
    elif isinstance(node, str):
        mention = _mention(node, under_assets=bool(path) and path[0] in file_sections)
        if mention is not None:
            yield FileRef(name=node, group=group_of(path), where=_dotted(path), mention=mention)


# An extension as file names have them: a dot, a letter, then a few letters or digits ("tsv", "pmtiles", "gz").
_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9_-]{0,15}$")
_WHITESPACE = re.compile(r"\s")


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
    if _WHITESPACE.search(value):
        return bool(_EXTENSION.search(value))
    if "/" in value or "\\" in value:
        return True
    dot = value.rfind(".")
    return 0 < dot < len(value) - 1  # a suffix, as pathlib sees one (cheaper than building a path)


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

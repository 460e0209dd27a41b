"""Is a .pmtiles file an archive the web viewer can read? Its PMTiles v3 header says (pure: no network).

The viewer reads the first 16 KiB of an archive (the 127-byte header and the
root directory) and then tiles by byte ranges at the offsets the header
gives. A file that is empty, cut short, an HTML error page saved under a
.pmtiles name, or an older (v2) archive cannot be read, so it is refused
before anything is uploaded: a DOI or a public dataset is hard to take back.

Header layout (PMTiles specification v3): magic `PMTiles`, version byte 3,
then little-endian uint64 offset/length pairs for the root directory, the
JSON metadata, the leaf directories and the tile data.
"""

from __future__ import annotations

import struct
from pathlib import Path

HEADER_SIZE = 127
MAGIC = b"PMTiles"
VERSION = 3
ROOT_LIMIT = 16_384  # the root directory must lie within the first 16 KiB: readers fetch just that
_SECTIONS = struct.Struct("<8Q")  # (offset, length) of root directory, metadata, leaf directories, tile data
_SECTION_NAMES = ("root directory", "metadata", "leaf directories", "tile data")
_REMAKE = "re-create it with the pipeline and check that it was copied whole"


def is_pmtiles_name(name: str) -> bool:
    return name.lower().endswith(".pmtiles")


def archive_problem(path: Path, size: int) -> str:
    """Why the file is not a PMTiles v3 archive the viewer can read ("" when it is one), ending with the fix."""
    if size == 0:
        return f"is empty (0 bytes), not a PMTiles archive; {_REMAKE}"
    with open(path, "rb") as handle:
        head = handle.read(HEADER_SIZE)
    return header_problem(head, size)


def header_problem(head: bytes, size: int) -> str:
    """Why an archive of `size` bytes starting with `head` cannot be read ("" when it can); also a stored copy."""
    if not head.startswith(MAGIC):
        return _not_v3(head)
    if len(head) > len(MAGIC) and head[len(MAGIC)] != VERSION:
        return (f"is a PMTiles version {head[len(MAGIC)]} archive; the viewer reads version {VERSION} only:"
                f" {_REMAKE}")
    if size < HEADER_SIZE or len(head) < HEADER_SIZE:
        return f"is truncated: {size:,d} bytes, shorter than the {HEADER_SIZE}-byte PMTiles header; {_REMAKE}"
    fields = _SECTIONS.unpack_from(head, 8)
    for index, name in enumerate(_SECTION_NAMES):
        offset, length = fields[2 * index], fields[2 * index + 1]
        if offset + length > size:
            return (f"is truncated or corrupt: its header puts the {name} at bytes {offset:,d}-{offset + length:,d},"
                    f" but the file has {size:,d} bytes; {_REMAKE}")
    root_offset, root_length = fields[0], fields[1]
    if root_length == 0 or root_offset < HEADER_SIZE:
        return f"is corrupt: its header gives no root directory after the header; {_REMAKE}"
    if root_offset + root_length > ROOT_LIMIT:
        return (f"has its root directory at bytes {root_offset:,d}-{root_offset + root_length:,d}, beyond the first"
                f" {ROOT_LIMIT:,d} bytes that readers fetch first; {_REMAKE}")
    return ""


def _not_v3(head: bytes) -> str:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body", b"<")):
        return ("is an HTML or XML page (an error page saved under this name?), not a PMTiles archive;"
                " download or re-create the real file")
    if head[:2] == b"PM" and len(head) >= 4 and int.from_bytes(head[2:4], "little") == 2:
        return ("is a PMTiles version 2 archive; the viewer reads version 3 only: upgrade it with"
                " `pmtiles convert OLD.pmtiles NEW.pmtiles`")
    return f"does not start with the PMTiles magic bytes, so it is not a PMTiles archive; {_REMAKE}"

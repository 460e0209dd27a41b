"""Content-Type by file name, from an explicit table.

Python's `mimetypes` varies between machines and knows no `.pmtiles`; the
viewer needs the same answer everywhere. No entry here ever implies a
Content-Encoding: `.gz` files are stored and served as the gzip files they are.
"""

from __future__ import annotations

CONTENT_TYPES = {
    ".pmtiles": "application/vnd.pmtiles",
    ".gz": "application/gzip",
    ".tsv": "text/tab-separated-values",
    ".csv": "text/csv",
    ".txt": "text/plain",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".json": "application/json",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".svg": "image/svg+xml",
    ".pdf": "application/pdf",
    ".html": "text/html",
    ".parquet": "application/vnd.apache.parquet",
    ".zip": "application/zip",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"


def content_type(name: str) -> str:
    """The Content-Type to store a file named `name` under (by its last extension)."""
    dot = name.rfind(".")
    if dot <= name.rfind("/"):
        return DEFAULT_CONTENT_TYPE
    return CONTENT_TYPES.get(name[dot:].lower(), DEFAULT_CONTENT_TYPE)

"""Valid PMTiles v3 archives around any payload: the uploader refuses a .pmtiles file without a v3 header."""

from __future__ import annotations

import os
from pathlib import Path

from examples.make_example import pmtiles_head


def pmtiles_bytes(payload: bytes) -> bytes:
    """A PMTiles v3 archive whose one tile is `payload`."""
    return pmtiles_head(len(payload), "test") + payload


def write_random_pmtiles(path: Path, payload_size: int, chunk: int = 8 * 1024 * 1024) -> None:
    """A PMTiles v3 archive holding `payload_size` random bytes, written a chunk at a time."""
    with open(path, "wb") as handle:
        handle.write(pmtiles_head(payload_size, path.name))
        left = payload_size
        while left:
            handle.write(os.urandom(min(chunk, left)))
            left -= min(chunk, left)

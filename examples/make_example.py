#!/usr/bin/env python3
"""Write a small, realistic cartload output directory (deterministic).

Usage: python examples/make_example.py OUT_DIR [--scale N]

The committed example in examples/humanlung-demo/ was made with the default
scale; benchmarks use a larger --scale. Every PMTiles file is a valid v3
archive (header, root directory, metadata, tile data) so that tools reading
headers see what the viewer sees. The directory also holds pipeline
intermediates that the catalog does not name and that must not be uploaded.
"""

from __future__ import annotations

import gzip
import json
import random
import struct
import sys
from pathlib import Path

CATALOG = """\
id: humanlung-demo
title: Human lung cancer FFPE (demo subset)
description: Xenium v1 human lung cancer FFPE; a small synthetic subset for testing uploads.
assets:
  sge:
    all: genes_all.pmtiles
    bins: [genes_bin1.pmtiles, genes_bin2.pmtiles]
    counts: genes_bin_counts.json
    index: genes_pmtiles_index.tsv
  overview: sge-mono-dark.pmtiles
  basemap:
    sge:
      default: dark
      dark: sge-mono-dark.pmtiles
      light: sge-mono-light.pmtiles
    histology: histology.pmtiles
  factors:
    - id: t18-f24
      name: T18 F24
      model_id: t18-f24
      decode_id: t18-f24-p18-a6
      de: t18-f24-bulk-de.tsv
      info: t18-f24-info.tsv
      model: t18-f24-model.tsv
      post: t18-f24-p18-a6-pseudobulk.tsv.gz
      rgb: t18-f24-rgb.tsv
      pmtiles: {hex: t18-f24.pmtiles, raster: t18-f24-p18-a6-pixel-raster.pmtiles}
      umap:
        tsv: t18-f24-umap.tsv.gz
        png: t18-f24.umap.png
        ind_png: t18-f24.umap.single.prob.png
        pmtiles: t18-f24-umap.pmtiles
      alias: t18-f24-alias.tsv
"""

PMTILES = {  # name -> (tile type: 1 mvt, 2 png; tile payload KiB at scale 1)
    "genes_all.pmtiles": (1, 24),
    "genes_bin1.pmtiles": (1, 12),
    "genes_bin2.pmtiles": (1, 12),
    "sge-mono-dark.pmtiles": (2, 16),
    "sge-mono-light.pmtiles": (2, 16),
    "histology.pmtiles": (2, 20),
    "t18-f24.pmtiles": (1, 10),
    "t18-f24-p18-a6-pixel-raster.pmtiles": (2, 14),
    "t18-f24-umap.pmtiles": (1, 6),
}
INTERMEDIATES = ["tmp/t18-f24.hex.tsv", "cartload.mk", "run_cartload2.log", "genes_all.pmtiles.done",
                 "transcripts_pixel_joined.tsv.gz"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def pmtiles(rng: random.Random, tile_type: int, payload: int, name: str) -> bytes:
    """A valid PMTiles v3 archive holding one gzip-compressed tile at z0/x0/y0."""
    tile = gzip.compress(rng.randbytes(payload), mtime=0)
    return pmtiles_head(len(tile), name, tile_type) + tile


def pmtiles_head(tile_length: int, name: str, tile_type: int = 1) -> bytes:
    """Everything of a PMTiles v3 archive before its tile data: header, root directory, metadata.

    Followed by `tile_length` bytes of tile data (one tile at z0/x0/y0), it is
    a complete archive; tests and benchmarks use it to give any payload a
    valid header.
    """
    metadata = json.dumps({"name": name, "vector_layers": [{"id": "genes", "fields": {}}]}).encode()
    # Root directory: 1 entry, tile id 0, run length 1, length, offset 0 (encoded as offset + 1).
    directory = bytes([1, 0, 1]) + _varint(tile_length) + bytes([1])
    root_offset = 127
    metadata_offset = root_offset + len(directory)
    data_offset = metadata_offset + len(metadata)
    header = b"PMTiles" + struct.pack(
        "<BQQQQQQQQQQQBBBBBBiiiiBii", 3,
        root_offset, len(directory), metadata_offset, len(metadata), 0, 0, data_offset, tile_length,
        1, 1, 1, 1, 1, 2, tile_type, 0, 14,
        -1_200_000, 378_000_000, -1_180_000, 379_000_000, 7, -1_190_000, 378_500_000,
    )
    assert len(header) == 127
    return header + directory + metadata


def table(rng: random.Random, rows: int, columns: list[str]) -> bytes:
    lines = ["\t".join(columns)]
    for row in range(rows):
        lines.append("\t".join([f"g{row}"] + [f"{rng.random():.5f}" for _ in columns[1:]]))
    return ("\n".join(lines) + "\n").encode()


def write_example(out: Path, scale: int = 1) -> None:
    """Write the dataset to `out` (created if needed)."""
    rng = random.Random(20261124)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {"catalog.yaml": CATALOG.encode()}
    for name, (tile_type, kib) in PMTILES.items():
        files[name] = pmtiles(rng, tile_type, kib * 1024 * scale, name)
    factors = ["gene"] + [f"F{i}" for i in range(24)]
    files["genes_bin_counts.json"] = json.dumps({"bin1": 1200 * scale, "bin2": 640 * scale}).encode()
    files["genes_pmtiles_index.tsv"] = table(rng, 20, ["gene", "bin", "count"])
    files["t18-f24-bulk-de.tsv"] = table(rng, 40 * scale, ["gene", "factor", "log2fc", "pval"])
    files["t18-f24-info.tsv"] = table(rng, 24, ["factor", "weight", "top_genes"])
    files["t18-f24-model.tsv"] = table(rng, 60 * scale, factors)
    files["t18-f24-rgb.tsv"] = table(rng, 24, ["factor", "R", "G", "B"])
    files["t18-f24-alias.tsv"] = table(rng, 24, ["factor", "alias"])
    files["t18-f24-p18-a6-pseudobulk.tsv.gz"] = gzip.compress(table(rng, 80 * scale, factors), mtime=0)
    files["t18-f24-umap.tsv.gz"] = gzip.compress(table(rng, 80 * scale, ["cell", "x", "y", "factor"]), mtime=0)
    files["t18-f24.umap.png"] = PNG_SIGNATURE + rng.randbytes(3000 * scale)
    files["t18-f24.umap.single.prob.png"] = PNG_SIGNATURE + rng.randbytes(2000 * scale)
    for name in INTERMEDIATES:
        files[name] = b"intermediate: not named by the catalog\n"
    for name, data in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 4):
        sys.exit(__doc__)
    write_example(Path(sys.argv[1]), int(sys.argv[3]) if len(sys.argv) == 4 else 1)

"""Synthetic cartload datasets for the benchmark: generated deterministically, never committed.

Content comes from SHAKE-128 keyed by dataset, file and chunk, so every run
of every machine gets the same bytes, and nothing compresses or deduplicates.
A manifest records each file's size and the ETags an S3 server may give it
(single-part MD5, or the multipart MD5-of-MD5s for the part sizes the tools
use), which is how every round checks that the bytes arrived intact.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

MiB = 1024 * 1024
GiB = 1024 * MiB
CHUNK = 4 * MiB
# The part sizes of the tools compared: ours and aws cli 8 MiB, s5cmd 50 MiB.
PART_SIZES = (8 * MiB, 50 * MiB)
LAYOUT_VERSION = "2"  # change it when a layout changes: old data is then regenerated


@dataclass(frozen=True)
class FileFacts:
    size: int
    md5: str
    etags: tuple[str, ...]  # what an S3 server reports for intact bytes


@dataclass(frozen=True)
class SyntheticDataset:
    name: str
    directory: Path
    files: dict[str, FileFacts]  # file name -> facts, catalog.yaml included
    mtimes: dict[str, int]  # as generated; a file with another mtime was changed since

    def total_bytes(self) -> int:
        return sum(facts.size for facts in self.files.values())


def large_layout() -> dict[str, int]:
    """A realistic cartload dataset of about 1 GiB (the shape of a Xenium run's output)."""
    sizes = {"genes_all.pmtiles": 300_000_000}
    sizes.update({f"genes_bin{i}.pmtiles": 30_000_000 for i in range(1, 11)})
    sizes.update({
        "sge-mono-dark.pmtiles": 40_000_000, "sge-mono-light.pmtiles": 40_000_000,
        "histology.pmtiles": 80_000_000, "t18-f24.pmtiles": 60_000_000,
        "t18-f24-p18-a6-pixel-raster.pmtiles": 50_000_000, "t18-f24-umap.pmtiles": 25_000_000,
    })
    sizes.update({f"t18-f24-table-{i:02d}.tsv": (i * 7 % 30 + 1) * 350_000 for i in range(30)})
    return sizes


def large_catalog(names: list[str]) -> dict[str, object]:
    bins = [f"genes_bin{i}.pmtiles" for i in range(1, 11)]
    return {
        "id": "bench-large", "title": "benchmark: a realistic 1 GiB dataset",
        "assets": {
            "sge": {"all": "genes_all.pmtiles", "bins": bins},
            "basemap": {"sge": {"default": "dark", "dark": "sge-mono-dark.pmtiles",
                                "light": "sge-mono-light.pmtiles"},
                        "histology": "histology.pmtiles"},
            "factors": [{"id": "t18-f24",
                         "pmtiles": {"hex": "t18-f24.pmtiles", "raster": "t18-f24-p18-a6-pixel-raster.pmtiles"},
                         "umap": {"pmtiles": "t18-f24-umap.pmtiles"},
                         "tables": [name for name in names if name.endswith(".tsv")]}],
        },
    }


def small_layout() -> dict[str, int]:
    """2,000 tables of 8 KiB: a collection of many small files."""
    return {f"factor-{i // 5:03d}-table-{i % 5}.tsv": 8 * 1024 for i in range(2000)}


def tiny_layout() -> dict[str, int]:
    """20,000 tables of 2 KiB: per-request cost and nothing else."""
    return {f"tiny-{i // 100:03d}-{i % 100:02d}.tsv": 2 * 1024 for i in range(20_000)}


def one_file_layout(size: int) -> dict[str, int]:
    return {"genes_all.pmtiles": size}


def simple_catalog(dataset_id: str, names: list[str]) -> dict[str, object]:
    return {"id": dataset_id, "title": f"benchmark: {dataset_id}", "assets": {"tables": sorted(names)}}


def prepare(root: Path) -> dict[str, SyntheticDataset]:
    """Every benchmark dataset under `root`, generated the first time (about 7 GiB) and reused after."""
    layouts = {
        "large": large_layout(),
        "small": small_layout(),
        "tiny": tiny_layout(),
        "huge": one_file_layout(5 * GiB),
        "zenodo": one_file_layout(1 * GiB),
        "single": {"factor-000-table-0.tsv": 8 * 1024},  # a run's fixed cost: one small table and its catalog
    }
    catalogs = {
        "large": large_catalog(sorted(layouts["large"])),
        "small": simple_catalog("bench-small", list(layouts["small"])),
        "tiny": simple_catalog("bench-tiny", list(layouts["tiny"])),
        "huge": simple_catalog("bench-huge", list(layouts["huge"])),
        "zenodo": simple_catalog("bench-zenodo", list(layouts["zenodo"])),
        "single": simple_catalog("bench-single", list(layouts["single"])),
    }
    return {name: _materialise(root / name, name, layouts[name], catalogs[name]) for name in layouts}


def rewrite_same_size(dataset: SyntheticDataset, name: str, variant: str) -> SyntheticDataset:
    """Give one file new content of the same size and an OLDER mtime (what fools mtime-based sync)."""
    path = dataset.directory / name
    before = path.stat()
    facts = _write(path, before.st_size, f"{dataset.name}/{name}/{variant}")
    older = before.st_mtime_ns - 3600 * 10**9
    os.utime(path, ns=(older, older))
    files = dict(dataset.files)
    files[name] = facts
    return SyntheticDataset(dataset.name, dataset.directory, files, dataset.mtimes)


def restore(dataset: SyntheticDataset, name: str) -> None:
    """Put back a file's generated content (and mtime), so the next run finds the dataset as made."""
    path = dataset.directory / name
    _write(path, path.stat().st_size, f"{dataset.name}/{name}")
    os.utime(path, ns=(dataset.mtimes[name], dataset.mtimes[name]))


def _materialise(directory: Path, name: str, layout: dict[str, int], catalog: dict[str, object]) -> SyntheticDataset:
    manifest_path = directory / ".manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("version") == LAYOUT_VERSION and _still_there(directory, manifest["files"]):
            files = {key: FileFacts(v["size"], v["md5"], tuple(v["etags"])) for key, v in manifest["files"].items()}
            mtimes = {key: v["mtime_ns"] for key, v in manifest["files"].items()}
            return SyntheticDataset(name, directory, files, mtimes)
    print(f"generating the {name} dataset in {directory} ...", flush=True)
    directory.mkdir(parents=True, exist_ok=True)
    files = {file_name: _write(directory / file_name, size, f"{name}/{file_name}")
             for file_name, size in layout.items()}
    catalog_path = directory / "catalog.yaml"
    catalog_path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    files["catalog.yaml"] = _facts(catalog_path.read_bytes())
    mtimes = {key: (directory / key).stat().st_mtime_ns for key in files}
    manifest_path.write_text(json.dumps({"version": LAYOUT_VERSION, "files": {
        key: {"size": f.size, "md5": f.md5, "etags": list(f.etags), "mtime_ns": mtimes[key]}
        for key, f in files.items()}}))
    return SyntheticDataset(name, directory, files, mtimes)


def _still_there(directory: Path, files: dict[str, dict[str, object]]) -> bool:
    for name, facts in files.items():
        path = directory / name
        # Same size and mtime as generated: an interrupted benchmark that changed a file is caught.
        if not path.is_file() or path.stat().st_size != facts["size"] or path.stat().st_mtime_ns != facts["mtime_ns"]:
            return False
    return True


def _write(path: Path, size: int, seed: str) -> FileFacts:
    hasher = _EtagHasher()
    with open(path, "wb") as out:
        written, index = 0, 0
        if path.suffix == ".pmtiles":  # a PMTiles v3 header the uploader's check accepts
            header = pmtiles_header(size)
            out.write(header)
            hasher.update(header)
            written = len(header)
        while written < size:
            chunk = hashlib.shake_128(f"{seed}/{index}".encode()).digest(min(CHUNK, size - written))
            out.write(chunk)
            hasher.update(chunk)
            written, index = written + len(chunk), index + 1
    return hasher.facts(size)


def pmtiles_header(size: int) -> bytes:
    """127 bytes: magic, version 3, then root directory, metadata, leaf directories and tile data, all inside."""
    import struct

    root, metadata = (127, 1024), (1151, 1024)
    leaves, tiles = (2175, 0), (2175, size - 2175)
    counts = (1, 1, 1)  # addressed tiles, tile entries, tile contents
    flags = bytes([0, 1, 1, 2, 0, 14])  # clustered, internal gzip, tile gzip, png... min/max zoom
    header = b"PMTiles" + bytes([3]) + struct.pack("<8Q", *root, *metadata, *leaves, *tiles)
    header += struct.pack("<3Q", *counts) + flags
    return header.ljust(127, b"\0")


def _facts(data: bytes) -> FileFacts:
    hasher = _EtagHasher()
    hasher.update(data)
    return hasher.facts(len(data))


class _EtagHasher:
    """The whole-file MD5 and the multipart ETag for each of PART_SIZES, in one pass."""

    def __init__(self) -> None:
        self.whole = hashlib.md5()
        self.parts: dict[int, list[bytes]] = {size: [] for size in PART_SIZES}
        self.current = {size: hashlib.md5() for size in PART_SIZES}
        self.filled = dict.fromkeys(PART_SIZES, 0)

    def update(self, data: bytes) -> None:
        self.whole.update(data)
        for size in PART_SIZES:
            view = memoryview(data)
            while len(view):
                take = min(len(view), size - self.filled[size])
                self.current[size].update(view[:take])
                self.filled[size] += take
                view = view[take:]
                if self.filled[size] == size:
                    self.parts[size].append(self.current[size].digest())
                    self.current[size], self.filled[size] = hashlib.md5(), 0

    def facts(self, total: int) -> FileFacts:
        etags = [self.whole.hexdigest()]
        for size in PART_SIZES:
            if total >= size:  # every tool uploads a file of at least one part size in parts
                parts = self.parts[size] + ([self.current[size].digest()] if self.filled[size] else [])
                etags.append(f"{hashlib.md5(b''.join(parts)).hexdigest()}-{len(parts)}")
        return FileFacts(total, self.whole.hexdigest(), tuple(etags))

"""A collection shaped like the output of cartloader's joint multi-sample run (`run_together`).

As cartloader writes it (seqscope/cartloader at 6813bfbfdfcca5de269d73d57b12f37e3d65b9d7:
cartloader/scripts/run_together.py calls `run_cartload2_multi`, whose build_multi_catalog writes
the root): `<out>/cartl/` holds one self-contained directory per sample, `<multi_id>-<sample_id>/`,
whose catalog.yaml has that directory's name as its id, and at the root `multi-catalog.yaml`
(yaml.safe_dump with sort_keys=False) naming each sample's catalog and the factor files the samples
share, copied to the root as `<oid>-model.tsv` (or `-pseudobulk.tsv.gz` for cells), `-rgb.tsv`,
`-de.tsv`, `-info.tsv`, the UMAP's `-umap.{pmtiles,png,tsv.gz}`, for cells `-heatmap.{pdf,tsv}`;
`<oid>` is the model id or cell prefix with `_` -> `-`. run_together's own upload copies every root
file the multi-catalog names, plus multi-catalog.yaml, to the parent of the sample directories.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.pmtiles_files import pmtiles_bytes

MODEL = "t12_f24"  # a joint LDA model: its files are named t12-f24-*
CELLS = "cells_xr"  # a cell analysis: cells-xr-*


@dataclass(frozen=True)
class Collection:
    root: Path  # <out>/cartl: --in-dir
    in_list: Path  # the samples' directories, one a line: --in-list
    multi_id: str
    samples: dict[str, list[str]]  # sample directory -> its catalog's files (catalog.yaml last)
    root_files: list[str]  # the shared files multi-catalog.yaml names (multi-catalog.yaml not included)

    def objects(self) -> set[str]:
        """Every object a complete upload holds, relative to --s3-dir."""
        sample_keys = {f"{sample}/{name}" for sample, names in self.samples.items() for name in names}
        return sample_keys | set(self.root_files) | {"multi-catalog.yaml"}

    def local(self, key: str) -> bytes:
        return (self.root / key).read_bytes()


def make_collection(out: Path, sample_ids: tuple[str, ...] = ("s1", "s2"), *, tile_bytes: int = 64 * 1024,
                    tables: int = 2, shape: str = "factors") -> Collection:
    """Write the collection under `out` (its basename is the multi id, as cartloader defaults it).

    `shape`: "factors" (cartloader's writer: a top-level factors map), "assets" (the newer shape, the same map
    under assets: factors:) or "shared" (the older one: a shared section pointing into the first sample).
    """
    multi_id = out.name
    root = out / "cartl"
    root.mkdir(parents=True)
    samples = {}
    for sample_id in sample_ids:
        directory = f"{multi_id}-{sample_id}"
        samples[directory] = _sample(root / directory, directory, tile_bytes, tables)
    oid, cells = MODEL.replace("_", "-"), CELLS.replace("_", "-")
    model_entry = {"post": f"{oid}-model.tsv", "rgb": f"{oid}-rgb.tsv", "de": f"{oid}-de.tsv",
                   "info": f"{oid}-info.tsv",
                   "umap": {"pmtiles": f"{oid}-umap.pmtiles", "png": f"{oid}-umap.png", "tsv": f"{oid}-umap.tsv.gz"}}
    cells_entry = {"post": f"{cells}-pseudobulk.tsv.gz", "rgb": f"{cells}-rgb.tsv", "de": f"{cells}-de.tsv",
                   "info": f"{cells}-info.tsv",
                   "heatmap": {"pdf": f"{cells}-heatmap.pdf", "tsv": f"{cells}-heatmap.tsv"}}
    root_files = []
    for entry in (model_entry, cells_entry):
        for name in _leaves(entry):
            _write_shared(root / name)
            root_files.append(name)
    catalog: dict[str, object] = {
        "id": multi_id, "analysis_type": "multi-sample", "n_samples": len(sample_ids),
        "samples": {sample_id: f"{multi_id}-{sample_id}/catalog.yaml" for sample_id in sample_ids},
    }
    factors = {MODEL: model_entry, CELLS: cells_entry}
    if shape == "assets":
        catalog["assets"] = {"factors": factors}
    elif shape == "shared":  # the older shape: the first sample's copies are the shared ones
        first = f"{multi_id}-{sample_ids[0]}"
        catalog["shared"] = {MODEL: {"rgb": f"{first}/{oid}-rgb.tsv"}}
        catalog["factors"] = factors
    else:
        catalog["factors"] = factors
    (root / "multi-catalog.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
    (root / "multi-catalog.yaml.bak").write_text("id: an older copy, never uploaded\n")
    (root / f"{oid}.shared.done").write_text("")  # the pipeline's flags: not named, never uploaded
    in_list = out / "samples.tsv"
    in_list.write_text("".join(f"{directory}\t{directory.rsplit('-', 1)[1]}\n" for directory in samples))
    return Collection(root, in_list, multi_id, samples, root_files)


def _sample(directory: Path, catalog_id: str, tile_bytes: int, tables: int) -> list[str]:
    directory.mkdir()
    oid = MODEL.replace("_", "-")
    tiles = ["genes_all.pmtiles", f"{oid}.pmtiles"]
    for name in tiles:
        (directory / name).write_bytes(pmtiles_bytes(os.urandom(tile_bytes)))
    names = [*tiles, f"{oid}-rgb.tsv"] + [f"table-{index}.tsv" for index in range(tables)]
    for name in names[len(tiles):]:
        (directory / name).write_bytes(f"{catalog_id} {name}\n".encode() * 50)
    assets = {"sge": {"all": "genes_all.pmtiles"},
              "factors": [{"id": oid, "model_id": oid, "rgb": f"{oid}-rgb.tsv", "pmtiles": {"hex": f"{oid}.pmtiles"}}],
              "tables": names[len(tiles) + 1:]}
    (directory / "catalog.yaml").write_text(yaml.safe_dump({"id": catalog_id, "assets": assets}, sort_keys=False))
    (directory / "cartload.mk").write_text("# the pipeline's Makefile: not named, never uploaded\n")
    return [*names, "catalog.yaml"]


def _leaves(entry: dict[str, object]) -> list[str]:
    found = []
    for value in entry.values():
        found.extend(_leaves(value) if isinstance(value, dict) else [str(value)])
    return found


def _write_shared(path: Path) -> None:
    if path.name.endswith(".pmtiles"):
        path.write_bytes(pmtiles_bytes(os.urandom(2048)))
    elif path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(f"shared {path.name}\n".encode() * 20, mtime=0))
    else:
        path.write_bytes(f"shared {path.name}\n".encode() * 20)

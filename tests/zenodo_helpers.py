"""What the upload_zenodo end-to-end tests share: running the command, and reading what the mock holds."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.conftest import HELPER_AGENT, CliResult, MockZenodo, run_cli

METADATA = ["--title", "Human lung demo", "--creators", "Doe, Jane", "--creators", "Roe, Rick",
            "--description", "A demo dataset"]


def upload(zenodo: MockZenodo, env: dict[str, str], token_file: Path, dataset: Path, *extra: str) -> CliResult:
    return run_cli("upload_zenodo", "--in-dir", dataset, "--zenodo-token", token_file,
                   "--zenodo-url", zenodo.api_url, *extra, env=env)


def md5s(directory: Path, names: Iterable[str]) -> dict[str, str]:
    return {name: hashlib.md5((directory / name).read_bytes()).hexdigest() for name in names}


def catalog_names(dataset: Path) -> set[str]:
    return {"catalog.yaml"} | {p.name for p in dataset.iterdir() if p.suffix in (".pmtiles", ".tsv", ".json", ".png")
                               or p.name.endswith(".tsv.gz")} - {"transcripts_pixel_joined.tsv.gz"}


def only_deposition(zenodo: MockZenodo) -> dict[str, Any]:
    found = zenodo.depositions()
    assert len(found) == 1, found
    return found[0]


def uploader_requests(zenodo: MockZenodo) -> list[dict[str, Any]]:
    """The requests the uploader made (the tests' own calls left out), in order."""
    return [entry for entry in zenodo.log() if entry["user_agent"] != HELPER_AGENT]


def assert_nothing_created(result: CliResult, zenodo: MockZenodo, code: int, *phrases: str) -> None:
    assert result.code == code, result.output
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    assert zenodo.depositions() == []
    assert zenodo.token not in result.output

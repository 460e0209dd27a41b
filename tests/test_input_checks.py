"""Input that cannot be published is refused before anything is sent, by both commands (end to end).

Each case runs the real entrypoint against the real local S3 server and the
mock Zenodo, then checks that the bucket prefix is empty and that no
deposition was created.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CliResult, MockZenodo, S3Prefix, run_cli
from tests.test_pmtiles import HTML_PAGE, V2_ARCHIVE, VALID

pytestmark = pytest.mark.e2e

METADATA = ["--title", "Human lung demo", "--creators", "Doe, Jane", "--description", "A demo dataset"]


def upload_aws(dataset: Path, s3: S3Prefix, env: dict[str, str], *extra: str | Path) -> CliResult:
    return run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, *extra, env=env)


def upload_zenodo(dataset: Path, zenodo: MockZenodo, env: dict[str, str], token_file: Path,
                  *extra: str | Path) -> CliResult:
    return run_cli("upload_zenodo", "--in-dir", dataset, "--zenodo-token", token_file, "--zenodo-url",
                   zenodo.api_url, *METADATA, *extra, env=env)


def assert_nothing_sent(result: CliResult, s3: S3Prefix | None = None, zenodo: MockZenodo | None = None,
                        *phrases: str) -> None:
    assert result.code == 2, result.output
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    if s3 is not None:
        assert s3.names() == set() and s3.multipart_uploads() == []
    if zenodo is not None:
        assert zenodo.depositions() == []


# -- PMTiles archives the viewer cannot read (issue 16, item 2) -------------------------------------

BAD_ARCHIVES = {
    "empty": (b"", "is empty (0 bytes)"),
    "truncated": (VALID[:-100], "is truncated"),
    "html-error-page": (HTML_PAGE, "is an HTML or XML page"),
    "pmtiles-v2": (V2_ARCHIVE, "is a PMTiles version 2 archive"),
}


@pytest.mark.parametrize("case", BAD_ARCHIVES)
def test_upload_aws_refuses_a_pmtiles_file_the_viewer_cannot_read(dataset, s3, cli_env, case):
    data, reason = BAD_ARCHIVES[case]
    (dataset / "genes_bin2.pmtiles").write_bytes(data)

    result = upload_aws(dataset, s3, cli_env)

    assert_nothing_sent(result, s3, None, f"(assets.sge.bins[1]): 'genes_bin2.pmtiles' {reason}")


@pytest.mark.parametrize("case", BAD_ARCHIVES)
def test_upload_zenodo_refuses_a_pmtiles_file_the_viewer_cannot_read(dataset, zenodo, zenodo_env, token_file, case):
    data, reason = BAD_ARCHIVES[case]
    (dataset / "histology.pmtiles").write_bytes(data)

    result = upload_zenodo(dataset, zenodo, zenodo_env, token_file)

    assert_nothing_sent(result, None, zenodo, f"(assets.basemap.histology): 'histology.pmtiles' {reason}")

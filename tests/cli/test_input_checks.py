"""Input that cannot be published is refused before anything is sent, by both commands (end to end).

Each case runs the real entrypoint against the real local S3 server and the
mock Zenodo, then checks that the bucket prefix is empty and that no
deposition was created.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import CliResult, MockZenodo, S3Prefix, run_cli
from tests.local.test_pmtiles import HTML_PAGE, V2_ARCHIVE, VALID

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


# -- every named file is uploaded or refused (issue 15, item 1) -------------------------------------


def add_to_catalog(dataset: Path, text: str) -> None:
    path = dataset / "catalog.yaml"
    path.write_text(path.read_text() + text)


def test_a_file_name_with_spaces_under_assets_is_uploaded_and_reported(dataset, s3, cli_env):
    (dataset / "sp ace.pmtiles").write_bytes(VALID)
    add_to_catalog(dataset, '  extra:\n    layer: "sp ace.pmtiles"\n')
    report = dataset.parent / "report.json"

    dry = upload_aws(dataset, s3, cli_env, "--dry-run")
    assert dry.code == 0, dry.output
    assert f"{s3.prefix}/sp ace.pmtiles  (new)" in dry.stdout

    result = upload_aws(dataset, s3, cli_env, "--report", report)

    assert result.code == 0, result.output
    assert s3.get("sp ace.pmtiles") == VALID
    entries = {entry["name"]: entry["status"] for entry in json.loads(report.read_text())["files"]}
    assert entries["sp ace.pmtiles"] == "uploaded"


@pytest.mark.parametrize(("yaml_value", "reason"), [('"no such file.pmtiles"', "'no such file.pmtiles' is missing"),
                                                     ('"missing\\ttab.tsv"', "'missing\\ttab.tsv' contains a control")],
                         ids=["space", "tab"])
def test_a_missing_file_name_with_whitespace_under_assets_is_an_input_error(dataset, s3, cli_env, yaml_value,
                                                                            reason):
    add_to_catalog(dataset, f"  extra:\n    layer: {yaml_value}\n")

    result = upload_aws(dataset, s3, cli_env)

    assert_nothing_sent(result, s3, None, "(assets.extra.layer)", reason)


def test_an_existing_file_with_a_tab_in_its_name_is_refused_not_skipped(dataset, s3, cli_env):
    (dataset / "with\ttab.tsv").write_text("a\tb\n")
    add_to_catalog(dataset, '  extra:\n    table: "with\\ttab.tsv"\n')

    result = upload_aws(dataset, s3, cli_env)

    assert_nothing_sent(result, s3, None, "(assets.extra.table)", "control character", "rename the file")


def test_text_that_names_an_existing_file_under_assets_is_that_file(dataset, s3, cli_env):
    (dataset / "README").write_text("about this dataset\n")
    add_to_catalog(dataset, "  about: README\n  colour: red\n  note: a sentence, not a file\n")

    result = upload_aws(dataset, s3, cli_env)

    assert result.code == 0, result.output
    assert s3.get("README") == b"about this dataset\n"
    assert not {"red", "a sentence, not a file"} & s3.names()


def test_outside_assets_a_missing_file_name_is_a_warning_and_known_text_stays_text(dataset, s3, cli_env):
    catalog = dataset / "catalog.yaml"
    catalog.write_text('title: "Lung atlas v2.pmtiles edition"\ndescription: "see genes all.pmtiles"\n'
                       'protocol: "protocol notes.pdf"\n' + catalog.read_text())
    report = dataset.parent / "report.json"

    result = upload_aws(dataset, s3, cli_env, "--report", report)

    assert result.code == 0, result.output
    warning = f"{catalog} (protocol): 'protocol notes.pdf' looks like a file name but is not in {dataset}"
    assert f"warning: {warning}" in result.stderr
    assert "Lung atlas" not in result.stderr and "genes all" not in result.stderr
    (reported,) = json.loads(report.read_text())["warnings"]
    assert reported.startswith(warning)
    assert "catalog.yaml" in s3.names()


def test_upload_zenodo_applies_the_same_rule(dataset, zenodo, zenodo_env, token_file):
    (dataset / "sp ace.pmtiles").write_bytes(VALID)
    add_to_catalog(dataset, '  extra:\n    layer: "sp ace.pmtiles"\n    gone: "no such file.tsv"\n')

    refused = upload_zenodo(dataset, zenodo, zenodo_env, token_file)
    assert_nothing_sent(refused, None, zenodo, "'no such file.tsv' is missing")

    catalog = dataset / "catalog.yaml"
    catalog.write_text(catalog.read_text().replace('    gone: "no such file.tsv"\n', ""))
    result = upload_zenodo(dataset, zenodo, zenodo_env, token_file)
    assert result.code == 0, result.output
    (deposition,) = zenodo.depositions()
    assert "sp ace.pmtiles" in zenodo.files(deposition["id"])


# -- hostile catalogs are refused quickly (issue 15, item 5) ----------------------------------------


def test_an_alias_bomb_exits_2_at_once(dataset, s3, cli_env):
    from tests.local.test_catalog import billion_laughs

    (dataset / "catalog.yaml").write_text(billion_laughs())
    started = time.monotonic()

    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, env=cli_env, timeout=60)

    assert time.monotonic() - started < 3  # the whole command, interpreter start included; it hung for hours
    assert_nothing_sent(result, s3, None, "more than 1,000,000 values once its aliases are expanded")


def test_a_catalog_written_with_ordinary_aliases_uploads(dataset, s3, cli_env):
    catalog = yaml.safe_load((dataset / "catalog.yaml").read_text())
    catalog["assets"]["overview_layers"] = catalog["assets"]["basemap"]["sge"]  # one object referenced twice
    text = yaml.safe_dump(catalog)
    assert "*id001" in text
    (dataset / "catalog.yaml").write_text(text)

    result = upload_aws(dataset, s3, cli_env)

    assert result.code == 0, result.output
    assert "sge-mono-light.pmtiles" in s3.names() and s3.get("catalog.yaml") == text.encode()


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_catalog_that_is_not_a_regular_file_is_refused(dataset, s3, cli_env, tmp_path, kind):
    if kind == "fifo":
        catalog = tmp_path / "catalog-fifo.yaml"
        os.mkfifo(catalog)  # no writer: opening it for reading used to block forever
    else:
        catalog = Path("/dev/zero")  # used to end in a MemoryError traceback

    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, "--catalog-yaml", catalog,
                     env=cli_env, timeout=60)

    assert_nothing_sent(result, s3, None, f"{catalog}: is not a regular file")


def test_a_catalog_over_the_size_limit_is_refused(dataset, s3, cli_env):
    catalog = dataset / "catalog.yaml"
    with open(catalog, "a") as handle:  # a 50 MB catalog took 1 GB of memory
        handle.truncate(50 * 10**6)

    result = upload_aws(dataset, s3, cli_env)

    assert_nothing_sent(result, s3, None, "catalog is larger than 8 MiB")


def test_100000_missing_files_print_20_and_a_count_and_the_report_has_all(dataset, s3, cli_env):
    names = [f"factor-{index:06d}.tsv" for index in range(100_000)]
    (dataset / "catalog.yaml").write_text("id: many\nassets:\n  tables:\n" + "".join(f"  - {n}\n" for n in names))
    report = dataset.parent / "report.json"

    result = upload_aws(dataset, s3, cli_env, "--report", report)

    assert_nothing_sent(result, s3, None, "... and 99,980 more (100,000 problems in all; --report FILE lists")
    assert len(result.stderr.splitlines()) == 21
    assert len(result.stderr) < 10_000  # 16 MB before
    document = json.loads(report.read_text())
    assert document["ok"] is False and document["exit_status"] == 2
    assert len(document["problems"]) == 100_000
    assert "'factor-099999.tsv' is missing" in document["problems"][-1]

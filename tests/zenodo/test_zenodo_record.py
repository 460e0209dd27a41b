"""upload_zenodo's record options: what the PUBLISHED record holds, and bad values refused before any request.

Each test runs the real command against the mock Zenodo (which follows zenodo-rdm's legacy layer for
licenses, identifiers, communities and the reserved DOI) and reads the record back as Zenodo shows it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MockZenodo
from tests.zenodo_helpers import METADATA, assert_nothing_created, only_deposition, upload, uploader_requests

pytestmark = pytest.mark.e2e

ORCID = "0000-0002-1825-0097"  # ORCID's own example iD, a valid check digit
VIEWER = "https://v3o-main.carto-scope.org/dataset?uri=s3%2Flab-bucket%2Fhumanlung-demo"


def communities(zenodo: MockZenodo) -> dict[str, str]:
    """Three communities: one this token curates, one it does not, one that does not exist."""
    suffix = uuid.uuid4().hex[:8]
    names = {"own": f"own-lab-{suffix}", "other": f"consortium-{suffix}", "ghost": f"no-such-{suffix}"}
    zenodo.control("communities", {"slug": names["own"], "curators": [zenodo.token]})
    zenodo.control("communities", {"slug": names["other"], "curators": ["someone-else"]})
    return names


def zenodo_json(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / ".zenodo.json"
    path.write_text(json.dumps(data))
    return path


def test_a_complete_record_is_published_as_given(zenodo, zenodo_env, token_file, dataset, tmp_path):
    names = communities(zenodo)
    metadata = zenodo_json(tmp_path, {
        "license": "cc0-1.0", "notes": "Sequenced in 2025.",
        "contributors": [{"name": "Poe, Ed", "type": "datacurator", "affiliation": "Univ. Y"}],
        "grants": [{"id": "10.13039/100000002::R01HG011031"}]})
    report = tmp_path / "report.json"
    result = upload(zenodo, zenodo_env, token_file, dataset, "--metadata", metadata,
                    "--title", "Human lung demo", "--description", "A demo dataset",
                    "--creators", f"Doe, Jane [orcid:https://orcid.org/{ORCID}] [affiliation:Univ. X]", "Roe, Rick",
                    "--license", "cc-by-4.0", "--version", "v1.0", "--keywords", "lung", "FFPE",
                    "--related-identifier", "isSupplementTo:https://doi.org/10.1234/paper",
                    "--viewer-link", VIEWER, "--community", names["own"], "--community", names["other"],
                    "--community", names["ghost"], "--publication-date", "2025-03-04",
                    "--report", report, "--publish")

    assert result.code == 0, result.output
    record = only_deposition(zenodo)
    held = record["metadata"]
    assert record["submitted"] is True
    assert held["license"] == "cc-by-4.0"
    assert held["creators"] == [{"name": "Doe, Jane", "orcid": ORCID, "affiliation": "Univ. X"},
                                {"name": "Roe, Rick"}]
    assert held["contributors"] == [{"name": "Poe, Ed", "type": "DataCurator", "affiliation": "Univ. Y"}]
    assert held["version"] == "v1.0" and held["keywords"] == ["lung", "FFPE"]
    assert held["related_identifiers"] == [
        {"relation": "isSupplementTo", "identifier": "10.1234/paper", "scheme": "doi"},
        {"relation": "isVariantFormOf", "identifier": VIEWER, "scheme": "url"}]
    assert held["grants"] == [{"id": "10.13039/100000002::R01HG011031"}] and held["notes"] == "Sequenced in 2025."
    assert held["publication_date"] == "2025-03-04"
    assert held["communities"] == [{"identifier": names["own"]}]  # only an accepted community shows
    assert held["prereserve_doi"]["doi"] == record["doi"]

    told = result.stderr.splitlines()
    assert f"--license replaces license of --metadata {metadata}" in result.stderr
    assert any(f"will be published under the DOI {record['doi']}" in line for line in told), result.stderr
    assert "license: cc-by-4.0" in told
    assert f"community {names['own']}: accepted" in told
    assert f"community {names['other']}: submitted: awaiting the community's curators" in told
    assert any(line.startswith(f"community {names['ghost']}: failed: no request was made") for line in told)

    written = json.loads(report.read_text())["record"]
    assert written["reserved_doi"] == written["doi"] == record["doi"]
    assert written["license"] == "cc-by-4.0"
    assert {name: state["status"] for name, state in written["communities"].items()} == {
        names["own"]: "accepted", names["other"]: "submitted", names["ghost"]: "failed"}


def test_without_license_zenodos_default_is_told(zenodo, zenodo_env, token_file, dataset):
    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--publish")

    assert result.code == 0, result.output
    assert only_deposition(zenodo)["metadata"]["license"] == "cc-zero"  # how the deposit API shows cc0-1.0
    assert "license: cc0-1.0 (Zenodo's default; choose with --license ID)" in result.stderr.splitlines()


def test_a_license_changed_on_a_published_record_is_an_edit_and_a_rerun_changes_nothing(
        zenodo, zenodo_env, token_file, dataset):
    assert upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--publish").code == 0
    record = only_deposition(zenodo)

    first = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(record["id"]), "--license", "mit",
                   "--publish")
    again = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(record["id"]), "--license", "mit",
                   "--publish")

    assert first.code == 0 and again.code == 0, first.output + again.output
    edited = only_deposition(zenodo)
    assert edited["doi"] == record["doi"]
    assert edited["metadata"]["license"] == "mit-license"  # Zenodo's legacy name for mit
    assert "license: mit" in again.stderr.splitlines()
    assert "nothing was changed" in again.stderr  # mit-license is mit: no second edit


def test_a_new_version_takes_its_version_label_and_is_warned_without_one(zenodo, zenodo_env, token_file, dataset):
    assert upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--version", "v1", "--publish").code == 0
    first = only_deposition(zenodo)
    (dataset / "genes_bin_counts.json").write_text('{"v2": true}')

    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(first["id"]), "--version", "v2",
                    "--publish")
    (dataset / "genes_bin_counts.json").write_text('{"v3": true}')
    unlabelled = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(first["id"]), "--publish")

    assert result.code == 0 and unlabelled.code == 0, result.output + unlabelled.output
    v1, v2, v3 = sorted(zenodo.depositions(), key=lambda d: d["id"])
    assert (v1["metadata"]["version"], v2["metadata"]["version"]) == ("v1", "v2")
    assert "version" not in v3["metadata"]
    assert f"will be published under the DOI {v2['doi']}" in result.stderr
    assert "the new version will have no version number" in unlabelled.stderr


def test_dry_run_shows_the_metadata_that_would_be_sent(zenodo, zenodo_env, token_file, dataset):
    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--license", "cc-by-4.0",
                    "--creators", f"Poe, Ed [orcid:{ORCID}]", "--dry-run")

    assert result.code == 0, result.output
    assert zenodo.depositions() == []
    shown = result.stderr.split("metadata that would be sent (dry run): ", 1)[1]
    sent = json.JSONDecoder().raw_decode(shown)[0]
    assert sent["license"] == "cc-by-4.0" and sent["upload_type"] == "dataset"
    assert sent["creators"][-1] == {"name": "Poe, Ed", "orcid": ORCID}
    assert "license: cc-by-4.0" in result.stderr.splitlines()


BAD = [
    (["--license", "cc-by-4"], "--license cc-by-4: not a Zenodo license id; did you mean cc-by-4.0"),
    (["--creators", "Doe, Jane [orcid:0000-0002-1825-0098]"], "is not an ORCID iD"),
    (["--creators", "Jane Doe"], 'write it as "Doe, Jane"'),
    (["--creators", "Doe, Jane [email:j@x.org]"], "the form is --creators \"Family, Given [orcid:"),
    (["--contributors", "Poe, Ed"], "a contributor needs [type:TYPE]"),
    (["--access-right", "public"], "--access-right public: choose one of open, embargoed, restricted, closed"),
    (["--access-right", "embargoed"], "needs --embargo-date YYYY-MM-DD"),
    (["--access-right", "embargoed", "--embargo-date", "2020-01-01"], "--embargo-date 2020-01-01: must be after"),
    (["--embargo-date", "2099-01-01"], "only with --access-right embargoed"),
    (["--related-identifier", "supplements:10.1234/x"], "the form is RELATION:IDENTIFIER"),
    (["--related-identifier", "isSupplementTo:not an id"], "is not an identifier Zenodo takes"),
    (["--viewer-link", "s3://bucket/catalog.yaml"], "--viewer-link s3://bucket/catalog.yaml: must be the https://"),
    (["--community", "Big Lab"], "--community Big Lab: give the community's identifier"),
    (["--grant", "R01HG011031"], "--grant R01HG011031: the form is FUNDER_DOI::AWARD_NUMBER"),
    (["--publication-date", "2025-13-01"], "--publication-date 2025-13-01: must be a date, YYYY-MM-DD"),
    (["--description", "ok"], "--description 'ok': Zenodo needs at least 3 characters"),
]


@pytest.mark.parametrize(("extra", "message"), BAD)
def test_bad_record_options_are_refused_before_any_request(zenodo, zenodo_env, token_file, dataset, extra, message):
    base = METADATA if "--description" not in extra else ["--title", "Lung", "--creators", "Doe, Jane"]
    result = upload(zenodo, zenodo_env, token_file, dataset, *base, *extra, "--publish")

    assert_nothing_created(result, zenodo, 2, message)
    assert uploader_requests(zenodo) == []  # refused offline, before any call
    assert result.stderr.splitlines()[0].startswith("error: ")


@pytest.mark.parametrize(("content", "message"), [
    ({"title": "Lung", "creators": [{"name": "Doe, Jane", "orcd": ORCID}]}, "unknown key creators[0].orcd"),
    ({"title": "Lung", "access_conditions": "ask"}, "unknown key access_conditions: Zenodo would drop it"),
    ({"license": {"id": "cc-by-nc"}}, "license cc-by-nc: not a Zenodo license id; did you mean"),
    ({"related_identifiers": [{"identifier": "10.1/x", "relation": "isCitedBy", "resource_type": "x",
                               "extra": 1}]}, "unknown key related_identifiers[0].extra"),
    ({"creators": [{"name": "Doe, Jane", "orcid": "0000-0002-1825-0098"}]}, "creators[0]"),
])
def test_a_bad_metadata_file_is_refused_by_its_path(zenodo, zenodo_env, token_file, dataset, tmp_path, content,
                                                    message):
    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--metadata", zenodo_json(tmp_path, content))

    assert_nothing_created(result, zenodo, 2, message, f"--metadata {tmp_path / '.zenodo.json'}")
    assert uploader_requests(zenodo) == []


def test_a_rerun_does_not_ask_a_community_again(zenodo, zenodo_env, token_file, dataset):
    names = communities(zenodo)
    asked = ["--community", names["other"], "--community", names["own"]]
    assert upload(zenodo, zenodo_env, token_file, dataset, *METADATA, *asked, "--publish").code == 0
    record = only_deposition(zenodo)
    before = len(uploader_requests(zenodo))

    again = upload(zenodo, zenodo_env, token_file, dataset, *METADATA, *asked, "--zenodo-id", str(record["id"]),
                   "--publish")

    assert again.code == 0, again.output
    assert "nothing was changed" in again.stderr
    assert not [r for r in uploader_requests(zenodo)[before:] if r["method"] != "GET"]  # no edit, no publish
    assert only_deposition(zenodo)["metadata"]["communities"] == [{"identifier": names["own"]}]


def test_an_edit_that_adds_a_community_keeps_those_the_record_is_in(zenodo, zenodo_env, token_file, dataset):
    names = communities(zenodo)
    first = upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--community", names["own"], "--publish")
    assert first.code == 0, first.output
    record = only_deposition(zenodo)

    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(record["id"]), "--community",
                    names["other"], "--title", "Human lung demo, revised", "--publish")

    assert result.code == 0, result.output
    assert f"community {names['other']}: submitted: awaiting the community's curators" in result.stderr
    edited = only_deposition(zenodo)
    assert edited["doi"] == record["doi"] and edited["metadata"]["communities"] == [{"identifier": names["own"]}]

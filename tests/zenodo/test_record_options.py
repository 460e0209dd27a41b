"""The record options read and checked offline: the values Zenodo keeps, and one clear refusal for the rest."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest

from uploader.errors import UploaderError, UsageError
from uploader.zenodo import record_options
from uploader.zenodo.record_metadata import license_line, wanted_metadata

TODAY = date(2026, 12, 8)


def args(**given: object) -> dict[str, object]:
    return {"--title": "Lung atlas", "--creators": ["Doe, Jane"], **{f"--{k.replace('_', '-')}": v
                                                                     for k, v in given.items()}}


def test_a_person_with_orcid_affiliation_and_role():
    assert record_options.person("Doe ,Jane [orcid:https://orcid.org/0000-0002-1825-0097] [affiliation:Univ. X]",
                                 "--creators") == {"name": "Doe, Jane", "orcid": "0000-0002-1825-0097",
                                                   "affiliation": "Univ. X"}
    assert record_options.person("Poe, Ed [type:datacurator]", "--contributors", contributor=True) == {
        "name": "Poe, Ed", "type": "DataCurator"}


@pytest.mark.parametrize(("text", "message"), [
    ("Jane Doe", 'write it as "Doe, Jane"'),
    ("Doe, Jane, PhD", "Zenodo splits a creator only at a single comma"),
    ("Doe, Jane [orcid:0000-0002-1825-0098]", "is not an ORCID iD"),
    ("Doe, Jane [ror:05gq02987]", "the form is --creators"),
    ("Doe, Jane [affiliation:Univ", "the form is --creators"),
])
def test_a_person_refused(text, message):
    with pytest.raises(UploaderError, match=message.replace("[", r"\[")):
        record_options.person(text, "--creators")


def test_an_unknown_license_gets_the_closest_ids():
    with pytest.raises(UsageError) as refused:
        record_options.license_id("CC-BY")
    assert str(refused.value) == ("--license CC-BY: an old Zenodo name, which Zenodo reads as cc-by-1.0; give the"
                                  " license id you mean, such as cc-by-1.0 or cc-by-4.0 or cc-by-3.0 or cc-by-2.5")
    with pytest.raises(UsageError, match=r"did you mean cc-by-4\.0 or"):
        record_options.license_id("cc-by-4")
    assert record_options.license_id("CC-BY-4.0") == "cc-by-4.0"


def test_related_identifiers_are_stored_as_zenodo_stores_them():
    assert record_options.related("issupplementto:https://doi.org/10.1234/ABC") == {
        "relation": "isSupplementTo", "identifier": "10.1234/ABC", "scheme": "doi"}
    assert record_options.related("isDocumentedBy:arXiv:2101.00001")["scheme"] == "arxiv"


def test_access_rights_and_embargo():
    assert record_options.access("Embargoed", "2027-01-01", TODAY) == {"access_right": "embargoed",
                                                                      "embargo_date": "2027-01-01"}
    with pytest.raises(UsageError, match="must be after today"):
        record_options.access("embargoed", "2026-12-08", TODAY)


def test_options_win_over_the_file_and_each_override_is_told(tmp_path: Path):
    path = tmp_path / ".zenodo.json"
    path.write_text(json.dumps({"title": "From the file", "license": "mit", "keywords": ["a"]}))
    notes: list[str] = []
    wanted = wanted_metadata(args(metadata=str(path), license="cc-by-4.0", viewer_link="https://x.org/v"), notes,
                             new_deposition=True, today=TODAY)
    assert wanted["license"] == "cc-by-4.0" and wanted["title"] == "Lung atlas" and wanted["keywords"] == ["a"]
    assert wanted["related_identifiers"] == [{"relation": "isVariantFormOf", "identifier": "https://x.org/v",
                                              "scheme": "url"}]
    assert notes[:2] == [f"--title replaces title of --metadata {path}",
                         f"--license replaces license of --metadata {path}"]


def test_the_license_line_says_when_it_is_zenodos_default():
    assert license_line({"upload_type": "dataset"}, None) == \
        "license: cc0-1.0 (Zenodo's default; choose with --license ID)"
    assert license_line({"license": "mit"}, {"license": "mit-license", "upload_type": "software"}) == "license: mit"
    assert license_line({}, {"license": "cc-zero", "upload_type": "dataset"}).startswith("license: cc0-1.0 (Zenodo")


def test_people_are_split_on_semicolons_outside_brackets():
    assert record_options.split_people(["Doe, Jane [affiliation:Dept. A; Univ. X]; Roe, Rick", "Poe, Ed"]) == [
        "Doe, Jane [affiliation:Dept. A; Univ. X]", "Roe, Rick", "Poe, Ed"]


def test_the_deposit_api_body_is_read_as_a_zenodo_json(tmp_path: Path):
    path = tmp_path / "deposit.json"
    path.write_text(json.dumps({"metadata": {"title": "Lung atlas", "keywords": ["lung"]}}))
    wanted = wanted_metadata({"--metadata": str(path), "--creators": ["Doe, Jane"]}, [], new_deposition=True)
    assert wanted["keywords"] == ["lung"] and wanted["title"] == "Lung atlas"


@pytest.mark.parametrize(("content", "message"), [
    (None, "file not found"), ("{", "not JSON"), ("[1]", "must hold a JSON object"),
    ('{"keywords": "lung"}', "keywords must be a list of strings"),
    ('{"communities": [{"identifier": "Big Lab"}]}', "communities[0].identifier Big Lab"),
])
def test_a_bad_metadata_file(tmp_path: Path, content, message):
    path = tmp_path / ".zenodo.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError, match=re.escape(message)):
        wanted_metadata({"--metadata": str(path)}, [], new_deposition=False)

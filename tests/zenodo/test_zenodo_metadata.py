"""Metadata changes on Zenodo: only what the options change, merged into everything the deposition holds."""

from __future__ import annotations

from uploader.zenodo.metadata import changes, merged, not_kept

CURRENT = {
    "title": "Lung", "description": "<p>A dataset</p>", "upload_type": "dataset", "license": "cc-by-4.0",
    "creators": [{"name": "Doe, Jane", "affiliation": "Atlantis", "orcid": "0000-0002-1825-0097"},
                 {"name": "Roe, Rick"}],
    "keywords": ["lung"], "communities": [{"identifier": "omics"}],
}


def test_the_same_values_change_nothing():
    wanted = {"title": " Lung ", "description": "<p>A dataset</p>", "upload_type": "dataset",
              "creators": [{"name": "Doe, Jane"}, {"name": "Roe, Rick"}]}
    assert changes(CURRENT, wanted) == {}


def test_a_creator_named_again_keeps_what_was_curated():
    wanted = {"creators": [{"name": "Roe, Rick"}, {"name": "Doe, Jane"}, {"name": "Poe, Ed"}]}
    assert changes(CURRENT, wanted) == {"creators": [
        {"name": "Roe, Rick"},
        {"name": "Doe, Jane", "affiliation": "Atlantis", "orcid": "0000-0002-1825-0097"},
        {"name": "Poe, Ed"}]}


def test_merged_keeps_every_other_field():
    full = merged(CURRENT, {"title": "Lung, revised"})
    assert full == CURRENT | {"title": "Lung, revised"}


def test_not_kept_names_a_change_not_applied_and_a_field_dropped():
    sent = merged(CURRENT, {"title": "New"})
    answer = {key: value for key, value in sent.items() if key != "communities"} | {"title": "Lung"}
    assert not_kept(sent, answer, {"title": "New"}) == ["communities", "title"]
    normalised = sent | {"license": "CC-BY-4.0", "description": "<p>A dataset</p>\n"}
    assert not_kept(sent, normalised, {"title": "New"}) == []  # Zenodo may rewrite what it keeps


def test_a_license_shown_by_its_old_name_is_the_same_license():
    assert changes(CURRENT | {"license": "cc-zero"}, {"license": "cc0-1.0"}) == {}
    assert changes(CURRENT | {"license": "mit-license"}, {"license": "cc-by-4.0"}) == {"license": "cc-by-4.0"}
    assert not_kept({"license": "mit"}, {"license": "mit-license"}, {"license": "mit"}) == []


def test_an_orcid_given_for_a_creator_is_a_change_and_keeps_the_rest():
    wanted = {"creators": [{"name": "Doe, Jane"}, {"name": "Roe, Rick", "orcid": "0000-0001-5109-3700"}]}
    assert changes(CURRENT, wanted) == {"creators": [
        {"name": "Doe, Jane", "affiliation": "Atlantis", "orcid": "0000-0002-1825-0097"},
        {"name": "Roe, Rick", "orcid": "0000-0001-5109-3700"}]}


def test_a_related_work_is_added_to_those_the_record_has():
    paper = {"relation": "isSupplementTo", "identifier": "10.1234/paper", "scheme": "doi"}
    viewer = {"relation": "isVariantFormOf", "identifier": "https://viewer.example/x", "scheme": "url"}
    current = CURRENT | {"related_identifiers": [paper]}
    assert changes(current, {"related_identifiers": [viewer]}) == {"related_identifiers": [paper, viewer]}
    assert changes(current, {"related_identifiers": [paper]}) == {}

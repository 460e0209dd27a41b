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

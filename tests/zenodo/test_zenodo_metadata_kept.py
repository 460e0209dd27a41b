"""upload_zenodo never loses metadata a record holds, and never mistakes Zenodo's normal forms for changes.

Each test runs the real command against the mock Zenodo, which stores metadata as Zenodo does (normal forms, the
records API's full metadata and the deposit API's narrower view: see tests/mock_zenodo.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MockZenodo
from tests.zenodo_helpers import METADATA, catalog_names, md5s, only_deposition, upload

pytestmark = pytest.mark.e2e

CURATED: dict[str, Any] = {
    "title": "Human lung demo",
    "description": "A demo dataset",
    "publication_date": "2026-01-15",
    "version": "1.0",
    "resource_type": {"id": "dataset"},
    "creators": [
        {"person_or_org": {"type": "personal", "name": "Doe, Jane", "family_name": "Doe", "given_name": "Jane",
                           "identifiers": [{"scheme": "orcid", "identifier": "0000-0002-1825-0097"}]},
         "affiliations": [{"id": "00jmfr291", "name": "University of Michigan"}, {"name": "Broad Institute"}]},
        {"person_or_org": {"type": "organizational", "name": "Human Cell Atlas"}},
    ],
    "subjects": [{"subject": "lung"}, {"id": "euroscivoc:1234", "subject": "Spatial transcriptomics"}],
    "rights": [{"id": "cc-by-4.0"}, {"id": "mit"}],
    "languages": [{"id": "eng"}, {"id": "deu"}],
    "funding": [{"funder": {"id": "01cwqze88", "name": "National Institutes of Health"}}],
    "additional_titles": [{"title": "Lung atlas, demo", "type": {"id": "alternative-title"}}],
    "additional_descriptions": [{"description": "Made with cartloader.", "type": {"id": "technical-info"}}],
}


def curated_record(zenodo: MockZenodo, env: dict[str, str], token_file: Path, dataset: Path) -> dict[str, Any]:
    assert upload(zenodo, env, token_file, dataset, *METADATA, "--publish").code == 0
    record = only_deposition(zenodo)
    zenodo.control("curate", {"id": record["id"], "metadata": CURATED})
    return record


def full_metadata(zenodo: MockZenodo, record_id: int) -> dict[str, Any]:
    return dict(zenodo.api("GET", f"/records/{record_id}")["metadata"])


# -- 3. metadata is never lost --------------------------------------------------------------------------------


def test_a_metadata_change_that_would_lose_curated_fields_is_refused(zenodo, zenodo_env, token_file, dataset):
    record = curated_record(zenodo, zenodo_env, token_file, dataset)
    seen = len(zenodo.log())

    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(record["id"]), "--title",
                    "Human lung demo, corrected", "--publish")

    assert result.code == 2, result.output
    assert result.stderr.splitlines()[0] == (
        f"error: {zenodo.base_url}/deposit/{record['id']} holds metadata that Zenodo's deposit API cannot carry:"
        " organisations among the creators (they would come back as persons); creators' second and later"
        " affiliations; creators' affiliation ids (ROR); subjects from a vocabulary; 1 license(s) after the first;"
        " languages after the first; funding without an award; additional titles; additional descriptions."
        " Changing title through it would drop that, so nothing was changed: make the change on the record's web"
        " page, or re-run without --title")
    assert full_metadata(zenodo, record["id"]) == CURATED
    assert [d["id"] for d in zenodo.depositions()] == [record["id"]]
    assert only_deposition(zenodo)["state"] == "done"  # no edit opened
    assert [r for r in zenodo.log()[seen:] if r["method"] != "GET"] == []


def test_a_new_version_of_a_curated_record_keeps_all_its_metadata(zenodo, zenodo_env, token_file, dataset):
    record = curated_record(zenodo, zenodo_env, token_file, dataset)
    (dataset / "genes_bin_counts.json").write_text('{"v2": true}')

    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(record["id"]), "--publish")

    assert result.code == 0, result.output
    v2 = max(zenodo.depositions(), key=lambda d: d["id"])
    assert v2["submitted"] is True and v2["id"] != record["id"]
    assert zenodo.files(v2["id"]) == md5s(dataset, catalog_names(dataset))
    kept = full_metadata(zenodo, v2["id"])
    # Zenodo's own rule for a new version: no publication_date (today's) and no version number carried.
    assert {k: v for k, v in kept.items() if k not in ("publication_date",)} == {
        k: v for k, v in CURATED.items() if k not in ("publication_date", "version")}
    assert ("warning: the new version will have no version number: Zenodo does not carry the previous version's"
            " ('1.0') into a new one; set it on the draft's web page before publishing") in result.stderr.splitlines()


# -- 4. Zenodo's normal forms are not changes ---------------------------------------------------------------------


def test_a_draft_made_with_a_creator_written_without_a_space_resumes(zenodo, zenodo_env, token_file, dataset):
    command = ["--title", "Human lung demo", "--creators", "Doe,Jane", "--description", "A demo dataset"]
    zenodo.control("faults", {"every": 3, "kinds": ["413"], "paths": "files"})
    assert upload(zenodo, zenodo_env, token_file, dataset, *command).code == 1
    zenodo.control("faults", {"every": 0})
    draft = only_deposition(zenodo)
    assert draft["metadata"]["creators"] == [{"name": "Doe, Jane"}]  # as Zenodo stores it

    result = upload(zenodo, zenodo_env, token_file, dataset, *command, "--publish")

    assert result.code == 0, result.output
    record = only_deposition(zenodo)
    assert record["submitted"] is True and record["metadata"]["creators"] == [{"name": "Doe, Jane"}]
    assert zenodo.files(record["id"]) == md5s(dataset, catalog_names(dataset))


def test_an_identical_rerun_with_escaped_text_opens_no_edit(zenodo, zenodo_env, token_file, dataset):
    command = ["--title", "“Lung” atlas\r\nof cells", "--creators", "Doe, Jane", "--description",
               "Genes & cells <script>x</script> in <b>lung</b>"]
    assert upload(zenodo, zenodo_env, token_file, dataset, *command, "--publish").code == 0
    record = only_deposition(zenodo)
    assert record["metadata"]["title"] == '"Lung" atlas\nof cells'
    assert record["metadata"]["description"] == "Genes &amp; cells x in <b>lung</b>"
    seen = len(zenodo.log())

    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(record["id"]), *command,
                    "--publish")

    assert result.code == 0, result.output
    assert (f"the published record {zenodo.base_url}/deposit/{record['id']} already holds these files and this"
            " metadata; nothing was changed (no new version, no edit)") in result.stderr.splitlines()
    sent = [r for r in zenodo.log()[seen:] if r["method"] != "GET"]
    assert sent == [] and only_deposition(zenodo)["state"] == "done"


def test_a_rerun_does_not_put_defaults_over_what_the_draft_holds(zenodo, zenodo_env, token_file, dataset):
    """cartloader's "No description provided." and upload type dataset are for a new deposition only."""
    command = ["--title", "Human lung demo", "--creators", "Doe, Jane"]
    zenodo.control("faults", {"every": 3, "kinds": ["413"], "paths": "files"})
    assert upload(zenodo, zenodo_env, token_file, dataset, *command).code == 1
    zenodo.control("faults", {"every": 0})
    draft = only_deposition(zenodo)
    assert draft["metadata"]["description"] == "No description provided."
    curated = {**draft["metadata"], "description": "Written on the web page", "upload_type": "software"}
    zenodo.api("PUT", f"/deposit/depositions/{draft['id']}", json={"metadata": curated})

    result = upload(zenodo, zenodo_env, token_file, dataset, *command)

    assert result.code == 0, result.output
    kept = only_deposition(zenodo)["metadata"]
    assert kept["description"] == "Written on the web page" and kept["upload_type"] == "software"
    assert zenodo.files(draft["id"]) == md5s(dataset, catalog_names(dataset))

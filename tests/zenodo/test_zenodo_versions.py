"""upload_zenodo and Zenodo's versions: which draft receives the files, and never a second one nobody asked for.

Each test runs the real command against the mock Zenodo and checks what the depositions hold afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MockZenodo
from tests.zenodo_helpers import METADATA, catalog_names, md5s, only_deposition, upload, uploader_requests

pytestmark = pytest.mark.e2e

CHANGED = "genes_bin_counts.json"


def published_record(zenodo: MockZenodo, env: dict[str, str], token_file: Path, dataset: Path) -> dict[str, Any]:
    result = upload(zenodo, env, token_file, dataset, *METADATA, "--publish")
    assert result.code == 0, result.output
    return only_deposition(zenodo)


def newest(zenodo: MockZenodo) -> dict[str, Any]:
    return max(zenodo.depositions(), key=lambda d: d["id"])


# -- 1. a new version starts from the LATEST version ------------------------------------------------------


def two_versions(zenodo, env, token_file, dataset) -> tuple[dict[str, Any], bytes]:
    """v1 as the dataset is, then v2 with CHANGED edited; the local file is put back as it was in v1."""
    v1 = published_record(zenodo, env, token_file, dataset)
    original = (dataset / CHANGED).read_bytes()
    (dataset / CHANGED).write_text('{"v2": true}')
    result = upload(zenodo, env, token_file, dataset, "--zenodo-id", str(v1["id"]), "--publish")
    assert result.code == 0, result.output
    assert len(zenodo.depositions()) == 2
    (dataset / CHANGED).write_bytes(original)
    return v1, original


def test_a_new_version_from_an_older_id_holds_exactly_the_local_files(zenodo, zenodo_env, token_file, dataset):
    v1, _ = two_versions(zenodo, zenodo_env, token_file, dataset)
    (dataset / "t18-f24-info.tsv").write_text("info v3\n")

    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(v1["id"]), "--publish")

    assert result.code == 0, result.output
    v3 = newest(zenodo)
    assert v3["submitted"] is True and len(zenodo.depositions()) == 3
    # CHANGED equals v1's copy but not the latest version's (v2): it must be sent again, not kept.
    assert zenodo.files(v3["id"]) == md5s(dataset, catalog_names(dataset))


def test_a_dry_run_on_an_older_id_predicts_from_the_latest_version(zenodo, zenodo_env, token_file, dataset):
    v1, _ = two_versions(zenodo, zenodo_env, token_file, dataset)

    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(v1["id"]), "--dry-run")

    assert result.code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if f" {CHANGED}  (" in line)
    assert line.startswith("replace"), result.stdout
    assert "dry run: 1 file(s) to upload" in result.stdout
    assert len(zenodo.depositions()) == 2  # nothing opened


# -- 2. a retried POST never makes a second draft ------------------------------------------------------------


@pytest.mark.parametrize("fault", ["lost", "after-504"])
def test_a_create_whose_answer_was_lost_is_found_not_made_twice(zenodo, zenodo_env, token_file, dataset, fault):
    zenodo.control("options", {"search_lag": 0.5})
    zenodo.control("faults", {"every": 1, "kinds": [fault], "paths": "create", "limit": 1})

    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA)

    assert result.code == 0, result.output
    deposition = only_deposition(zenodo)
    assert zenodo.files(deposition["id"]) == md5s(dataset, catalog_names(dataset))
    assert deposition["metadata"]["title"] == "Human lung demo"
    assert not any("cartload" in json.dumps(value) for value in deposition["metadata"].values())  # no marker


@pytest.mark.parametrize("fault", ["lost", "after-504"])
def test_a_retried_newversion_uses_the_draft_the_first_attempt_made(zenodo, zenodo_env, token_file, dataset, fault):
    record = published_record(zenodo, zenodo_env, token_file, dataset)
    zenodo.control("options", {"search_lag": 0.5})
    zenodo.control("faults", {"every": 1, "kinds": [fault], "paths": "newversion", "limit": 1})
    (dataset / CHANGED).write_text('{"v2": true}')

    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(record["id"]))

    assert result.code == 0, result.output
    drafts = [d for d in zenodo.depositions() if not d["submitted"]]
    assert len(drafts) == 1 and len(zenodo.depositions()) == 2
    assert zenodo.files(drafts[0]["id"]) == md5s(dataset, catalog_names(dataset))


def test_a_lost_create_with_several_same_title_drafts_stops_naming_them(zenodo, zenodo_env, token_file, dataset):
    zenodo.control("options", {"search_lag": 4.0})  # the run's first look does not see them yet
    others = [zenodo.api("POST", "/deposit/depositions", json={"metadata": {"title": "Human lung demo"}})["id"]
              for _ in range(2)]
    zenodo.control("faults", {"every": 1, "kinds": ["lost"], "paths": "create", "limit": 1})
    env = zenodo_env | {"CARTLOAD_UPLOADER_ZENODO_SEARCH_WAIT": "6"}  # longer than the lag: every one is seen

    result = upload(zenodo, env, token_file, dataset, *METADATA)

    assert result.code == 4, result.output
    assert all(str(other) in result.stderr for other in others)
    made = [d["id"] for d in zenodo.depositions() if d["id"] not in others]
    assert len(made) == 1 and str(made[0]) in result.stderr
    assert zenodo.files(made[0]) == {}  # nothing was uploaded into a guess


# -- 3. resuming a run that created a deposition ----------------------------------------------------------


def failed_first_run(zenodo, env, token_file, dataset):
    zenodo.control("faults", {"every": 1, "kinds": ["413"], "paths": "files"})  # every upload refused for good
    result = upload(zenodo, env, token_file, dataset, *METADATA)
    zenodo.control("faults", {"every": 0})
    assert result.code == 1, result.output
    return result, only_deposition(zenodo)


def test_the_resume_advice_names_the_deposition_and_the_same_command_resumes_it(zenodo, zenodo_env, token_file,
                                                                                  dataset):
    first, deposition = failed_first_run(zenodo, zenodo_env, token_file, dataset)
    assert f"--zenodo-id {deposition['id']}" in first.stderr.split("resume with:")[-1]
    created_line = next(line for line in first.stderr.splitlines() if str(deposition["id"]) in line)
    assert first.stderr.index(created_line) < first.stderr.index("failed:")  # told as soon as it existed

    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA)  # the very same command

    assert result.code == 0, result.output
    assert only_deposition(zenodo)["id"] == deposition["id"]
    assert zenodo.files(deposition["id"]) == md5s(dataset, catalog_names(dataset))


def test_without_the_resume_record_the_draft_is_found_by_its_title(zenodo, zenodo_env, token_file, dataset, tmp_path):
    _, deposition = failed_first_run(zenodo, zenodo_env, token_file, dataset)
    elsewhere = zenodo_env | {"CARTLOAD_UPLOADER_CACHE_DIR": str(tmp_path / "another-cache")}

    result = upload(zenodo, elsewhere, token_file, dataset, *METADATA)

    assert result.code == 0, result.output
    assert only_deposition(zenodo)["id"] == deposition["id"]
    assert zenodo.files(deposition["id"]) == md5s(dataset, catalog_names(dataset))
    assert str(deposition["id"]) in result.stderr


def test_several_unpublished_drafts_with_the_same_title_are_refused(zenodo, zenodo_env, token_file, dataset):
    others = [zenodo.api("POST", "/deposit/depositions", json={"metadata": {"title": "Human lung demo"}})["id"]
              for _ in range(2)]

    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA)

    assert result.code == 2, result.output
    assert all(str(other) in result.stderr for other in others) and "--zenodo-id" in result.stderr
    assert sorted(d["id"] for d in zenodo.depositions()) == sorted(others)
    assert all(zenodo.files(other) == {} for other in others)


# -- 4. an open new-version draft the search does not show yet --------------------------------------------


@pytest.mark.parametrize("latest_draft_link", ["self", "next"])
def test_an_open_draft_the_search_does_not_show_yet_is_found(zenodo, zenodo_env, token_file, dataset,
                                                             latest_draft_link):
    record = published_record(zenodo, zenodo_env, token_file, dataset)
    zenodo.control("options", {"search_lag": 3.0, "latest_draft_link": latest_draft_link, "search_rate": [3, 1]})
    draft = zenodo.api("POST", f"/deposit/depositions/{record['id']}/actions/newversion")  # holds v1's files
    (dataset / CHANGED).write_text('{"v2": true}')
    env = zenodo_env | {"CARTLOAD_UPLOADER_ZENODO_SEARCH_RATE": "3/1"}

    result = upload(zenodo, env, token_file, dataset, "--zenodo-id", str(record["id"]))

    assert result.code == 0, result.output
    assert sorted(d["id"] for d in zenodo.depositions()) == sorted([record["id"], draft["id"]])
    assert zenodo.files(draft["id"]) == md5s(dataset, catalog_names(dataset))
    searches = [e for e in uploader_requests(zenodo) if e["method"] == "GET" and "/deposit/depositions?" in e["url"]]
    assert all("allversions=true" in e["url"] for e in searches if "conceptrecid" in e["url"])
    assert not any(e["status"] == 429 for e in uploader_requests(zenodo))  # searches paced under their limit


# -- 8. the same metadata changes nothing; metadata alone is an edit; files make a new version --------------


def test_the_same_metadata_on_a_published_record_changes_nothing(zenodo, zenodo_env, token_file, dataset):
    record = published_record(zenodo, zenodo_env, token_file, dataset)
    before = len(uploader_requests(zenodo))

    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--zenodo-id", str(record["id"]),
                    "--publish")

    assert result.code == 0, result.output
    assert zenodo.depositions() == [record]
    writes = [e for e in uploader_requests(zenodo)[before:] if e["method"] != "GET"]
    assert writes == []
    assert "nothing was changed" in result.stderr


def test_a_metadata_only_change_is_an_edit_under_the_same_doi(zenodo, zenodo_env, token_file, dataset):
    record = published_record(zenodo, zenodo_env, token_file, dataset)

    result = upload(zenodo, zenodo_env, token_file, dataset, "--title", "Human lung demo, revised",
                    "--zenodo-id", str(record["id"]), "--publish")

    assert result.code == 0, result.output
    edited = only_deposition(zenodo)
    assert edited["id"] == record["id"] and edited["doi"] == record["doi"] and edited["state"] == "done"
    assert edited["metadata"]["title"] == "Human lung demo, revised"
    assert edited["metadata"]["creators"] == record["metadata"]["creators"]
    assert zenodo.files(record["id"]) == md5s(dataset, catalog_names(dataset))
    assert "edit" in result.stderr and f"same DOI {record['doi']}" in result.stderr


def test_a_file_change_is_a_new_version_under_a_new_doi(zenodo, zenodo_env, token_file, dataset):
    record = published_record(zenodo, zenodo_env, token_file, dataset)
    (dataset / CHANGED).write_text('{"v2": true}')

    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(record["id"]), "--publish")

    assert result.code == 0, result.output
    version = newest(zenodo)
    assert version["id"] != record["id"] and version["doi"] != record["doi"]
    assert "new version" in result.stderr and version["doi"] in result.stderr


# -- 9. curated metadata survives ------------------------------------------------------------------------------


CURATED = {
    "upload_type": "dataset",
    "title": "Human lung demo",
    "description": "A demo dataset",
    "creators": [{"name": "Doe, Jane", "affiliation": "Atlantis", "orcid": "0000-0002-1825-0097"},
                 {"name": "Roe, Rick", "affiliation": "Lemuria"}],
    "communities": [{"identifier": "spatial-omics"}],
    "grants": [{"id": "10.13039/501100000780::101001234"}],
    "related_identifiers": [{"identifier": "10.1234/paper", "relation": "isSupplementTo", "scheme": "doi"}],
    "keywords": ["lung", "FFPE"],
    "subjects": [{"term": "Lung", "identifier": "http://id.nlm.nih.gov/mesh/D008168", "scheme": "url"}],
    "notes": "Curated on the web page.",
    "license": "cc-by-sa-4.0",
    "access_right": "open",
    "dates": [{"type": "Collected", "start": "2024-01-01", "end": "2024-02-01"}],
    "language": "eng",
    "version": "v1.2",
    "publication_date": "2025-03-04",
}


def test_curated_metadata_survives_a_run_that_changes_only_the_title(zenodo, zenodo_env, token_file, dataset):
    record = published_record(zenodo, zenodo_env, token_file, dataset)
    zenodo.control("communities", {"slug": "spatial-omics", "curators": [zenodo.token]})
    zenodo.api("POST", f"/deposit/depositions/{record['id']}/actions/edit")
    zenodo.api("PUT", f"/deposit/depositions/{record['id']}", json={"metadata": CURATED})
    zenodo.api("POST", f"/deposit/depositions/{record['id']}/actions/publish")

    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA[2:], "--title", "Human lung demo (curated)",
                    "--zenodo-id", str(record["id"]), "--publish")

    assert result.code == 0, result.output
    after = only_deposition(zenodo)
    assert after["doi"] == record["doi"]
    assert after["metadata"] == CURATED | {"title": "Human lung demo (curated)",
                                           "prereserve_doi": {"doi": after["doi"], "recid": after["id"]}}

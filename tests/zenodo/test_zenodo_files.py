"""upload_zenodo and the files of a deposition: exact names, deletions checked, empty files, the record's quota."""

from __future__ import annotations

import hashlib
import os

import pytest

from tests.zenodo_helpers import (
    METADATA,
    assert_nothing_created,
    catalog_names,
    md5s,
    only_deposition,
    upload,
    uploader_requests,
)

pytestmark = pytest.mark.e2e

AWKWARD_NAMES = ["h#1.tsv", "q?x=1.tsv", "pct%41.tsv", "sp ace+plus.tsv", "ünï©ødé.tsv", "semi;colon&amp.tsv"]


# -- 5. deletions go by file id, and are checked by listing ----------------------------------------------------


def draft_with_extra_files(zenodo, env, token_file, dataset, names):
    assert upload(zenodo, env, token_file, dataset, *METADATA).code == 0
    deposition = only_deposition(zenodo)
    for name in names:  # put there by hand, e.g. on the web page
        zenodo.put_file(deposition, name, b"old\n")
    assert set(names) <= set(zenodo.files(deposition["id"]))
    return deposition


def test_restart_deletes_files_whose_names_need_quoting(zenodo, zenodo_env, token_file, dataset):
    deposition = draft_with_extra_files(zenodo, zenodo_env, token_file, dataset, ["a#b.tsv", "c?d.tsv", "e%41.tsv"])

    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(deposition["id"]), "--restart")

    assert result.code == 0, result.output
    assert zenodo.files(deposition["id"]) == md5s(dataset, catalog_names(dataset))


@pytest.mark.parametrize("fault", ["lost", "after-504", "500"])
def test_a_delete_whose_answer_is_wrong_or_lost_is_checked_by_listing(zenodo, zenodo_env, token_file, dataset, fault):
    deposition = draft_with_extra_files(zenodo, zenodo_env, token_file, dataset, ["old-1.tsv", "old-2.tsv"])
    zenodo.control("faults", {"every": 2, "kinds": [fault], "paths": "file-delete"})

    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(deposition["id"]), "--restart")

    assert result.code == 0, result.output
    assert zenodo.files(deposition["id"]) == md5s(dataset, catalog_names(dataset))
    deletes = [e for e in uploader_requests(zenodo) if e["method"] == "DELETE"]
    assert deletes and all("/deposit/depositions/" in e["path"] and "/files/" in e["path"] for e in deletes)


# -- 6. names that need quoting are stored exactly as they are ---------------------------------------------------


def test_names_that_need_quoting_are_stored_exactly(zenodo, zenodo_env, token_file, tmp_path):
    directory = tmp_path / "awkward"
    directory.mkdir()
    for name in AWKWARD_NAMES:
        (directory / name).write_text(f"content of {name}\n")

    result = upload(zenodo, zenodo_env, token_file, directory, *METADATA, "--upload-method", "files",
                    "--files", *AWKWARD_NAMES)

    assert result.code == 0, result.output
    assert zenodo.files(only_deposition(zenodo)["id"]) == md5s(directory, AWKWARD_NAMES)


# -- 7. empty files ------------------------------------------------------------------------------------------------


def test_an_empty_file_the_catalog_names_is_refused_before_anything_is_created(zenodo, zenodo_env, token_file,
                                                                               dataset):
    os.truncate(dataset / "t18-f24-info.tsv", 0)
    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA)
    assert_nothing_created(result, zenodo, 2, "t18-f24-info.tsv", "empty")


def test_an_empty_file_named_by_files_is_refused_before_anything_is_created(zenodo, zenodo_env, token_file, dataset):
    (dataset / "nothing.tsv").write_bytes(b"")
    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--upload-method", "files",
                    "--files", "genes_all.pmtiles", "nothing.tsv")
    assert_nothing_created(result, zenodo, 2, "nothing.tsv", "empty")


def test_upload_method_all_leaves_empty_files_out_with_one_note(zenodo, zenodo_env, token_file, dataset):
    for name in ("sample.done", "other.done"):
        (dataset / name).write_bytes(b"")

    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--upload-method", "all")

    assert result.code == 0, result.output
    expected = {p.name for p in dataset.iterdir() if p.is_file() and p.stat().st_size > 0}
    assert zenodo.files(only_deposition(zenodo)["id"]) == md5s(dataset, expected)
    notes = [line for line in result.stderr.splitlines() if "empty" in line]
    assert len(notes) == 1 and "2 empty file(s)" in notes[0] and "sample.done" in notes[0]


# -- 13. the record's quota --------------------------------------------------------------------------------------


def sparse_files(directory, sizes):
    directory.mkdir()
    for name, size in sizes.items():
        with open(directory / name, "wb") as handle:
            handle.truncate(size)  # sparse: nothing is read before the checks


def test_max_record_bytes_lets_a_raised_quota_pass_the_record_check(zenodo, zenodo_env, token_file, tmp_path):
    big = tmp_path / "big"
    sparse_files(big, {"part-1.pmtiles": 30 * 10**9, "part-2.pmtiles": 30 * 10**9})

    refused = upload(zenodo, zenodo_env, token_file, big, *METADATA, "--upload-method", "all", "--dry-run")
    assert_nothing_created(refused, zenodo, 2, "60,000,000,000 bytes", "--max-record-bytes")

    result = upload(zenodo, zenodo_env, token_file, big, *METADATA, "--upload-method", "all", "--dry-run",
                    "--max-record-bytes", "200000000000")
    assert result.code == 0, result.output
    assert "dry run: 2 file(s) to upload" in result.stdout


def test_the_per_file_limit_stays_with_a_raised_quota(zenodo, zenodo_env, token_file, tmp_path):
    big = tmp_path / "big"
    sparse_files(big, {"huge.pmtiles": 50 * 10**9 + 1})
    result = upload(zenodo, zenodo_env, token_file, big, *METADATA, "--upload-method", "all",
                    "--max-record-bytes", "200000000000")
    assert_nothing_created(result, zenodo, 2, "at most 50,000,000,000 per file")


@pytest.mark.parametrize("value", ["0", "-5", "lots", "1.5e9"])
def test_max_record_bytes_must_be_a_positive_number_of_bytes(zenodo, zenodo_env, token_file, dataset, value):
    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--max-record-bytes", value)
    assert_nothing_created(result, zenodo, 2, f"--max-record-bytes {value}: must be a whole number")


def test_a_full_quota_is_reported_as_such(zenodo, zenodo_env, token_file, dataset):
    sizes = {name: (dataset / name).stat().st_size for name in catalog_names(dataset)}
    zenodo.control("limits", {"quota_bytes": sum(sizes.values()) // 2})

    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA)

    assert result.code == 1, result.output
    refused = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert refused and all("quota" in line for line in refused if "catalog.yaml" not in line)
    assert "Bucket quota exceeded." in result.stderr and "--max-record-bytes" in result.stderr
    stored = zenodo.files(only_deposition(zenodo)["id"])
    assert "catalog.yaml" not in stored
    assert all(hashlib.md5((dataset / name).read_bytes()).hexdigest() == md5 for name, md5 in stored.items())

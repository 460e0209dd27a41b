"""upload_zenodo end to end: entrypoint.py as a subprocess against the mock Zenodo, then the mock's state is checked."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.conftest import HELPER_AGENT, MockZenodo, run_cli
from tests.zenodo_helpers import METADATA, assert_nothing_created, catalog_names, md5s, only_deposition, upload

pytestmark = pytest.mark.e2e


def test_new_deposition_with_metadata_and_every_catalog_file(zenodo, zenodo_env, token_file, dataset):
    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA)

    assert result.code == 0, result.output
    deposition = only_deposition(zenodo)
    assert deposition["submitted"] is False
    assert deposition["metadata"]["title"] == "Human lung demo"
    assert deposition["metadata"]["creators"] == [{"name": "Doe, Jane"}, {"name": "Roe, Rick"}]
    assert deposition["metadata"]["upload_type"] == "dataset"
    names = catalog_names(dataset)
    assert len(names) == 21
    assert zenodo.files(deposition["id"]) == md5s(dataset, names)
    assert f"/deposit/{deposition['id']}" in result.stderr  # the draft's page, to review and publish


def test_rerun_into_the_draft_uploads_nothing_and_a_change_is_replaced(zenodo, zenodo_env, token_file, dataset):
    assert upload(zenodo, zenodo_env, token_file, dataset, *METADATA).code == 0
    dep_id = str(only_deposition(zenodo)["id"])

    report = dataset.parent / "r.json"
    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", dep_id, "--report", str(report))
    assert result.code == 0, result.output
    assert {e["status"] for e in json.loads(report.read_text())["files"]} == {"skipped"}

    (dataset / "t18-f24-rgb.tsv").write_text("changed\n")
    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-deposition-id", dep_id, "--report", str(report))
    assert result.code == 0, result.output
    uploaded = {e["name"] for e in json.loads(report.read_text())["files"] if e["status"] == "uploaded"}
    assert uploaded == {"t18-f24-rgb.tsv"}
    assert zenodo.files(int(dep_id))["t18-f24-rgb.tsv"] == hashlib.md5(b"changed\n").hexdigest()


def test_publish_then_new_version_inherits_unchanged_files(zenodo, zenodo_env, token_file, dataset):
    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--publish")
    assert result.code == 0, result.output
    record = only_deposition(zenodo)
    assert record["submitted"] is True
    assert f"DOI: {record['doi']}" in result.stderr
    published_files = zenodo.files(record["id"])

    (dataset / "genes_bin_counts.json").write_text('{"bin1": 7}')
    report = dataset.parent / "r.json"
    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(record["id"]), "--report",
                    str(report))

    assert result.code == 0, result.output
    drafts = [d for d in zenodo.depositions() if not d["submitted"]]
    assert len(drafts) == 1 and drafts[0]["conceptrecid"] == record["conceptrecid"]
    uploaded = {e["name"] for e in json.loads(report.read_text())["files"] if e["status"] == "uploaded"}
    assert uploaded == {"genes_bin_counts.json"}
    assert zenodo.files(drafts[0]["id"]) == md5s(dataset, catalog_names(dataset))
    assert zenodo.files(record["id"]) == published_files  # the published version is untouched

    # Again on the published id: the open new-version draft is reused, not a second one.
    (dataset / "t18-f24-info.tsv").write_text("info v3\n")
    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(record["id"]), "--publish")
    assert result.code == 0, result.output
    versions = zenodo.depositions()
    assert len(versions) == 2 and all(v["submitted"] for v in versions)
    assert zenodo.files(drafts[0]["id"])["t18-f24-info.tsv"] == hashlib.md5(b"info v3\n").hexdigest()


def test_unchanged_published_record_gets_no_empty_new_version(zenodo, zenodo_env, token_file, dataset):
    assert upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--publish").code == 0
    record = only_deposition(zenodo)
    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(record["id"]))
    assert result.code == 0, result.output
    assert len(zenodo.depositions()) == 1
    assert "already holds these files" in result.stderr


def test_restart_empties_the_draft_first(zenodo, zenodo_env, token_file, dataset, tmp_path):
    assert upload(zenodo, zenodo_env, token_file, dataset, *METADATA).code == 0
    dep_id = only_deposition(zenodo)["id"]
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "old-file.tsv").write_text("old\n")
    assert upload(zenodo, zenodo_env, token_file, extra, "--zenodo-id", str(dep_id), "--upload-method", "all").code == 0
    assert "old-file.tsv" in zenodo.files(dep_id)

    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(dep_id), "--restart")

    assert result.code == 0, result.output
    assert set(zenodo.files(dep_id)) == catalog_names(dataset)
    assert "22 deleted" in result.stderr or "deleted" in result.stderr


ZENODO_MARKERS = {"cartload.zenodo.done", "histology.pmtiles.zenodo.done"} | {
    f"{name}.zenodo.done" for name in ("t18-f24-umap.tsv.gz", "t18-f24.umap.png", "t18-f24.umap.single.prob.png",
                                       "t18-f24-umap.pmtiles", "t18-f24-alias.tsv")}


def markers(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir() if path.name.endswith(".zenodo.done")}


def test_markers_after_a_catalog_upload_so_the_pipeline_skips_it_next_time(zenodo, zenodo_env, token_file, dataset):
    assert markers(dataset) == set()
    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA)

    assert result.code == 0, result.output
    assert markers(dataset) == ZENODO_MARKERS
    # run_xenium/run_visiumhd skip their Zenodo step when these exist (cartloader's pipeline_helper).
    assert (dataset / "cartload.zenodo.done").exists() and (dataset / "histology.pmtiles.zenodo.done").exists()
    assert len(zenodo.files(only_deposition(zenodo)["id"])) == 21  # not uploaded themselves


def test_no_markers_for_other_upload_methods_or_with_no_markers(zenodo, zenodo_env, token_file, dataset):
    assert upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--upload-method", "files",
                  "--files", "genes_all.pmtiles").code == 0
    assert markers(dataset) == set()  # cartloader marks only its catalog method
    dep_id = str(only_deposition(zenodo)["id"])
    assert upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", dep_id, "--no-markers").code == 0
    assert markers(dataset) == set()


def test_publish_refused_when_metadata_is_missing(zenodo, zenodo_env, token_file, dataset):
    draft = zenodo.api("POST", "/deposit/depositions", json={"metadata": {
        "title": "Lung", "creators": [{"name": "Doe, J"}], "upload_type": "dataset"}})  # no description
    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(draft["id"]), "--publish")

    assert result.code == 1, result.output
    assert "metadata.description" in result.stderr and "--description" in result.stderr
    deposition = only_deposition(zenodo)
    assert deposition["submitted"] is False
    assert len(zenodo.files(deposition["id"])) == 21  # the files are there, in the draft
    assert markers(dataset) == set()  # cartloader would mark it done; the pipeline would never publish it


def test_a_new_deposition_without_description_gets_cartloaders_text_and_can_be_published(
        zenodo, zenodo_env, token_file, dataset):
    result = upload(zenodo, zenodo_env, token_file, dataset, "--title", "Lung", "--creators", "Doe, J", "--publish")

    assert result.code == 0, result.output
    record = only_deposition(zenodo)
    assert record["submitted"] is True
    assert record["metadata"]["description"] == "No description provided."
    summary = result.stderr.splitlines()
    assert any(line.startswith('note: no --description: the new deposition\'s description is cartloader\'s'
                               ' "No description provided."') for line in summary), result.stderr


def test_upload_method_all_takes_the_directory_files_but_no_subdirectories(zenodo, zenodo_env, token_file, dataset):
    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--upload-method", "all")
    assert result.code == 0, result.output
    expected = {p.name for p in dataset.iterdir() if p.is_file()}
    assert set(zenodo.files(only_deposition(zenodo)["id"])) == expected
    assert "cartload.mk" in expected and "t18-f24.hex.tsv" not in expected


def test_upload_method_files(zenodo, zenodo_env, token_file, dataset):
    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--upload-method", "files",
                    "--files", "genes_all.pmtiles", "t18-f24.umap.png")
    assert result.code == 0, result.output
    assert set(zenodo.files(only_deposition(zenodo)["id"])) == {"genes_all.pmtiles", "t18-f24.umap.png"}


def test_dry_run_creates_nothing(zenodo, zenodo_env, token_file, dataset):
    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--dry-run")
    assert result.code == 0, result.output
    assert zenodo.depositions() == []
    assert "dry run: 21 file(s) to upload" in result.stdout


def test_faults_at_a_steady_rate_still_end_with_every_file_verified(zenodo, zenodo_env, token_file, dataset):
    zenodo.control("faults", {"every": 3, "kinds": ["429", "503", "drop"], "paths": "files"})

    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--n-jobs", "3")

    assert result.code == 0, result.output
    assert zenodo.files(only_deposition(zenodo)["id"]) == md5s(dataset, catalog_names(dataset))
    log = zenodo.log()
    assert sum(1 for entry in log if entry["method"] == "PUT") > 21  # retries happened


def test_faults_on_metadata_calls_are_retried(zenodo, zenodo_env, token_file, dataset):
    zenodo.control("faults", {"every": 3, "kinds": ["503", "429"], "paths": "all"})
    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--publish")
    zenodo.control("faults", {"every": 0})
    assert result.code == 0, result.output
    assert only_deposition(zenodo)["submitted"] is True


def test_the_token_never_appears_in_output_report_or_urls(zenodo, zenodo_env, token_file, dataset):
    report = dataset.parent / "report.json"
    outputs = [upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--report", str(report)).output,
               upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", "424242").output]  # an error path
    env_token = zenodo_env | {"ZENODO_TOKEN": zenodo.token}
    outputs.append(run_cli("upload_zenodo", "--in-dir", dataset, "--zenodo-url", zenodo.api_url, *METADATA,
                           env=env_token).output)
    written = "".join(outputs) + report.read_text()
    assert zenodo.token not in written
    log = zenodo.log()
    assert not any(entry["token_in_url"] or zenodo.token in entry["url"] for entry in log)
    uploader_calls = [entry for entry in log if entry["user_agent"] != HELPER_AGENT]
    assert uploader_calls and all(entry["user_agent"].startswith("cartload-uploader/") for entry in uploader_calls)


# -- bad input: nothing uploaded, nothing created -------------------------------------------------------


def test_no_token(zenodo, zenodo_env, dataset):
    result = run_cli("upload_zenodo", "--in-dir", dataset, "--zenodo-url", zenodo.api_url, *METADATA, env=zenodo_env)
    assert_nothing_created(result, zenodo, 2, "no Zenodo token", "--zenodo-token")


def test_empty_or_missing_token_file(zenodo, zenodo_env, dataset, tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n  \n")
    assert_nothing_created(upload(zenodo, zenodo_env, empty, dataset, *METADATA), zenodo, 2, "is empty")
    assert_nothing_created(upload(zenodo, zenodo_env, tmp_path / "absent", dataset, *METADATA), zenodo, 2,
                           "file not found")


def test_wrong_token(zenodo, zenodo_env, dataset, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token")
    report = tmp_path / "report.json"
    result = upload(zenodo, zenodo_env, wrong, dataset, *METADATA, "--report", str(report))
    assert_nothing_created(result, zenodo, 3, "refused access", "deposit:write")
    assert "not-the-token" not in result.output
    document = json.loads(report.read_text())
    assert document["ok"] is False and document["exit_status"] == 3 and "refused access" in document["error"]
    assert "not-the-token" not in report.read_text()


def test_token_file_from_a_windows_editor_is_read_right(zenodo, zenodo_env, dataset, tmp_path):
    saved = tmp_path / "token-notepad.txt"
    saved.write_bytes(f"\ufeff {zenodo.token} \r\n".encode())
    saved.chmod(0o600)
    result = upload(zenodo, zenodo_env, saved, dataset, *METADATA)
    assert result.code == 0, result.output
    assert len(zenodo.files(only_deposition(zenodo)["id"])) == 21


def test_token_file_with_two_lines_is_refused(zenodo, zenodo_env, dataset, tmp_path):
    two = tmp_path / "two-tokens.txt"
    two.write_text(f"{zenodo.token}\nsomething-else\n")
    result = upload(zenodo, zenodo_env, two, dataset, *METADATA)
    assert_nothing_created(result, zenodo, 2, "holds 2 non-empty lines", "put only the token in it")
    assert "something-else" not in result.output


def test_unknown_deposition_id(zenodo, zenodo_env, token_file, dataset):
    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", "999999999")
    assert_nothing_created(result, zenodo, 2, "404", "--sandbox")


def test_someone_elses_deposition(zenodo, zenodo_env, token_file, dataset, zenodo_server):
    other = MockZenodo(zenodo_server)
    theirs = other.api("POST", "/deposit/depositions", json={})
    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(theirs["id"]))
    assert_nothing_created(result, zenodo, 3, "refused access")
    assert other.files(theirs["id"]) == {}


def test_names_with_folders_are_refused(zenodo, zenodo_env, token_file, dataset):
    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--upload-method", "files",
                    "--files", "tmp/t18-f24.hex.tsv")
    assert_nothing_created(result, zenodo, 2, "no folders")


def test_more_than_100_files_is_refused_up_front(zenodo, zenodo_env, token_file, tmp_path):
    many = tmp_path / "many"
    many.mkdir()
    for index in range(101):
        (many / f"table-{index:03d}.tsv").write_text(f"{index}\n")
    result = upload(zenodo, zenodo_env, token_file, many, *METADATA, "--upload-method", "all")
    assert_nothing_created(result, zenodo, 2, "101 files", "allows 100")


def test_more_than_50_gb_is_refused_up_front(zenodo, zenodo_env, token_file, tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    with open(big / "huge.pmtiles", "wb") as handle:
        handle.truncate(50 * 10**9 + 1)  # sparse: nothing is read before the limit check
    result = upload(zenodo, zenodo_env, token_file, big, *METADATA, "--upload-method", "all")
    assert_nothing_created(result, zenodo, 2, "at most 50,000,000,000")


def test_existing_files_count_towards_the_limit(zenodo, zenodo_env, token_file, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for directory, count in ((first, 60), (second, 50)):
        directory.mkdir()
        for index in range(count):
            (directory / f"{directory.name}-{index}.tsv").write_text(f"{index}\n")
    assert upload(zenodo, zenodo_env, token_file, first, *METADATA, "--upload-method", "all").code == 0
    dep_id = only_deposition(zenodo)["id"]
    # --upload-method files adds to what is there (all and catalog would remove the first directory's files).
    names = [name for path in sorted(second.iterdir()) for name in ("--files", path.name)]
    result = upload(zenodo, zenodo_env, token_file, second, "--zenodo-id", str(dep_id), "--upload-method", "files",
                    *names)
    assert result.code == 2 and "110 files (60 already there)" in result.stderr
    assert len(zenodo.files(dep_id)) == 60


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["--title", "Lung"], "needs --title and --creators"),
        (["--zenodo-id", "1", "--zenodo-deposition-id", "2"], "different depositions"),
        ([*METADATA, "--upload-type", "spreadsheet"], "--upload-type spreadsheet"),
        ([*METADATA, "--upload-method", "files"], "--files"),
        ([*METADATA, "--sandbox"], "exclude each other"),
        ([*METADATA, "--zenodo-id", "abc"], "--zenodo-id"),
    ],
)
def test_bad_options(zenodo, zenodo_env, token_file, dataset, args, phrase):
    result = upload(zenodo, zenodo_env, token_file, dataset, *args)
    assert_nothing_created(result, zenodo, 2, phrase)


def test_missing_catalog_file_creates_nothing(zenodo, zenodo_env, token_file, dataset):
    os.unlink(dataset / "genes_bin1.pmtiles")
    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA)
    assert_nothing_created(result, zenodo, 2, "genes_bin1.pmtiles")

"""upload_zenodo: which deposition is this dataset's, and a record that ends with exactly the dataset.

Each test runs the real command against the mock Zenodo and checks the depositions' files and fields afterwards,
and the exact lines the user reads.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.zenodo_helpers import METADATA, catalog_names, md5s, only_deposition, upload, uploader_requests

pytestmark = pytest.mark.e2e

LUNG = ["--title", "Lung", "--creators", "Doe, Jane", "--description", "A lung dataset"]


def other_dataset(tmp_path: Path) -> Path:
    directory = tmp_path / "other"
    directory.mkdir()
    for name in ("x.tsv", "y.tsv"):
        (directory / name).write_text(f"{name} of another dataset\n")
    return directory


def three_files(tmp_path: Path) -> Path:
    directory = tmp_path / "abc"
    directory.mkdir()
    for name in ("a.tsv", "b.tsv", "c.tsv"):
        (directory / name).write_text(f"{name}\n")
    return directory


# -- 1. which deposition is this dataset's ------------------------------------------------------------------


def test_another_dataset_with_the_same_title_is_never_touched(zenodo, zenodo_env, token_file, dataset, tmp_path):
    first = upload(zenodo, zenodo_env, token_file, dataset, *LUNG)
    assert first.code == 0, first.output
    lung = only_deposition(zenodo)
    before = zenodo.files(lung["id"])
    other = other_dataset(tmp_path)

    result = upload(zenodo, zenodo_env, token_file, other, *LUNG, "--upload-method", "all")

    assert result.code == 0, result.output
    assert (f"note: your unpublished deposition {lung['id']} is also titled 'Lung', but it holds files this dataset"
            " does not have: it is not this dataset's and was not touched; a new deposition is made (pass"
            f" --zenodo-id {lung['id']} to upload into it instead)") in result.stderr.splitlines()
    assert zenodo.files(lung["id"]) == before == md5s(dataset, catalog_names(dataset))
    made = [d for d in zenodo.depositions() if d["id"] != lung["id"]]
    assert len(made) == 1 and zenodo.files(made[0]["id"]) == md5s(other, ["x.tsv", "y.tsv"])


@pytest.mark.parametrize("title", ["Lung", "\u201cLung\u201d atlas"])  # stored as '"Lung" atlas'
def test_a_partial_upload_of_the_same_data_is_resumed_without_the_cache(zenodo, zenodo_env, token_file, dataset,
                                                                          tmp_path, title):
    command = ["--title", title, *LUNG[2:]]
    zenodo.control("faults", {"every": 3, "kinds": ["413"], "paths": "files"})  # every third upload refused
    first = upload(zenodo, zenodo_env, token_file, dataset, *command)
    zenodo.control("faults", {"every": 0})
    assert first.code == 1, first.output
    draft = only_deposition(zenodo)
    assert 0 < len(zenodo.files(draft["id"])) < len(catalog_names(dataset))
    elsewhere = zenodo_env | {"CARTLOAD_UPLOADER_CACHE_DIR": str(tmp_path / "another-cache")}

    result = upload(zenodo, elsewhere, token_file, dataset, *command)

    assert result.code == 0, result.output
    assert only_deposition(zenodo)["id"] == draft["id"]
    assert zenodo.files(draft["id"]) == md5s(dataset, catalog_names(dataset))
    assert (f"going on with your unpublished deposition {draft['id']} ({zenodo.base_url}/deposit/{draft['id']})"
            f" titled '{title}': every file in it is a file of this dataset, with the same MD5 (an earlier partial"
            " upload; pass --zenodo-id to choose another)") in result.stderr.splitlines()


def test_a_title_zenodo_would_refuse_at_publish_is_refused_before_anything_is_made(
        zenodo, zenodo_env, token_file, dataset):
    # Zenodo refuses a title under 3 characters only at publish, after the draft and its files exist; the
    # options are checked first, so nothing is made, and the corrected command makes one record.
    refused = upload(zenodo, zenodo_env, token_file, dataset, "--title", "Lu", "--creators", "Doe, Jane",
                     "--description", "A lung dataset", "--publish")
    assert refused.code == 2, refused.output
    assert "--title 'Lu': Zenodo needs at least 3 characters" in refused.stderr
    assert zenodo.depositions() == []

    result = upload(zenodo, zenodo_env, token_file, dataset, *LUNG, "--publish")

    assert result.code == 0, result.output
    record = only_deposition(zenodo)
    assert record["submitted"] is True and record["metadata"]["title"] == "Lung"
    assert zenodo.files(record["id"]) == md5s(dataset, catalog_names(dataset))


# -- 2. a record ends with exactly the dataset ---------------------------------------------------------------


def test_a_new_version_removes_the_files_the_dataset_dropped(zenodo, zenodo_env, token_file, tmp_path):
    abc = three_files(tmp_path)
    assert upload(zenodo, zenodo_env, token_file, abc, *LUNG, "--upload-method", "all", "--publish").code == 0
    v1 = only_deposition(zenodo)
    (abc / "c.tsv").unlink()
    (abc / "b.tsv").write_text("b, changed\n")

    dry = upload(zenodo, zenodo_env, token_file, abc, "--zenodo-id", str(v1["id"]), "--upload-method", "all",
                 "--dry-run")
    assert dry.code == 0, dry.output
    assert re.search(r"^delete +6  c\.tsv  \(in version 1, not in this dataset\)$", dry.stdout, re.M), dry.stdout
    assert len(zenodo.depositions()) == 1  # nothing opened

    report = tmp_path / "report.json"
    result = upload(zenodo, zenodo_env, token_file, abc, "--zenodo-id", str(v1["id"]), "--upload-method", "all",
                    "--publish", "--report", str(report))

    assert result.code == 0, result.output
    v2 = max(zenodo.depositions(), key=lambda d: d["id"])
    assert v2["submitted"] is True and v2["id"] != v1["id"]
    assert zenodo.files(v2["id"]) == md5s(abc, ["a.tsv", "b.tsv"])
    assert zenodo.files(v1["id"]) == {name: value for name, value in v1_md5s(v1).items()}  # v1 keeps its files
    assert "removed c.tsv (in version 1, not in this dataset)" in result.stderr.splitlines()
    removed = [f for f in json.loads(report.read_text())["files"] if f["name"] == "c.tsv"]
    assert removed == [{**removed[0], "status": "deleted", "reason": "in version 1, not in this dataset"}]


def v1_md5s(deposition: dict[str, Any]) -> dict[str, str]:
    return {f["filename"]: f["checksum"] for f in deposition["files"]}


def test_a_draft_this_dataset_owns_ends_with_exactly_the_plan(zenodo, zenodo_env, token_file, dataset):
    assert upload(zenodo, zenodo_env, token_file, dataset, *METADATA).code == 0
    draft = only_deposition(zenodo)
    zenodo.put_file(draft, "stray.tsv", b"added on the web page\n")

    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(draft["id"]))

    assert result.code == 0, result.output
    assert zenodo.files(draft["id"]) == md5s(dataset, catalog_names(dataset))
    assert f"removed stray.tsv (in draft {draft['id']}, not in this dataset)" in result.stderr.splitlines()


def test_upload_method_files_adds_to_what_the_draft_holds(zenodo, zenodo_env, token_file, tmp_path):
    abc = three_files(tmp_path)
    assert upload(zenodo, zenodo_env, token_file, abc, *LUNG, "--upload-method", "files", "--files", "a.tsv").code == 0
    draft = only_deposition(zenodo)

    result = upload(zenodo, zenodo_env, token_file, abc, "--zenodo-id", str(draft["id"]), "--upload-method", "files",
                    "--files", "b.tsv")

    assert result.code == 0, result.output
    assert zenodo.files(draft["id"]) == md5s(abc, ["a.tsv", "b.tsv"])


# -- 5. smaller things that misled ----------------------------------------------------------------------------


def test_the_published_line_gives_the_doi_and_the_concept_doi(zenodo, zenodo_env, token_file, tmp_path):
    abc = three_files(tmp_path)
    result = upload(zenodo, zenodo_env, token_file, abc, *LUNG, "--upload-method", "all", "--publish")

    assert result.code == 0, result.output
    record = only_deposition(zenodo)
    assert (f"DOI: {record['doi']} (all versions: {record['conceptdoi']})") in result.stderr.splitlines()
    assert "()" not in result.stderr


def test_a_creator_without_a_comma_is_refused_before_anything_is_created(zenodo, zenodo_env, token_file, dataset):
    result = upload(zenodo, zenodo_env, token_file, dataset, "--title", "Lung", "--creators", "Jane Doe")

    assert result.code == 2, result.output
    assert result.stderr.splitlines()[0] == ('error: --creators "Jane Doe": Zenodo reads a creator as "Family, Given",'
                                             ' and a name without a comma becomes the family name alone in the'
                                             ' citation; write it as "Doe, Jane"')
    assert "--help" not in result.stderr
    assert zenodo.depositions() == [] and uploader_requests(zenodo) == []


def test_upload_method_all_refuses_a_broken_catalog_before_anything_is_sent(zenodo, zenodo_env, token_file, dataset):
    (dataset / "catalog.yaml").write_text("assets: [unclosed\n")

    result = upload(zenodo, zenodo_env, token_file, dataset, *LUNG, "--upload-method", "all")

    assert result.code == 2, result.output
    assert "catalog.yaml" in result.stderr.splitlines()[0]
    assert zenodo.depositions() == [] and uploader_requests(zenodo) == []


def test_upload_method_all_notes_the_subdirectories_left_out(zenodo, zenodo_env, token_file, tmp_path):
    abc = three_files(tmp_path)
    (abc / "raw").mkdir()
    (abc / "raw" / "big.tsv").write_text("left out\n")

    result = upload(zenodo, zenodo_env, token_file, abc, *LUNG, "--upload-method", "all")

    assert result.code == 0, result.output
    assert ("note: leaving out 1 sub-directory(ies): Zenodo has no folders, and --upload-method all sends the files"
            " directly in --in-dir: raw") in result.stderr.splitlines()
    assert set(zenodo.files(only_deposition(zenodo)["id"])) == {"a.tsv", "b.tsv", "c.tsv"}


def test_rate_limiting_is_told_as_such(zenodo, zenodo_env, token_file, tmp_path):
    abc = three_files(tmp_path)
    zenodo.control("faults", {"every": 2, "kinds": ["429"], "paths": "all", "retry_after": 1, "limit": 1})

    result = upload(zenodo, zenodo_env, token_file, abc, *LUNG, "--upload-method", "all")

    assert result.code == 0, result.output
    assert any(re.fullmatch(r"rate-limited by Zenodo \(429\), waiting [12] s", line)
               for line in result.stderr.splitlines()), result.stderr
    assert "not answering" not in result.stderr


def test_a_refused_metadata_update_is_named_as_zenodos(zenodo, zenodo_env, token_file, dataset):
    assert upload(zenodo, zenodo_env, token_file, dataset, *METADATA).code == 0
    draft = only_deposition(zenodo)
    zenodo.control("faults", {"every": 1, "kinds": ["400"], "paths": "metadata", "limit": 1})

    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(draft["id"]), "--title", "Lungs")

    assert result.code == 2, result.output
    assert result.stderr.splitlines()[-1] == ("error: Zenodo refused updating the metadata (400): A validation error"
                                              " occurred.; metadata.creators.0.name: Invalid value.")
    assert "Run '" not in result.stderr
    assert only_deposition(zenodo)["metadata"]["title"] == "Human lung demo"


def test_a_refused_edit_of_a_published_record_is_not_left_open(zenodo, zenodo_env, token_file, dataset):
    assert upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--publish").code == 0
    record = only_deposition(zenodo)
    zenodo.control("faults", {"every": 1, "kinds": ["400"], "paths": "metadata", "limit": 1})

    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(record["id"]), "--title", "Lungs")

    assert result.code == 2, result.output
    assert "error: Zenodo refused updating the metadata (400)" in result.stderr
    after = only_deposition(zenodo)
    assert after["state"] == "done" and after["metadata"]["title"] == "Human lung demo"


def test_a_copy_of_a_dataset_elsewhere_is_not_mistaken_for_this_one(zenodo, zenodo_env, token_file, dataset,
                                                                     tmp_path):
    """The same files in another directory are the same data: the draft is provably theirs, so it is gone on with."""
    assert upload(zenodo, zenodo_env, token_file, dataset, *METADATA).code == 0
    draft = only_deposition(zenodo)
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)

    result = upload(zenodo, zenodo_env, token_file, copy, *METADATA)

    assert result.code == 0, result.output
    assert only_deposition(zenodo)["id"] == draft["id"]


def test_a_lost_create_never_adopts_another_datasets_draft(zenodo, zenodo_env, token_file, dataset, tmp_path):
    """The create's answer is lost and nothing was made; the search finds another run's fresh same-title draft."""
    theirs = zenodo.api("POST", "/deposit/depositions", json={"metadata": {
        "title": "Lung", "creators": [{"name": "Roe, Rick"}], "description": "Their lung dataset"}})
    zenodo.put_file(theirs, "x.tsv", b"theirs\n")
    zenodo.control("faults", {"every": 1, "kinds": ["drop"], "paths": "create", "limit": 1})

    result = upload(zenodo, zenodo_env, token_file, dataset, *LUNG)

    assert result.code == 0, result.output
    assert zenodo.files(theirs["id"]) == {"x.tsv": md5s_of(b"theirs\n")}
    ours = [d for d in zenodo.depositions() if d["id"] != theirs["id"]]
    assert len(ours) == 1 and zenodo.files(ours[0]["id"]) == md5s(dataset, catalog_names(dataset))


def md5s_of(data: bytes) -> str:
    import hashlib

    return hashlib.md5(data).hexdigest()


def test_no_markers_for_a_sandbox_trial(zenodo, zenodo_env, token_file, dataset):
    """The mock answers as sandbox.zenodo.org through a plain HTTP proxy (the host is what decides)."""
    env = zenodo_env | {"HTTP_PROXY": zenodo.base_url, "http_proxy": zenodo.base_url, "NO_PROXY": "", "no_proxy": ""}
    result = run_cli("upload_zenodo", "--in-dir", dataset, "--zenodo-token", token_file, "--zenodo-url",
                     "http://sandbox.zenodo.org/api", *METADATA, env=env)

    assert result.code == 0, result.output
    assert zenodo.files(only_deposition(zenodo)["id"]) == md5s(dataset, catalog_names(dataset))
    assert not [path.name for path in dataset.iterdir() if path.name.endswith(".zenodo.done")]
    assert ("note: no cartload.zenodo.done markers written: this is Zenodo's sandbox, and cartloader's pipeline"
            " would read them as a finished upload to zenodo.org") in result.stderr.splitlines()

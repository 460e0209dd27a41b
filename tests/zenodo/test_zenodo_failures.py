"""upload_zenodo when Zenodo pushes back: rate limits, Retry-After, slow publishes, records that are gone."""

from __future__ import annotations

import pytest

from tests.conftest import MockZenodo
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


def puts(zenodo: MockZenodo) -> list[dict]:
    return [e for e in uploader_requests(zenodo) if e["method"] == "PUT" and e["path"].startswith("/api/files/")]


# -- 10. Retry-After, 413, one budget, one pacing ------------------------------------------------------------------


def test_retry_after_on_a_file_upload_is_honoured(zenodo, zenodo_env, token_file, dataset):
    zenodo.control("faults", {"every": 2, "kinds": ["early-503", "early-429"], "paths": "files", "retry_after": 2,
                              "limit": 3})

    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA)

    assert result.code == 0, result.output
    assert zenodo.files(only_deposition(zenodo)["id"]) == md5s(dataset, catalog_names(dataset))
    sent = puts(zenodo)
    refused = [e for e in sent if e["status"] in (429, 503)]
    assert len(refused) == 3
    for answer in refused:
        retry = next(e for e in sent if e["path"] == answer["path"] and e["time"] > answer["time"])
        assert retry["time"] - answer["time"] >= 1.95, (answer, retry)


def test_413_is_final_and_never_retried(zenodo, zenodo_env, token_file, dataset):
    zenodo.control("faults", {"every": 1, "kinds": ["413"], "paths": "files"})

    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA)

    assert result.code == 1, result.output
    sent = puts(zenodo)
    assert len(sent) == len({e["path"] for e in sent}) == len(catalog_names(dataset)) - 1  # the catalog waits
    assert "too large" in result.stderr


def test_retries_of_every_request_share_one_budget(zenodo, zenodo_env, token_file, dataset):
    zenodo.control("faults", {"every": 1, "kinds": ["503"], "paths": "files", "retry_after": 0})
    env = zenodo_env | {"CARTLOAD_UPLOADER_ZENODO_RETRIES": "5"}

    result = upload(zenodo, env, token_file, dataset, *METADATA, "--n-jobs", "2")

    assert result.code == 1, result.output
    files = len(catalog_names(dataset)) - 1
    assert len(puts(zenodo)) <= files + 5


def test_requests_are_paced_under_zenodos_rate_limit(zenodo, zenodo_env, token_file, tmp_path):
    many = tmp_path / "many"
    many.mkdir()
    for index in range(40):
        (many / f"table-{index:02d}.tsv").write_text(f"{index}\n")
    zenodo.control("options", {"rate": [20, 2]})
    env = zenodo_env | {"CARTLOAD_UPLOADER_ZENODO_RATE": "18/2"}

    result = upload(zenodo, env, token_file, many, *METADATA, "--upload-method", "all", "--n-jobs", "8")

    assert result.code == 0, result.output
    assert zenodo.files(only_deposition(zenodo)["id"]) == md5s(many, [p.name for p in many.iterdir()])
    assert not [e for e in uploader_requests(zenodo) if e["status"] == 429]


def test_a_bad_pacing_variable_is_a_usage_error(zenodo, zenodo_env, token_file, dataset):
    env = zenodo_env | {"CARTLOAD_UPLOADER_ZENODO_RATE": "fast"}
    result = upload(zenodo, env, token_file, dataset, *METADATA)
    assert_nothing_created(result, zenodo, 2, "CARTLOAD_UPLOADER_ZENODO_RATE")


# -- 11. a slow publish -----------------------------------------------------------------------------------------


def publish_posts(zenodo: MockZenodo) -> list[dict]:
    return [e for e in uploader_requests(zenodo) if e["path"].endswith("/actions/publish")]


def test_a_publish_that_outlasts_the_gateway_is_waited_for_not_posted_again(zenodo, zenodo_env, token_file, dataset):
    zenodo.control("options", {"publish_seconds": 2.5, "gateway_timeout": 0.5})

    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--publish")

    assert result.code == 0, result.output
    record = only_deposition(zenodo)
    assert record["submitted"] is True and f"DOI: {record['doi']}" in result.stderr
    assert len(publish_posts(zenodo)) == 1


def test_a_publish_that_outlasts_the_read_timeout_is_polled(zenodo, zenodo_env, token_file, dataset):
    zenodo.control("options", {"publish_seconds": 3})
    env = zenodo_env | {"CARTLOAD_UPLOADER_ZENODO_PUBLISH_TIMEOUT": "2"}

    result = upload(zenodo, env, token_file, dataset, *METADATA, "--publish")

    assert result.code == 0, result.output
    assert only_deposition(zenodo)["submitted"] is True
    assert len(publish_posts(zenodo)) == 1
    assert "timed out" not in result.stderr


# -- 12. records that are gone, or not yours ----------------------------------------------------------------


def test_a_deleted_record_is_gone_exit_2(zenodo, zenodo_env, token_file, dataset):
    assert upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--publish").code == 0
    record = only_deposition(zenodo)
    zenodo.control("delete_record", {"id": record["id"]})

    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(record["id"]))

    assert_nothing_created(result, zenodo, 2, "deleted", str(record["id"]))
    assert "try again" not in result.stderr


def test_an_unknown_id_does_not_exist_exit_2(zenodo, zenodo_env, token_file, dataset):
    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", "999999999")
    assert_nothing_created(result, zenodo, 2, "deposition 999999999 does not exist")
    assert "try again" not in result.stderr

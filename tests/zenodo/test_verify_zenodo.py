"""verify_zenodo end to end: a record published by upload_zenodo into the mock Zenodo, then read back without a
token through the public records API (the mock follows zenodo-rdm's ZenodoJSONSerializer, see mock_zenodo.py).

A published record cannot change, so each difference is made on the local side: the audit is the same.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MockZenodo, run_cli
from tests.zenodo_helpers import METADATA, only_deposition, upload, uploader_requests

pytestmark = pytest.mark.e2e


@pytest.fixture
def record(zenodo: MockZenodo, zenodo_env: dict[str, str], token_file: Path, dataset: Path) -> dict[str, Any]:
    result = upload(zenodo, zenodo_env, token_file, dataset, *METADATA, "--publish")
    assert result.code == 0, result.output
    return only_deposition(zenodo)


def verify(zenodo: MockZenodo, env: dict[str, str], dataset: Path, record_id: object,
           *extra: str | Path) -> tuple[int, str, dict[str, Any]]:
    report = dataset.parent / f"verify-{uuid.uuid4().hex[:8]}.json"
    result = run_cli("verify_zenodo", "--in-dir", dataset, "--zenodo-id", str(record_id), "--zenodo-url",
                     zenodo.api_url, "--report", report, *extra, env=env)
    document = json.loads(report.read_text()) if report.exists() else {}
    return result.code, result.stderr, document


def differences(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.split(":")[0] in ("missing", "different", "extra")]


def test_equal_record_exits_0_without_a_token_and_writes_nothing(zenodo, zenodo_env, dataset, record):
    seen = len(zenodo.log())

    code, stderr, report = verify(zenodo, zenodo_env, dataset, record["id"])

    assert code == 0, stderr
    assert f"record: {zenodo.base_url}/records/{record['id']} (DOI {record['doi']})" in stderr
    assert f"verified: {zenodo.base_url}/records/{record['id']} holds exactly the local dataset (21 same)" in stderr
    assert {entry["verdict"] for entry in report["files"]} == {"same"} and report["ok"] is True
    # One request, anonymous: the public record (the listing's MD5s settle every file).
    assert [(r["method"], r["path"], r["status"]) for r in zenodo.log()[seen:]] == [
        ("GET", f"/api/records/{record['id']}", 200)]


def test_changed_removed_extra_and_catalog_differences_each_named(zenodo, zenodo_env, dataset, record):
    model = dataset / "t18-f24-model.tsv"
    data = bytearray(model.read_bytes())
    data[100] ^= 0x01
    model.write_bytes(bytes(data))  # the same size, one byte off
    catalog = (dataset / "catalog.yaml").read_text()
    catalog = catalog.replace("      alias: t18-f24-alias.tsv\n", "")  # the record holds a file no catalog names
    catalog = catalog.replace("Human lung", "Human LUNG")  # and the live catalog differs
    (dataset / "extra-table.tsv").write_text("a\tb\n")
    catalog = catalog.replace("  sge:\n", "  table: extra-table.tsv\n  sge:\n", 1)  # and one the record lacks
    (dataset / "catalog.yaml").write_text(catalog)

    code, stderr, report = verify(zenodo, zenodo_env, dataset, record["id"])

    assert code == 1, stderr
    assert sorted(differences(stderr)) == sorted([
        "different: t18-f24-model.tsv: content differs (same size; the remote's digest disagrees)",
        "missing: extra-table.tsv: not on the remote",
        f"different: catalog.yaml (the live catalog): size differs (remote {len(record_catalog(zenodo, record)):,d}"
        f" bytes, local {len(catalog.encode()):,d})",
        "extra: t18-f24-alias.tsv: on the remote, but no catalog names it",
    ])
    assert report["counts"] == {"same": 18, "missing": 1, "different": 2, "unproven": 0, "extra": 1}


def record_catalog(zenodo: MockZenodo, record: dict[str, Any]) -> bytes:
    import requests

    answer = requests.get(f"{zenodo.api_url}/records/{record['id']}/files/catalog.yaml/content", timeout=30)
    assert answer.status_code == 200
    return answer.content


def test_deep_downloads_and_hashes_every_file(zenodo, zenodo_env, dataset, record):
    rgb = dataset / "t18-f24-rgb.tsv"
    rgb.write_bytes(rgb.read_bytes()[:-1] + b"X")

    code, stderr, report = verify(zenodo, zenodo_env, dataset, record["id"], "--deep")

    assert code == 1, stderr
    assert differences(stderr) == ["different: t18-f24-rgb.tsv: content differs (same size; downloaded and hashed"
                                   " digest disagrees)"]
    contents = [r for r in uploader_requests(zenodo) if r["path"].endswith("/content")]
    assert len(contents) == 21  # every file read, none trusted from the listing
    assert all(entry["reason"] == "same size and md5 (downloaded and hashed)" for entry in report["files"]
               if entry["verdict"] == "same")


def test_a_wrong_zenodo_id_or_a_draft_is_bad_input(zenodo, zenodo_env, token_file, dataset, record):
    code, stderr, report = verify(zenodo, zenodo_env, dataset, 999999)
    assert code == 2 and stderr.startswith("error: --zenodo-id 999999: record 999999 does not exist at"), stderr
    assert report["ok"] is False and report["exit_status"] == 2

    draft = zenodo.api("POST", "/deposit/depositions", json={})
    code, stderr, _ = verify(zenodo, zenodo_env, dataset, draft["id"])
    assert code == 2 and "a draft has no public record until it is published" in stderr, stderr

    code, stderr, _ = verify(zenodo, zenodo_env, dataset, "12x")
    assert code == 2 and stderr.startswith("error: --zenodo-id 12x: must be a whole number"), stderr
    code, stderr, _ = verify(zenodo, zenodo_env, dataset, record["id"], "--upload-method", "every")
    assert code == 2 and stderr.startswith("error: --upload-method every: choose one of catalog, all, files"), stderr
    code, stderr, _ = verify(zenodo, zenodo_env, dataset, record["id"], "--publish")
    assert code == 2 and stderr.startswith("error: --publish is an option of upload_zenodo, not of verify_zenodo")


def test_an_unreachable_zenodo_exits_4(zenodo_env, dataset):
    result = run_cli("verify_zenodo", "--in-dir", dataset, "--zenodo-id", "1", "--zenodo-url",
                     "http://127.0.0.1:9/api", env=zenodo_env)
    assert result.code == 4 and result.stderr.startswith("error: cannot reach Zenodo at http://127.0.0.1:9"), \
        result.output


def test_an_older_version_is_verified_as_it_is_and_the_newer_one_named(zenodo, zenodo_env, token_file, dataset,
                                                                      record):
    (dataset / "genes_bin_counts.json").write_text('{"bin1": 7}')
    result = upload(zenodo, zenodo_env, token_file, dataset, "--zenodo-id", str(record["id"]), "--publish")
    assert result.code == 0, result.output

    newer = only_new_version(zenodo, record)

    code, stderr, _ = verify(zenodo, zenodo_env, dataset, record["id"])

    assert code == 1
    assert differences(stderr) == ["different: genes_bin_counts.json: size differs (remote 27 bytes, local 11)"]
    assert (f"note: record {record['id']} is not the latest version of its concept"
            f" ({zenodo.api_url}/records/{record['id']}/versions/latest); --latest verifies that one") in stderr
    code, stderr, _ = verify(zenodo, zenodo_env, dataset, newer["id"])
    assert code == 0, stderr
    code, stderr, report = verify(zenodo, zenodo_env, dataset, record["id"], "--latest")  # as a CI step would
    assert code == 0, stderr
    assert f"record: {zenodo.base_url}/records/{newer['id']} (DOI {newer['doi']})" in stderr
    assert report["destination"] == f"{zenodo.base_url}/records/{newer['id']}"


def only_new_version(zenodo: MockZenodo, record: dict[str, Any]) -> dict[str, Any]:
    versions = [d for d in zenodo.depositions() if d["id"] != record["id"]]
    assert len(versions) == 1 and versions[0]["submitted"] is True
    return versions[0]


def test_a_token_file_is_used_and_never_shown(zenodo, zenodo_env, token_file, dataset, record):
    code, stderr, report = verify(zenodo, zenodo_env, dataset, record["id"], "--zenodo-token", token_file)

    assert code == 0, stderr
    assert zenodo.token not in stderr and zenodo.token not in json.dumps(report)

"""verify_aws end to end: entrypoint.py against the real local S3 server, after a real upload_aws.

What is compared is the bucket as another tool (boto3 here) left it; what is asserted is the exact line a
user reads, the exit status, the report's verdicts, and that the bucket saw no write from the verify.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import S3Prefix, S3Server, run_cli, two_sample_collection

pytestmark = pytest.mark.e2e


def upload(dataset: Path, s3: S3Prefix, env: dict[str, str], *extra: str | Path) -> None:
    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, "--no-viewer-check", *extra, env=env)
    assert result.code == 0, result.output


def verify(dataset: Path, s3: S3Prefix, env: dict[str, str], *extra: str | Path) -> tuple[int, str, dict[str, Any]]:
    report = dataset.parent / f"verify-{uuid.uuid4().hex[:8]}.json"
    result = run_cli("verify_aws", "--in-dir", dataset, "--s3-dir", s3.uri, "--report", report, *extra, env=env)
    document = json.loads(report.read_text()) if report.exists() else {}
    return result.code, result.stderr, document


def verdicts(report: dict[str, Any]) -> dict[str, str]:
    return {entry["destination"]: entry["verdict"] for entry in report["files"]}


def differences(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.split(":")[0] in ("missing", "different", "extra",
                                                                             "unproven")]


@pytest.fixture
def published(dataset: Path, s3: S3Prefix, cli_env: dict[str, str]) -> Path:
    upload(dataset, s3, cli_env)
    return dataset


def test_equal_dataset_exits_0_and_writes_nothing(published, s3, cli_env):
    before, local_before = s3.writes(), sorted(path.name for path in published.iterdir())

    code, stderr, report = verify(published, s3, cli_env, "--no-viewer-check")

    assert code == 0, stderr
    assert f"verified: {s3.uri} holds exactly the local dataset (21 same)" in stderr
    assert differences(stderr) == []
    assert report["ok"] is True and report["exit_status"] == 0 and report["counts"]["same"] == 21
    assert set(verdicts(report).values()) == {"same"}
    assert f"{s3.prefix}/catalog.yaml" in verdicts(report)
    assert s3.writes() == before  # not an object, lease, probe or marker written
    assert s3.multipart_uploads() == [] and s3.leases() == set()
    assert sorted(path.name for path in published.iterdir()) == local_before  # no marker file added


def test_one_byte_changed_remotely_same_size_is_named(published, s3, cli_env):
    key = f"{s3.prefix}/genes_bin1.pmtiles"
    data = bytearray(s3.get("genes_bin1.pmtiles"))
    data[5000] ^= 0x01
    s3.client.put_object(Bucket=s3.bucket, Key=key, Body=bytes(data))  # another tool's same-size overwrite

    code, stderr, report = verify(published, s3, cli_env, "--no-viewer-check")

    assert code == 1, stderr
    assert differences(stderr) == [f"different: {key}: content differs (same size; the remote's digest disagrees)"]
    assert stderr.strip().splitlines()[-1] == f"differs: {s3.uri} is not the local dataset (20 same, 1 different)"
    assert verdicts(report)[key] == "different" and report["ok"] is False and report["exit_status"] == 1


def test_deep_reads_the_bytes_even_where_the_etag_and_stored_sha256_agree(published, s3, cli_env):
    """A store that kept the listed ETag and metadata but whose bytes changed is only caught by reading them:
    here the object is replaced with other bytes and the ETag still vouches for them, so the listing finds it;
    with --deep the downloaded SHA-256 finds it too, and the equal objects are proven by their bytes."""
    key = f"{s3.prefix}/t18-f24-model.tsv"
    data = bytearray(s3.get("t18-f24-model.tsv"))
    data[-2] ^= 0x20
    s3.client.put_object(Bucket=s3.bucket, Key=key, Body=bytes(data), Metadata=s3.head("t18-f24-model.tsv")["Metadata"])

    code, stderr, report = verify(published, s3, cli_env, "--no-viewer-check", "--deep")

    assert code == 1, stderr
    assert differences(stderr) == [f"different: {key}: content differs (same size; downloaded and hashed digest"
                                   " disagrees)"]
    same = [entry for entry in report["files"] if entry["verdict"] == "same"]
    assert len(same) == 20 and all(entry["reason"] == "same size and sha256 (downloaded and hashed)" for entry in same)


def test_removed_and_extra_objects_are_named_but_the_tools_own_keys_are_not(published, s3, cli_env):
    s3.client.delete_object(Bucket=s3.bucket, Key=f"{s3.prefix}/t18-f24-model.tsv")
    s3.client.put_object(Bucket=s3.bucket, Key=f"{s3.prefix}/notes/old-run.log", Body=b"left behind")
    s3.client.put_object(Bucket=s3.bucket, Key=f"{s3.prefix}/.cartload-uploader/runs/abc.json", Body=b"{}")
    s3.client.put_object(Bucket=s3.bucket, Key=f"{s3.prefix}-sibling/x.tsv", Body=b"not under the prefix")

    code, stderr, report = verify(published, s3, cli_env, "--no-viewer-check")

    assert code == 1, stderr
    assert differences(stderr) == [f"missing: {s3.prefix}/t18-f24-model.tsv: not on the remote",
                                   f"extra: {s3.prefix}/notes/old-run.log: on the remote, but no catalog names it"]
    assert report["counts"] == {"same": 20, "missing": 1, "different": 0, "unproven": 0, "extra": 1}


def test_a_different_live_catalog_is_named_as_such(published, s3, cli_env):
    catalog = s3.get("catalog.yaml").replace(b"Human lung", b"Human LUNG")
    s3.client.put_object(Bucket=s3.bucket, Key=f"{s3.prefix}/catalog.yaml", Body=catalog)

    code, stderr, report = verify(published, s3, cli_env, "--no-viewer-check")

    assert code == 1, stderr
    assert differences(stderr) == [f"different: {s3.prefix}/catalog.yaml (the live catalog): content differs"
                                   " (same size; the remote's digest disagrees)"]
    catalog_entry = next(entry for entry in report["files"] if entry["catalog"])
    assert catalog_entry["verdict"] == "different"


def test_a_read_only_identity_verifies_and_a_collection_is_the_plan_upload_aws_makes(tmp_path, dataset, s3,
                                                                                    s3_server: S3Server, cli_env):
    collection = two_sample_collection(tmp_path, dataset)
    in_list = tmp_path / "samples.tsv"
    in_list.write_text("Sample_A\nSample_B\n")
    result = run_cli("upload_aws", "--in-dir", collection, "--in-list", in_list, "--s3-dir", s3.uri,
                     "--no-viewer-check", env=cli_env)
    assert result.code == 0, result.output
    assert s3_server.reader is not None
    reader = cli_env | {"AWS_ACCESS_KEY_ID": s3_server.reader.access_key,
                        "AWS_SECRET_ACCESS_KEY": s3_server.reader.secret_key}

    code, stderr, report = verify(collection, s3, reader, "--in-list", in_list, "--no-viewer-check")

    assert code == 0, stderr
    assert f"{s3.prefix}/humanlung-demo/catalog.yaml" in verdicts(report)
    assert f"{s3.prefix}/sample-b/genes_all.pmtiles" in verdicts(report)
    s3.client.delete_object(Bucket=s3.bucket, Key=f"{s3.prefix}/sample-b/genes_all.pmtiles")
    code, stderr, _ = verify(collection, s3, reader, "--in-list", in_list, "--no-viewer-check")
    assert code == 1 and differences(stderr) == [f"missing: {s3.prefix}/sample-b/genes_all.pmtiles: not on the remote"]


# -- anonymous, on a public prefix ----------------------------------------------------------------------


@pytest.fixture
def public(s3_server: S3Server) -> S3Prefix:
    """A prefix anyone may list and read, in a bucket of its own (its policy must not leak to other tests)."""
    prefix = S3Prefix(s3_server)
    prefix.bucket = f"public-{uuid.uuid4().hex[:12]}"
    prefix.client.create_bucket(Bucket=prefix.bucket)
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{prefix.bucket}/{prefix.prefix}/*"},
        {"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{prefix.bucket}"},
    ]}
    prefix.client.put_bucket_policy(Bucket=prefix.bucket, Policy=json.dumps(policy))
    return prefix


def anonymous(env: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in env.items() if not key.startswith("AWS_ACCESS_KEY_ID")
            and not key.startswith("AWS_SECRET_ACCESS_KEY")}


def test_anonymous_verify_of_a_public_prefix_with_the_viewer_check(dataset, public, cli_env):
    upload(dataset, public, cli_env)
    env = anonymous(cli_env)

    code, stderr, report = verify(dataset, public, env, "--no-sign-request")

    assert code == 0, stderr
    assert f"verified: {public.uri} holds exactly the local dataset (21 same)" in stderr
    assert "ok      public read" in stderr  # the viewer check ran, anonymously, and reads the catalog
    assert report["viewer"]["checks"] and report["counts"]["same"] == 21

    public.client.put_object(Bucket=public.bucket, Key=f"{public.prefix}/stray.tsv", Body=b"x")
    code, stderr, _ = verify(dataset, public, env, "--no-sign-request", "--no-viewer-check", "--deep")
    assert code == 1 and differences(stderr) == [f"extra: {public.prefix}/stray.tsv: on the remote, but no catalog"
                                                 " names it"]


def test_without_credentials_or_permission_the_exit_status_says_which(dataset, public, s3, cli_env):
    upload(dataset, s3, cli_env)
    env = anonymous(cli_env)

    result = run_cli("verify_aws", "--in-dir", dataset, "--s3-dir", s3.uri, "--no-viewer-check", env=env)
    assert result.code == 3 and "no AWS credentials found" in result.stderr, result.output

    result = run_cli("verify_aws", "--in-dir", dataset, "--s3-dir", s3.uri, "--no-sign-request", "--no-viewer-check",
                     env=env)
    assert result.code == 3 and f"access denied for listing s3://{s3.bucket}/{s3.prefix}/" in result.stderr, \
        result.output


def test_bad_input_exits_2_with_one_line(dataset, s3, cli_env):
    cases = [
        (["--s3-dir", "bucket/prefix"], "error: --s3-dir bucket/prefix: must look like s3://BUCKET/PREFIX"),
        (["--s3-dir", s3.uri, "--no-sign-request", "--profile", "lab"],
         "error: --no-sign-request and --profile exclude each other"),
        (["--s3-dir", s3.uri, "--dry-run"], "error: --dry-run is an option of upload_aws, not of verify_aws"),
        (["--s3-dir", f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/x", "--no-viewer-check"],
         "error: --s3-dir: bucket 'no-such-bucket-"),
    ]
    for extra, message in cases:
        result = run_cli("verify_aws", "--in-dir", dataset, *extra, env=cli_env)
        assert result.code == 2 and result.stderr.startswith(message), (extra, result.output)
    (dataset / "genes_bin2.pmtiles").unlink()
    result = run_cli("verify_aws", "--in-dir", dataset, "--s3-dir", s3.uri, env=cli_env)
    assert result.code == 2 and "'genes_bin2.pmtiles' is missing from" in result.stderr, result.output


def test_unreachable_endpoint_exits_4(dataset, cli_env):
    env = cli_env | {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1",
                     "CARTLOAD_UPLOADER_CONNECT_TIMEOUT": "1"}
    result = run_cli("verify_aws", "--in-dir", dataset, "--s3-dir", "s3://bucket/x", "--no-viewer-check", env=env)
    assert result.code == 4 and "cannot reach the S3 endpoint" in result.stderr, result.output


def test_the_viewer_check_runs_by_default_and_require_viewer_ready_exits_5(published, s3, cli_env):
    code, stderr, report = verify(published, s3, cli_env)  # the test bucket is private: the viewer cannot read it

    assert code == 0, stderr  # the files match: that is what verify proves
    assert report["viewer_ready"] is False and report["same"] is True
    assert stderr.strip().splitlines()[-1].startswith("verified, but the viewer cannot read it")

    code, stderr, report = verify(published, s3, cli_env, "--require-viewer-ready")
    assert code == 5 and report["exit_status"] == 5 and report["ok"] is False, stderr


def test_deep_reads_objects_in_ordered_ranges_within_the_shared_bound(s3, monkeypatch):
    """Many ranges per object, several objects at once, fewer slots than they would like: every digest is the
    digest of the object's bytes, in order, and never more ranges are held than the bound."""
    import hashlib
    import os
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from uploader.engine.operations import RemoteFile
    from uploader.s3 import reader as reader_module
    from uploader.s3.client import make_client
    from uploader.s3.destination import S3Destination
    from uploader.s3.settings import S3Settings

    monkeypatch.setattr(reader_module, "RANGE_SIZE", 64 * 1024)
    monkeypatch.setattr(reader_module, "RANGES_IN_FLIGHT", 3)
    monkeypatch.setattr(reader_module, "RANGES_PER_OBJECT", 2)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.server.admin.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.server.admin.secret_key)
    objects = {f"{s3.prefix}/blob-{i}": os.urandom(64 * 1024 * 5 + 17 * i) for i in range(6)}
    for key, data in objects.items():
        s3.client.put_object(Bucket=s3.bucket, Key=key, Body=data)
    settings = S3Settings(s3_dir=S3Destination(s3.bucket, s3.prefix), endpoint_url=s3.server.endpoint_url)
    reader = reader_module.S3Reader(make_client(settings), settings.s3_dir, settings)
    held, most = [0], [0]
    lock = threading.Lock()
    original = reader._range

    def counted(remote: RemoteFile, start: int) -> bytes:
        with lock:
            held[0] += 1
            most[0] = max(most[0], held[0])
        try:
            return original(remote, start)
        finally:
            with lock:
                held[0] -= 1

    monkeypatch.setattr(reader, "_range", counted)
    with ThreadPoolExecutor(6) as pool:
        found = list(pool.map(lambda item: reader.downloaded_digests(RemoteFile(item[0], len(item[1])),
                                                                      ["sha256", "md5"]), objects.items()))

    assert found == [{"sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest()}
                     for data in objects.values()]
    assert 1 <= most[0] <= 3

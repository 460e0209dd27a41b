"""upload_aws's object options and --delete, end to end: entrypoint.py against a real S3 server, then the bucket.

Every option is checked on the stored objects where the server stores it.
SeaweedFS (the tests' server) keeps Cache-Control, the storage class,
SSE-S3 (AES256, with the key tests/servers.py gives it) and an ACL set by
PutObjectAcl, but ignores an ACL sent with an upload and has no KMS: an ACL
sent with uploads, and SSE-KMS, are checked against moto's server (started
here), which keeps both. The request payer is stored by no server: it is
proven by the requests on the wire, recorded by a TCP pass-through in front
of the server.

moto 5.2 answers GetObjectAcl of an object made by a multipart upload sent
without an ACL with a 500 (its ACL is None): its tests give --acl.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import S3Prefix, S3Server, run_cli
from tests.pmtiles_files import pmtiles_bytes
from tests.proxy import RecordingTunnel
from tests.servers import MotoServer

pytestmark = pytest.mark.e2e

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
MULTIPART = 9 * 1024 * 1024  # over the 8 MiB part size: sent as a multipart upload of two parts


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    """A multipart PMTiles file, a small table and the catalog naming them."""
    directory = tmp_path / "options-dataset"
    directory.mkdir()
    (directory / "genes_all.pmtiles").write_bytes(pmtiles_bytes(os.urandom(MULTIPART)))
    (directory / "info.tsv").write_text("a\tb\n1\t2\n")
    (directory / "catalog.yaml").write_text("id: opts\nassets:\n  sge:\n    all: genes_all.pmtiles\n  info: info.tsv\n")
    return directory


NAMES = {"genes_all.pmtiles", "info.tsv", "catalog.yaml"}


def upload(directory: Path, s3: S3Prefix, env: dict[str, str], *extra: str) -> tuple[int, str, dict[str, Any]]:
    report = directory.parent / f"report-{time.monotonic_ns()}.json"
    result = run_cli("upload_aws", "--in-dir", directory, "--s3-dir", s3.uri, "--report", report,
                     "--no-viewer-check", *extra, env=env)
    return result.code, result.output, json.loads(report.read_text()) if report.exists() else {}


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {entry["name"]: entry["status"] for entry in report["files"]}


def public_grants(s3: S3Prefix, name: str) -> set[tuple[str, str]]:
    acl = s3.client.get_object_acl(Bucket=s3.bucket, Key=f"{s3.prefix}/{name}")
    return {(grant["Grantee"].get("URI", ""), grant["Permission"]) for grant in acl["Grants"]
            if grant["Grantee"].get("Type") == "Group"}


# -- options sent with every upload -----------------------------------------------------------------


def test_without_options_only_the_catalog_gets_no_cache(small_dataset, s3, cli_env):
    code, output, _ = upload(small_dataset, s3, cli_env)

    assert code == 0, output
    assert s3.head("catalog.yaml").get("CacheControl") == "no-cache"  # a re-published catalog is never stale
    assert "CacheControl" not in s3.head("genes_all.pmtiles") and "CacheControl" not in s3.head("info.tsv")


def test_cache_control_storage_class_and_sse_are_stored_on_every_object(small_dataset, s3, cli_env):
    code, output, report = upload(small_dataset, s3, cli_env, "--cache-control", "public, max-age=3600",
                                  "--storage-class", "STANDARD_IA", "--sse", "AES256")

    assert code == 0, output
    assert s3.names() == NAMES and set(statuses(report).values()) == {"uploaded"}
    for name in NAMES:  # a single PUT, a multipart upload, and the catalog
        head = s3.head(name)
        assert (head.get("CacheControl"), head.get("StorageClass"), head.get("ServerSideEncryption")) == \
            ("public, max-age=3600", "STANDARD_IA", "AES256"), name
        assert s3.get(name) == (small_dataset / name).read_bytes()
    assert s3.head("genes_all.pmtiles")["ETag"].strip('"').endswith("-2")


def test_an_acl_is_stored_where_the_store_keeps_it_and_a_store_that_drops_it_is_told(small_dataset, s3, cli_env):
    code, output, _ = upload(small_dataset, s3, cli_env, "--acl", "public-read")

    if s3.server.kind == "seaweedfs":
        # SeaweedFS ignores x-amz-acl on PutObject and CreateMultipartUpload (it keeps PutObjectAcl's):
        # the first object of each kind shows it, and nothing is published with a setting silently lost.
        assert code == 1, output
        assert "the store did not keep --acl public-read (it holds private)" in output
        assert "catalog.yaml" not in s3.names()
        return
    assert code == 0, output
    for name in NAMES:
        assert public_grants(s3, name) == {(ALL_USERS, "READ")}, name


def test_files_sent_beside_a_failing_proof_are_each_checked_by_a_head(tmp_path, s3, cli_env):
    """The first table's HEAD is the proof that the store keeps what was sent; the other tables go out beside it.
    SeaweedFS drops the ACL, so the proof fails, and none of the others is accepted on its ETag alone."""
    if s3.server.kind != "seaweedfs":
        pytest.skip("the store must drop the ACL sent with an upload: SeaweedFS does, moto keeps it")
    directory = tmp_path / "tables"
    directory.mkdir()
    tables = [f"t{n:02d}.tsv" for n in range(12)]
    for name in tables:
        (directory / name).write_text(f"{name}\t1\n")
    (directory / "catalog.yaml").write_text("id: tables\nassets:\n  tables:\n" + "".join(f"  - {n}\n" for n in tables))

    code, output, report = upload(directory, s3, cli_env, "--acl", "public-read")

    assert code == 1, output
    failed = {entry["name"]: entry["reason"] for entry in report["files"] if entry["status"] == "failed"}
    assert sorted(failed) == ["catalog.yaml", *tables], failed
    assert all("did not keep --acl public-read" in failed[name] for name in tables), failed
    assert "catalog.yaml" not in s3.names()


# -- options given on a re-run: unchanged objects updated in place ----------------------------------


def test_a_new_cache_control_updates_unchanged_objects_without_sending_their_bytes(small_dataset, s3, cli_env):
    assert upload(small_dataset, s3, cli_env, "--cache-control", "max-age=60", "--storage-class", "STANDARD_IA")[0] == 0
    before = {name: s3.head(name) for name in NAMES}

    dry = run_cli("upload_aws", "--in-dir", small_dataset, "--s3-dir", s3.uri, "--cache-control", "no-cache",
                  "--dry-run", env=cli_env)
    assert dry.code == 0, dry.output
    size = (small_dataset / "genes_all.pmtiles").stat().st_size
    assert f"update   {size:>14,d}  {s3.prefix}/genes_all.pmtiles  (update in place: --cache-control no-cache" \
           " (remote: max-age=60))" in dry.stdout
    assert "0 file(s) to upload (0 B), 3 to update in place" in dry.stdout

    with through_tunnel(cli_env) as (env, tunnel):
        code, output, report = upload(small_dataset, s3, env, "--cache-control", "no-cache")

    assert code == 0, output
    assert set(statuses(report).values()) == {"updated"} and report["totals"]["bytes_uploaded"] == 0
    assert "0 uploaded (0 B), 3 updated in place" in output
    writes = [r for r in parsed_requests(tunnel)
              if r["method"] in ("PUT", "POST") and ".cartload-uploader" not in r["path"]]
    assert len(writes) == 3 and all(r["headers"].get("x-amz-copy-source") and r["headers"]["content-length"] == "0"
                                    for r in writes)  # a server-side copy each: not one byte of the files sent
    for name in NAMES:
        head = s3.head(name)
        assert head["CacheControl"] == "no-cache", name
        # what the run did not ask to change is kept: the storage class, the SHA-256, the Content-Type
        assert head.get("StorageClass") == "STANDARD_IA", name
        # (a big file hashed while it was sent gets its SHA-256 now: a copy's new ETag may vouch for nothing)
        sha256 = hashlib.sha256((small_dataset / name).read_bytes()).hexdigest()
        assert head["Metadata"] == {**before[name]["Metadata"], "sha256": sha256}
        assert head["ContentType"] == before[name]["ContentType"]
        assert s3.get(name) == (small_dataset / name).read_bytes()
    # the new ETag is accepted: the next run finds every object unchanged, by one listing
    code, output, report = upload(small_dataset, s3, cli_env)
    assert code == 0 and set(statuses(report).values()) == {"skipped"}, output


def test_an_acl_given_later_is_set_in_place_and_kept_by_later_updates(small_dataset, s3, cli_env):
    assert upload(small_dataset, s3, cli_env)[0] == 0
    assert public_grants(s3, "info.tsv") == set()

    code, output, report = upload(small_dataset, s3, cli_env, "--acl", "public-read")

    assert code == 0, output
    assert set(statuses(report).values()) == {"updated"}
    assert all(public_grants(s3, name) == {(ALL_USERS, "READ")} for name in NAMES)
    # A copy onto itself would make an object private: an update of another option keeps its ACL.
    code, output, report = upload(small_dataset, s3, cli_env, "--cache-control", "max-age=5")
    assert code == 0 and set(statuses(report).values()) == {"updated"}, output
    for name in NAMES:
        assert s3.head(name)["CacheControl"] == "max-age=5" and public_grants(s3, name) == {(ALL_USERS, "READ")}
    # and the same options again: nothing to do
    code, _, report = upload(small_dataset, s3, cli_env, "--acl", "public-read", "--cache-control", "max-age=5")
    assert code == 0 and set(statuses(report).values()) == {"skipped"}


def test_no_request_waits_for_a_100_continue(small_dataset, s3, cli_env):
    """Every body is held whole and carries its Content-MD5: an 'Expect: 100-continue' would only cost a round
    trip on a WAN (the single PUT, the parts, the catalog)."""
    with through_tunnel(cli_env) as (env, tunnel):
        code, output, _ = upload(small_dataset, s3, env)
    assert code == 0, output
    bodies = [r for r in parsed_requests(tunnel) if r["method"] == "PUT" and int(r["headers"]["content-length"])]
    sent = sorted(r["path"].rsplit("/", 1)[-1] + (" part" if "partNumber" in r["query"] else "") for r in bodies
                  if "/.cartload-uploader/" not in r["path"])  # the lease of the multipart upload aside
    assert sent == [
        "catalog.yaml", "genes_all.pmtiles part", "genes_all.pmtiles part", "info.tsv"], sent
    assert [r["path"] for r in bodies if "expect" in r["headers"]] == []


def test_a_plain_re_run_asks_only_for_the_headers_the_viewer_depends_on(small_dataset, s3, cli_env):
    assert upload(small_dataset, s3, cli_env, "--cache-control", "max-age=60")[0] == 0
    with through_tunnel(cli_env) as (env, tunnel):
        code, output, report = upload(small_dataset, s3, env)
    assert code == 0 and set(statuses(report).values()) == {"skipped"}, output
    lines = request_lines(tunnel)
    assert [line for line in lines if line.startswith("GET") and "list-type=2" in line]  # one listing...
    per_object = sorted(line.split(" ")[0] + " " + name for line in lines for name in NAMES
                        if f"/{s3.prefix}/{name}" in line)
    # ...and a HEAD of the catalog and each archive only (another tool's Content-Encoding would be repaired;
    # nothing for the other files)
    assert per_object == ["HEAD catalog.yaml", "HEAD genes_all.pmtiles"], per_object
    assert [line for line in lines if not line.startswith(("GET", "HEAD"))] == []  # a no-op run writes nothing

    with through_tunnel(cli_env) as (env, tunnel):
        code, output, report = upload(small_dataset, s3, env, "--cache-control", "max-age=60")
    assert code == 0 and set(statuses(report).values()) == {"skipped"}, output
    heads = [line for line in request_lines(tunnel) if line.startswith("HEAD") and f"/{s3.prefix}/" in line]
    assert len(heads) == len(NAMES)  # the option given is compared: a HEAD each


# -- the request payer, on the wire ------------------------------------------------------------------


def test_the_request_payer_goes_with_every_request_that_takes_it(small_dataset, s3, cli_env):
    with through_tunnel(cli_env) as (env, tunnel):
        code, output, _ = upload(small_dataset, s3, env, "--request-payer", "requester")

    assert code == 0, output
    requests = parsed_requests(tunnel)
    # HeadBucket is the one S3 request without a request payer
    bucket_checks = [r for r in requests if r["method"] == "HEAD" and r["path"].rstrip("/") == f"/{s3.bucket}"]
    others = [r for r in requests if r not in bucket_checks]
    kinds = {(r["method"], "uploads" in r["query"], "partNumber" in r["query"], "uploadId" in r["query"])
             for r in others}
    assert {("POST", True, False, False), ("PUT", False, True, True), ("POST", False, False, True),
            ("PUT", False, False, False), ("GET", False, False, False)} <= kinds
    assert others and all(r["headers"].get("x-amz-request-payer") == "requester" for r in others), [
        (r["method"], r["path"], r["query"]) for r in others if r["headers"].get("x-amz-request-payer") != "requester"]
    assert s3.names() == NAMES


# -- against moto's server: an ACL sent with uploads, and SSE-KMS (SeaweedFS keeps neither) ---------------


@pytest.fixture(scope="module")
def moto_server(s3_server: S3Server) -> Iterator[S3Server]:
    if s3_server.kind == "moto":
        yield s3_server
        return
    with MotoServer() as server:
        server.client().create_bucket(Bucket="cartload-moto")
        yield S3Server(server.endpoint_url, s3_server.admin, None, "cartload-moto", "moto")


@pytest.fixture
def moto_s3(moto_server: S3Server, cli_env: dict[str, str]) -> tuple[S3Prefix, dict[str, str]]:
    return S3Prefix(moto_server), cli_env | {"AWS_ENDPOINT_URL_S3": moto_server.endpoint_url}


def test_an_acl_sent_with_uploads_is_stored_and_kept_when_another_option_changes(small_dataset, moto_s3):
    s3, env = moto_s3
    code, output, _ = upload(small_dataset, s3, env, "--acl", "public-read")

    assert code == 0, output
    assert all(public_grants(s3, name) == {(ALL_USERS, "READ")} for name in NAMES)

    # A copy onto itself is private unless told otherwise (AWS, moto): the object's ACL is given again.
    code, output, report = upload(small_dataset, s3, env, "--cache-control", "max-age=30")

    assert code == 0 and set(statuses(report).values()) == {"updated"}, output
    for name in NAMES:
        assert s3.head(name)["CacheControl"] == "max-age=30" and public_grants(s3, name) == {(ALL_USERS, "READ")}


KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KEY_ID = "0987dcba-09fe-87dc-65ba-ab0987654321"


def test_sse_kms_with_a_key_is_stored_and_a_new_key_re_encrypts_in_place(small_dataset, moto_s3):
    s3, env = moto_s3
    kms = ("--sse", "aws:kms", "--acl", "private")  # --acl: see the module's note on moto
    code, output, _ = upload(small_dataset, s3, env, *kms, "--sse-kms-key-id", KEY_ID)

    assert code == 0, output
    for name in NAMES:
        head = s3.head(name)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", KEY_ID), name

    code, output, report = upload(small_dataset, s3, env, *kms, "--sse-kms-key-id", OTHER_KEY_ID)

    assert code == 0 and set(statuses(report).values()) == {"updated"}, output
    assert {s3.head(name)["SSEKMSKeyId"] for name in NAMES} == {OTHER_KEY_ID}
    assert all(s3.get(name) == (small_dataset / name).read_bytes() for name in NAMES)


# -- --delete --------------------------------------------------------------------------------------------


def test_delete_removes_what_the_catalog_does_not_name_and_nothing_else(small_dataset, s3, cli_env):
    assert upload(small_dataset, s3, cli_env)[0] == 0
    put = lambda key, body=b"x": s3.client.put_object(Bucket=s3.bucket, Key=key, Body=body)  # noqa: E731
    for name in ("old_layer.pmtiles", "tmp/t18.hex.tsv", "nested/catalog.yaml", "nested/genes_all.pmtiles"):
        put(f"{s3.prefix}/{name}")
    own = ".cartload-uploader-lease"  # the tool's own keys under the prefix (a run's lease, issue 19)
    put(f"{s3.prefix}/{own}")
    outside = [f"{s3.prefix}-backup/genes_all.pmtiles", f"{s3.prefix}.tsv", f"elsewhere/{s3.prefix}/x.tsv"]
    for key in outside:
        put(key)

    dry = run_cli("upload_aws", "--in-dir", small_dataset, "--s3-dir", s3.uri, "--delete", "--dry-run", env=cli_env)

    assert dry.code == 0, dry.output
    deletions = [line.split()[2] for line in dry.stdout.splitlines() if line.startswith("delete")]
    assert deletions == [f"{s3.prefix}/old_layer.pmtiles", f"{s3.prefix}/tmp/t18.hex.tsv"]
    assert "(not named by the catalog (--delete): deleted once the catalog is published)" in dry.stdout
    assert "old_layer.pmtiles" in s3.names()

    code, output, report = upload(small_dataset, s3, cli_env, "--delete")

    assert code == 0, output
    # kept: a dataset nested there (its own catalog), and the tool's own keys
    assert s3.names() == NAMES | {"nested/catalog.yaml", "nested/genes_all.pmtiles", own}
    assert {statuses(report)[f"{s3.prefix}/{name}"] for name in ("old_layer.pmtiles", "tmp/t18.hex.tsv")} == \
        {"deleted"}
    for key in outside:
        s3.client.head_object(Bucket=s3.bucket, Key=key)  # still there
    assert "2 deleted" in output


def test_delete_with_a_partial_upload_is_refused_before_anything_is_sent(small_dataset, s3, cli_env):
    result = run_cli("upload_aws", "--in-dir", small_dataset, "--s3-dir", s3.uri, "--delete", "--upload-basics-only",
                     env=cli_env)
    assert result.code == 2 and "--delete cannot be used with --upload-basics-only" in result.stderr
    assert s3.names() == set()


# -- recording the wire -----------------------------------------------------------------------------------


@contextmanager
def through_tunnel(env: dict[str, str]) -> Iterator[tuple[dict[str, str], RecordingTunnel]]:
    """The endpoint reached through a recording TCP pass-through (both engines send through it)."""
    port = urlsplit(env["AWS_ENDPOINT_URL_S3"]).port
    assert port is not None
    tunnel = RecordingTunnel(port)
    try:
        yield env | {"AWS_ENDPOINT_URL_S3": tunnel.url}, tunnel
    finally:
        tunnel.close()


REQUEST_LINE = re.compile(rb"(GET|PUT|POST|HEAD|DELETE|OPTIONS) (\S+) HTTP/1\.1\r\n")


def parsed_requests(tunnel: RecordingTunnel) -> list[dict[str, Any]]:
    """Every request the client sent: method, path, query, headers (lower-case); bodies skipped."""
    requests = []
    for sent in tunnel.connections:
        data, position = bytes(sent), 0
        while (match := REQUEST_LINE.match(data, position)) is not None:
            head_end = data.index(b"\r\n\r\n", match.end())
            headers = {}
            for line in data[match.end():head_end].decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            path, _, query = match.group(2).decode().partition("?")
            requests.append({"method": match.group(1).decode(), "path": path, "query": query, "headers": headers})
            position = head_end + 4 + int(headers.get("content-length", "0"))
        assert position == len(data), f"a request not understood: {data[position:position + 200]!r}"
    return requests


def request_lines(tunnel: RecordingTunnel) -> list[str]:
    return [f"{r['method']} {r['path']}" + (f"?{r['query']}" if r["query"] else "") for r in parsed_requests(tunnel)]

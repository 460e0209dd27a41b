"""The viewer link and the check that the web viewer can read an upload, and --setup-viewer-access.

End-to-end tests run the real command line against the real local S3
server (SeaweedFS, which honours bucket policies and CORS rules) in a bucket
of their own, then send their own anonymous requests, as a browser on the
viewer's origin would, to see what the viewer will get. SeaweedFS answers
CORS for any origin until a bucket has a rule, so the CORS failure is made
with a rule for another origin. Unit tests cover what SeaweedFS does not
have (Block Public Access, AWS URLs) through botocore's Stubber.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.stub import Stubber

from tests.conftest import S3Prefix, S3Server, run_cli, two_sample_collection
from uploader.s3.viewer import ViewerCheck, ViewerSettings
from uploader.s3.viewer_access import POLICY_SID, merged_cors, merged_policy

ORIGIN = "https://v3o-main.carto-scope.org"
LAB_RULE = {"ID": "lab", "AllowedOrigins": ["https://lab.example.org"], "AllowedMethods": ["GET"],
            "AllowedHeaders": ["*"]}
LAB_STATEMENT = {"Sid": "LabRead", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::123456789012:root"]},
                 "Action": "s3:GetObject", "Resource": "arn:aws:s3:::lab-bucket/lab/*"}


# -- merging with what a bucket already has ----------------------------------------------------------


def test_the_viewer_rule_goes_first_and_every_existing_rule_stays():
    merged = merged_cors([LAB_RULE], ORIGIN)
    assert merged is not None
    assert merged[0] == {"ID": "cartload-uploader-viewer", "AllowedOrigins": [ORIGIN],
                         "AllowedMethods": ["GET", "HEAD"], "AllowedHeaders": ["Range", "If-Match"],
                         "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 3000}
    assert merged[1:] == [LAB_RULE]


def test_a_rule_that_already_serves_the_viewer_is_enough():
    wildcard = {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "HEAD"], "AllowedHeaders": ["*"],
                "ExposeHeaders": ["ETag", "Content-Length"]}
    assert merged_cors([wildcard], ORIGIN) is None
    assert merged_cors([{**wildcard, "ExposeHeaders": []}], ORIGIN) is not None  # ETag must be exposed
    # An earlier rule for the origin that lacks ETag would win over a later one: ours goes before it.
    partial = {"AllowedOrigins": [ORIGIN], "AllowedMethods": ["GET"], "AllowedHeaders": ["*"]}
    assert merged_cors([partial, wildcard], ORIGIN)[0]["ID"] == "cartload-uploader-viewer"  # type: ignore[index]


def test_public_read_is_added_for_the_dataset_prefix_only_and_existing_statements_stay():
    policy = {"Version": "2012-10-17", "Id": "lab-policy", "Statement": [LAB_STATEMENT]}
    merged = merged_policy(policy, "lab-bucket", ["data/lung-1"])
    assert merged == {"Version": "2012-10-17", "Id": "lab-policy", "Statement": [
        LAB_STATEMENT,
        {"Sid": POLICY_SID, "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": ["arn:aws:s3:::lab-bucket/data/lung-1/*"]},
    ]}
    again = merged_policy(merged, "lab-bucket", ["data/lung-2"])  # another dataset joins the same statement
    assert again is not None
    assert again["Statement"][1]["Resource"] == ["arn:aws:s3:::lab-bucket/data/lung-1/*",
                                                 "arn:aws:s3:::lab-bucket/data/lung-2/*"]
    assert merged_policy(again, "lab-bucket", ["data/lung-1"]) is None


def test_a_broader_public_statement_already_covers_the_prefix():
    public = {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["s3:Get*"], "Resource": "arn:aws:s3:::b/*"}
    assert merged_policy({"Statement": public}, "b", ["data/lung-1"]) is None
    conditional = {**public, "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}
    assert merged_policy({"Statement": [conditional]}, "b", ["data/lung-1"]) is not None


# -- links and URLs ----------------------------------------------------------------------------------


@pytest.fixture
def no_aws_env(monkeypatch):
    """None of this machine's AWS_* settings (an endpoint in AWS_ENDPOINT_URL_S3 would change every URL)."""
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")


def aws_client(region: str = "eu-west-1", endpoint_url: str | None = None, style: str = "auto") -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", region_name=region, endpoint_url=endpoint_url, aws_access_key_id="k",
                        aws_secret_access_key="s", config=Config(s3={"addressing_style": style}))


def viewer_check(client: Any, bucket: str = "lab-bucket", prefix: str = "data", **options: Any) -> ViewerCheck:
    from uploader.s3.destination import S3Destination

    return ViewerCheck(client, S3Destination(bucket, prefix), ViewerSettings(**options))


def test_the_viewer_link_and_the_catalog_url_on_aws(no_aws_env):
    client = aws_client()
    check = viewer_check(client)
    with Stubber(client) as stub:  # the bucket lives in another region than the client's
        stub.add_response("head_bucket", {"ResponseMetadata": {"HTTPHeaders": {"x-amz-bucket-region": "us-west-2"}}},
                          {"Bucket": "lab-bucket"})
        assert check.object_url("data/lung 1/catalog.yaml") == \
            "https://lab-bucket.s3.us-west-2.amazonaws.com/data/lung%201/catalog.yaml"
    assert check.viewer_link("data/lung-1") == \
        "https://v3o-main.carto-scope.org/dataset?uri=s3%2Flab-bucket%2Fdata%2Flung-1"
    other = viewer_check(aws_client(), url="https://viewer.example.org/open?dataset=")
    assert other.viewer_link("x") == "https://viewer.example.org/open?dataset=s3%2Flab-bucket%2Fx"


def test_a_bucket_with_dots_is_read_path_style_over_https(no_aws_env):
    client = aws_client("us-east-1")
    check = viewer_check(client, bucket="lab.data")
    with Stubber(client) as stub:
        stub.add_response("head_bucket", {}, {"Bucket": "lab.data"})
        assert check.object_url("x/catalog.yaml") == "https://s3.us-east-1.amazonaws.com/lab.data/x/catalog.yaml"


def test_the_catalog_url_on_an_s3_compatible_store_has_the_endpoints_form(no_aws_env):
    assert viewer_check(aws_client(endpoint_url="https://s3.lab.org", style="path")).object_url("d/c.yaml") == \
        "https://s3.lab.org/lab-bucket/d/c.yaml"
    assert viewer_check(aws_client(endpoint_url="https://s3.lab.org", style="virtual")).object_url("d/c.yaml") == \
        "https://lab-bucket.s3.lab.org/d/c.yaml"


# -- Block Public Access (AWS; SeaweedFS does not implement it) ----------------------------------------


def test_setup_says_when_block_public_access_forbids_the_policy(no_aws_env):
    client = aws_client()
    check = viewer_check(client)
    with Stubber(client) as stub:
        stub.add_client_error("get_bucket_policy", "NoSuchBucketPolicy")
        stub.add_response("get_public_access_block", {"PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True}}, {"Bucket": "lab-bucket"})
        line = check.access._set_up_policy(["data"])  # no put_bucket_policy is stubbed: it must not be called
        stub.assert_no_pending_responses()
    assert "Block Public Access on this bucket forbids a public policy" in line
    assert ("aws s3api put-public-access-block --bucket lab-bucket --public-access-block-configuration"
            " BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=false,RestrictPublicBuckets=false") in line


def test_setup_reports_a_policy_refused_by_the_account_wide_block(no_aws_env):
    client = aws_client()
    check = viewer_check(client)
    with Stubber(client) as stub:
        stub.add_client_error("get_bucket_policy", "NoSuchBucketPolicy")
        stub.add_client_error("get_public_access_block", "NoSuchPublicAccessBlockConfiguration")
        stub.add_client_error("put_bucket_policy", "AccessDenied", "User: x is not authorized to perform:"
                              " s3:PutBucketPolicy because public policies are blocked by the BlockPublicPolicy"
                              " block public access setting.", 403)
        line = check.access._set_up_policy(["data"])
    assert "Block Public Access forbids it" in line and "BlockPublicPolicy" in line


def test_the_viewer_opens_the_samples_not_the_collection_root_each_with_its_archive(tmp_path):
    from tests.cartloader_collection import make_collection
    from uploader.engine.operations import Action, Operation, Status
    from uploader.local.plan import Shard, plan_collection
    from uploader.local.shards import take_share
    from uploader.s3.destination import S3Destination
    from uploader.s3.viewer import published_datasets

    collection = make_collection(tmp_path / "mydataset")
    # One worker of two: each sample is sent whole by one of them, so one of the samples is all another's.
    plan = take_share(plan_collection(collection.root, collection.in_list), Shard(2, 2))
    destination = S3Destination("lab-bucket", "data")
    ops = [Operation(Action.UPLOAD, d, d.catalog, destination.key(d, d.catalog.name), "new", is_catalog=True,
                     status=Status.UPLOADED) for d in plan.datasets if d.catalog]

    found = published_datasets(ops, destination)

    assert [p.name for p in found] == ["mydataset-s1", "mydataset-s2"]  # multi-catalog.yaml is no viewer dataset
    for sample, published in zip(("mydataset-s1", "mydataset-s2"), found, strict=True):  # every archive it names
        assert f"data/{sample}/genes_all.pmtiles" in [archive.key for archive in published.archives]
        assert all(archive.key.startswith(f"data/{sample}/") for archive in published.archives)


# -- end to end against the local S3 server -------------------------------------------------------------


@pytest.fixture
def bucket(s3_server: S3Server) -> S3Prefix:
    """A prefix in a bucket of its own: bucket CORS rules and policies must not leak between tests."""
    prefix = S3Prefix(s3_server)
    prefix.bucket = f"viewer-{uuid.uuid4().hex[:12]}"
    prefix.client.create_bucket(Bucket=prefix.bucket)
    return prefix


def url_of(s3_server: S3Server, bucket: S3Prefix, name: str) -> str:
    return f"{s3_server.endpoint_url}/{bucket.bucket}/{bucket.prefix}/{name}"


def upload(dataset: Path, bucket: S3Prefix, env: dict[str, str], *extra: str) -> tuple[Any, dict[str, Any]]:
    report = dataset.parent / f"report-{uuid.uuid4().hex[:6]}.json"
    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", bucket.uri, "--report", report, *extra, env=env)
    return result, json.loads(report.read_text()) if report.exists() else {}


def as_browser(method: str, url: str, **headers: str) -> requests.Response:
    return requests.request(method, url, headers={"Origin": ORIGIN, **headers}, timeout=30)


@pytest.mark.e2e
def test_link_printed_and_public_read_failure_explained_with_the_exact_fix(dataset, bucket, cli_env, s3_server):
    result, report = upload(dataset, bucket, cli_env)

    assert result.code == 0, result.output  # the data is safe: the upload itself succeeded
    link = f"https://v3o-main.carto-scope.org/dataset?uri=s3%2F{bucket.bucket}%2F{bucket.prefix}"
    assert f"viewer: {link}" in result.stderr
    assert f"catalog URL: {url_of(s3_server, bucket, 'catalog.yaml')}" in result.stderr
    assert "FAILED  public read     GET catalog.yaml -> 403" in result.stderr
    assert ("FAILED  range read      GET genes_all.pmtiles, genes_bin1.pmtiles, genes_bin2.pmtiles and 6 more"
            " archive(s) with Range -> 403") in result.stderr
    policy_line = next(line for line in result.stderr.splitlines() if "put-bucket-policy" in line)
    assert f"arn:aws:s3:::{bucket.bucket}/{bucket.prefix}/*" in policy_line
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("uploaded, but the viewer cannot read it yet: anonymous reads are denied (403)")
    assert report["ok"] is True and report["viewer_ready"] is False
    assert report["viewer"]["datasets"][0]["viewer_link"] == link
    assert any("public read" in failure for failure in report["viewer"]["failures"])
    assert as_browser("GET", url_of(s3_server, bucket, "catalog.yaml")).status_code == 403  # what the viewer gets

    # The fix the tool printed is exact: applied as printed (by boto3 here, no aws cli), the check passes.
    policy = json.loads(policy_line.split("--policy '")[1].split("'")[0])
    bucket.client.put_bucket_policy(Bucket=bucket.bucket, Policy=json.dumps(policy))
    result, report = upload(dataset, bucket, cli_env)
    assert result.code == 0 and report["viewer_ready"] is True, result.output


@pytest.mark.e2e
def test_cors_for_another_origin_fails_the_check_and_require_ready_exits_5(dataset, bucket, cli_env):
    bucket.client.put_bucket_cors(Bucket=bucket.bucket, CORSConfiguration={"CORSRules": [LAB_RULE]})

    result, report = upload(dataset, bucket, cli_env, "--require-viewer-ready")

    assert result.code == 5, result.output
    assert "FAILED  CORS on GET" in result.stderr  # what current browsers need
    assert "warn    CORS preflight" in result.stderr  # older browsers, which preflight Range: weakened, not more
    cors_line = next(line for line in result.stderr.splitlines() if "put-bucket-cors" in line)
    rules = json.loads(cors_line.split("--cors-configuration '")[1].split("'")[0])["CORSRules"]
    assert rules[0]["AllowedOrigins"] == [ORIGIN] and rules[0]["ExposeHeaders"] == ["ETag"]
    assert rules[1]["ID"] == "lab"  # the bucket's own rule is kept
    assert "CORS does not let the viewer read it" in result.stderr.strip().splitlines()[-1]
    assert report["ok"] is True and report["viewer_ready"] is False
    assert bucket.names() >= {"catalog.yaml", "genes_all.pmtiles"}  # uploaded all the same


@pytest.mark.e2e
def test_setup_viewer_access_merges_and_then_a_browser_can_read(dataset, bucket, cli_env, s3_server):
    bucket.client.put_bucket_cors(Bucket=bucket.bucket, CORSConfiguration={"CORSRules": [LAB_RULE]})
    lab = {**LAB_STATEMENT, "Resource": f"arn:aws:s3:::{bucket.bucket}/lab/*"}
    bucket.client.put_bucket_policy(Bucket=bucket.bucket, Policy=json.dumps({"Version": "2012-10-17",
                                                                              "Statement": [lab]}))
    bucket.client.put_object(Bucket=bucket.bucket, Key="private/notes.txt", Body=b"not for the viewer")

    result, report = upload(dataset, bucket, cli_env, "--setup-viewer-access", "--require-viewer-ready")

    assert result.code == 0, result.output
    assert report["viewer_ready"] is True and report["viewer"]["failures"] == []
    assert "viewer access: added a CORS rule for https://v3o-main.carto-scope.org" in result.stderr
    assert "uploaded, but" not in result.stderr
    rules = bucket.client.get_bucket_cors(Bucket=bucket.bucket)["CORSRules"]
    assert [rule.get("ID") for rule in rules] == ["cartload-uploader-viewer", "lab"]
    statements = json.loads(bucket.client.get_bucket_policy(Bucket=bucket.bucket)["Policy"])["Statement"]
    assert statements[0] == lab
    ours = f"arn:aws:s3:::{bucket.bucket}/{bucket.prefix}/*"
    assert statements[1]["Sid"] == POLICY_SID and statements[1]["Resource"] in ([ours], ours)  # SeaweedFS unlists one
    # What the viewer gets, asked independently of the tool:
    catalog = as_browser("GET", url_of(s3_server, bucket, "catalog.yaml"))
    assert catalog.status_code == 200 and catalog.content == (dataset / "catalog.yaml").read_bytes()
    tiles = as_browser("GET", url_of(s3_server, bucket, "genes_all.pmtiles"), Range="bytes=0-126")
    size = (dataset / "genes_all.pmtiles").stat().st_size
    assert tiles.status_code == 206 and tiles.headers["Content-Range"] == f"bytes 0-126/{size}"
    assert tiles.headers["Access-Control-Allow-Origin"] == ORIGIN and "ETag" in tiles.headers[
        "Access-Control-Expose-Headers"]
    preflight = as_browser("OPTIONS", url_of(s3_server, bucket, "genes_all.pmtiles"),
                           **{"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "range"})
    assert preflight.status_code == 200 and preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    # Public read stops at the dataset prefix.
    assert requests.get(f"{s3_server.endpoint_url}/{bucket.bucket}/private/notes.txt", timeout=30).status_code == 403

    again, _ = upload(dataset, bucket, cli_env, "--setup-viewer-access")  # nothing added twice
    assert "CORS already allows" in again.stderr and "already lets anyone read" in again.stderr
    assert len(bucket.client.get_bucket_cors(Bucket=bucket.bucket)["CORSRules"]) == 2


@pytest.mark.e2e
def test_quiet_prints_only_errors_the_fixes_are_in_the_report(dataset, bucket, cli_env):
    result, report = upload(dataset, bucket, cli_env, "--quiet")

    assert result.code == 0, result.output
    assert result.stderr == ""  # a check that is not enforced fails no run: not an error
    assert report["viewer"]["fixes"][0].startswith("fix public read:")

    enforced, _ = upload(dataset, bucket, cli_env, "--quiet", "--require-viewer-ready")

    assert enforced.code == 5, enforced.output
    lines = enforced.stderr.strip().splitlines()
    assert lines[0].startswith("fix public read:") and "put-bucket-policy" in lines[1]
    assert lines[-1].startswith("uploaded, but the viewer cannot read it yet")
    assert "viewer check (" not in enforced.stderr and "viewer: " not in enforced.stderr


@pytest.mark.e2e
def test_no_viewer_check_prints_the_link_and_sends_no_check(dataset, bucket, cli_env):
    result, report = upload(dataset, bucket, cli_env, "--no-viewer-check")

    assert result.code == 0, result.output
    assert "viewer: https://v3o-main.carto-scope.org/dataset?uri=" in result.stderr
    assert "viewer check" not in result.stderr and "uploaded, but" not in result.stderr
    assert report["viewer_ready"] is None


@pytest.mark.e2e
def test_collection_mode_prints_one_link_per_sample(tmp_path, dataset, bucket, cli_env, s3_server):
    parent = two_sample_collection(tmp_path, dataset)
    (tmp_path / "samples.tsv").write_text("Sample_A\nSample_B\n")

    result = run_cli("upload_aws", "--in-dir", parent, "--s3-dir", bucket.uri, "--in-list", tmp_path / "samples.tsv",
                     "--setup-viewer-access", env=cli_env)

    assert result.code == 0, result.output
    lines = result.stderr.splitlines()
    for sample in ("humanlung-demo", "sample-b"):
        link = f"https://v3o-main.carto-scope.org/dataset?uri=s3%2F{bucket.bucket}%2F{bucket.prefix}%2F{sample}"
        catalog_url = f"{s3_server.endpoint_url}/{bucket.bucket}/{bucket.prefix}/{sample}/catalog.yaml"
        assert f"viewer {sample}: {link}  (catalog: {catalog_url})" in lines  # one line per sample
        assert requests.get(catalog_url, timeout=30).status_code == 200
    assert "FAILED" not in result.stderr


@pytest.mark.e2e
@pytest.mark.parametrize(("args", "phrase"), [
    (["--no-viewer-check", "--require-viewer-ready"], "exclude each other"),
    (["--viewer-url", "v3o-main.carto-scope.org"], "--viewer-url"),
])
def test_bad_viewer_options_exit_2(dataset, bucket, cli_env, args, phrase):
    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", bucket.uri, *args, env=cli_env)
    assert result.code == 2 and phrase in result.stderr
    assert bucket.names() == set()


def test_a_browser_request_that_gets_no_answer_says_so_in_one_line():
    import socket

    from uploader.s3.viewer_reads import send

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens once it is closed
    refused = send("GET", f"http://127.0.0.1:{port}/b/catalog.yaml", {}, timeout=2)
    assert refused.status == 0 and refused.error == f"no answer from 127.0.0.1:{port}: EndpointConnectionError"

    with socket.socket() as silent:  # accepts the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        stalled = send("GET", f"http://127.0.0.1:{port}/b/catalog.yaml", {}, timeout=0.3)
    assert stalled.status == 0 and stalled.error == f"no answer from 127.0.0.1:{port}: ReadTimeoutError"


def test_a_browser_request_reads_a_bounded_body_and_follows_no_redirect():
    import http.server
    import threading

    from uploader.local.catalog import MAX_CATALOG_BYTES
    from uploader.s3.viewer_reads import send

    class Store(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/moved":
                self.send_response(301)
                self.send_header("Location", "/b/catalog.yaml")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b"x" * (3 * MAX_CATALOG_BYTES)  # a store that ignores Range sends everything
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Seen-Authorization", self.headers.get("Authorization", "none"))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Store)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        whole = send("GET", f"{base}/b/catalog.yaml", {"Range": "bytes=0-126"}, timeout=5)
        moved = send("GET", f"{base}/moved", {}, timeout=5)
    finally:
        server.shutdown()
    assert whole.status == 200 and len(whole.body) == MAX_CATALOG_BYTES + 1
    assert whole.header("x-seen-authorization") == "none"  # anonymous, as a browser
    assert moved.status == 301 and moved.header("location") == "/b/catalog.yaml"


# -- what blocks reading and what only weakens it (as a real browser showed: tests/browser/) -------------


def test_what_blocks_a_browser_fails_and_what_only_weakens_it_warns():
    from tests.pmtiles_files import pmtiles_bytes
    from uploader.s3.viewer_reads import Answer, archive_reads, cors_on_get, preflight

    archive = pmtiles_bytes(b"tile")
    size = len(archive)

    def ranged(**headers: str) -> Answer:
        return Answer(206, {"Content-Range": f"bytes 0-126/{size}", "Access-Control-Allow-Origin": ORIGIN,
                            "Access-Control-Expose-Headers": "ETag", "ETag": '"e"', **headers}, archive[:127])

    def verdicts(answer: Answer) -> list[tuple[str, str]]:
        return [(check.label, check.needs) for check in archive_reads("", [("a.pmtiles", size,
                                                                            "application/vnd.pmtiles", answer)])]

    assert verdicts(ranged()) == [("ok", "")]
    assert verdicts(ranged(**{"Content-Encoding": "gzip"})) == [("FAILED", "repair")]
    assert verdicts(ranged(**{"Content-Range": f"bytes 0-126/{size - 9}"})) == [("FAILED", "repair")]
    assert verdicts(Answer(403, {})) == [("FAILED", "policy")]
    assert verdicts(ranged(**{"Content-Type": "text/html"})) == [("ok", ""), ("warn", "")]

    no_etag = ranged(**{"Access-Control-Expose-Headers": ""})
    [weak] = cors_on_get("", ORIGIN, [("a.pmtiles", no_etag)])
    assert (weak.ok, weak.warning) == (True, True) and "cannot notice an archive replaced" in weak.detail
    [refused] = cors_on_get("", ORIGIN, [("a.pmtiles", ranged(**{"Access-Control-Allow-Origin": "https://x.org"}))])
    assert (refused.ok, refused.needs) == (False, "cors")

    without_range = Answer(200, {"Access-Control-Allow-Origin": ORIGIN, "Access-Control-Allow-Methods": "GET, HEAD",
                                 "Access-Control-Allow-Headers": "if-match"})
    older = preflight("", "a.pmtiles", ORIGIN, without_range)
    assert (older.ok, older.warning) == (True, True) and "older browsers that still preflight Range" in older.detail

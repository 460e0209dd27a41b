"""The viewer check's verdict equals what a real browser on the viewer's origin can read, bucket state by bucket state.

Each case publishes the example dataset with the real entrypoint into a
bucket of its own on the real local S3 server (SeaweedFS), changes the
bucket or an object as a lab or another tool would, then runs `upload_aws
--require-viewer-ready --report` and opens the dataset in headless
Chromium with the pmtiles library (tests/browser/oracle.py). The tool's
`viewer_ready` (and exit 5 when not ready) must equal "the browser read
the catalog and the header and a tile of every archive it names".

SeaweedFS answers CORS for any origin while a bucket has no CORS rule at
all: a refusal is made with a rule for another origin.

An object broken by another tool (a Content-Encoding, a truncated copy,
another Content-Type) is first judged by a run that does not send it
(`--upload-optional-only`: the archive is one of the basic files), which
leaves it as it is; then a full re-run must repair it, say so, and the
browser read it.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser.oracle import Browser, BrowserRead
from tests.conftest import CliResult, S3Prefix, S3Server, run_cli

pytestmark = pytest.mark.e2e

ORIGIN = "https://v3o-main.carto-scope.org"
LAB_RULE = {"ID": "lab", "AllowedOrigins": ["https://lab.example.org"], "AllowedMethods": ["GET"],
            "AllowedHeaders": ["*"]}
MATRIX: list[tuple[str, str, str, str]] = []  # (case, browser, tool, seconds): printed at the end of the run


@dataclass
class Bucket:
    """A dataset published to a bucket of its own, and the means to change it as others would."""

    prefix: S3Prefix
    dataset: Path
    env: dict[str, str]
    endpoint_url: str

    @property
    def name(self) -> str:
        return self.prefix.bucket

    @property
    def client(self) -> Any:
        return self.prefix.client

    def catalog_url(self, prefix: str | None = None) -> str:
        return f"{self.endpoint_url}/{self.name}/{prefix or self.prefix.prefix}/catalog.yaml"

    def upload(self, *extra: str, prefix: str | None = None, dataset: Path | None = None
               ) -> tuple[CliResult, dict[str, Any]]:
        report = self.dataset.parent / f"report-{uuid.uuid4().hex[:6]}.json"
        target = f"s3://{self.name}/{prefix or self.prefix.prefix}"
        result = run_cli("upload_aws", "--in-dir", dataset or self.dataset, "--s3-dir", target, "--report", report,
                         "--no-markers", *extra, env=self.env)
        return result, json.loads(report.read_text())

    def set_up(self) -> None:
        result, report = self.upload("--setup-viewer-access")
        assert result.code == 0 and report["viewer_ready"] is True, result.output

    def cors(self, *rules: dict[str, Any]) -> None:
        self.client.put_bucket_cors(Bucket=self.name, CORSConfiguration={"CORSRules": list(rules)})

    def public_read_of(self, prefix: str) -> None:
        self.client.put_bucket_policy(Bucket=self.name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
             "Resource": f"arn:aws:s3:::{self.name}/{prefix}/*"}]}))

    def put_as_another_tool(self, name: str, body: bytes | None = None, **headers: str) -> None:
        """What `aws s3 cp` stores: the bytes given (default: the local file's) and the headers given."""
        data = body if body is not None else (self.dataset / name).read_bytes()
        self.client.put_object(Bucket=self.name, Key=f"{self.prefix.prefix}/{name}", Body=data, **headers)


@pytest.fixture
def bucket(s3_server: S3Server, dataset: Path, cli_env: dict[str, str]) -> Bucket:
    prefix = S3Prefix(s3_server)
    prefix.bucket = f"oracle-{uuid.uuid4().hex[:12]}"
    prefix.client.create_bucket(Bucket=prefix.bucket)
    return Bucket(prefix, dataset, cli_env, s3_server.endpoint_url)


def viewer_rule(**changes: Any) -> dict[str, Any]:
    rule = {"ID": "cartload-uploader-viewer", "AllowedOrigins": [ORIGIN], "AllowedMethods": ["GET", "HEAD"],
            "AllowedHeaders": ["Range", "If-Match"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 3000}
    return {key: value for key, value in {**rule, **changes}.items() if value is not None}


# -- the bucket states: each leaves the bucket as a lab or another tool would ---------------------------


def private(bucket: Bucket) -> None:
    """Uploaded with no public read at all (the tool's first run on a private bucket)."""


def set_up(bucket: Bucket) -> None:
    bucket.set_up()


def cors_for_another_site_only(bucket: Bucket) -> None:
    bucket.set_up()
    bucket.cors(LAB_RULE)


def prefix_not_public(bucket: Bucket) -> None:
    bucket.set_up()
    bucket.public_read_of("some-other-dataset")


def viewer_rule_removed_after_set_up(bucket: Bucket) -> None:
    bucket.cors(LAB_RULE)
    bucket.set_up()  # ours goes before the lab's
    bucket.cors(LAB_RULE)


def cors_configuration_deleted_after_set_up(bucket: Bucket) -> None:
    bucket.set_up()
    bucket.client.delete_bucket_cors(Bucket=bucket.name)  # SeaweedFS then answers any origin


def a_second_prefix_set_up(bucket: Bucket) -> None:
    bucket.set_up()
    second = bucket.dataset.parent / "second" / bucket.dataset.name
    shutil.copytree(bucket.dataset, second)
    result, report = bucket.upload("--setup-viewer-access", prefix="second-dataset", dataset=second)
    assert result.code == 0 and report["viewer_ready"] is True, result.output


def cors_without_range(bucket: Bucket) -> None:
    bucket.set_up()
    bucket.cors(viewer_rule(AllowedHeaders=["If-Match"]))


def cors_exposing_no_etag(bucket: Bucket) -> None:
    bucket.set_up()
    bucket.cors(viewer_rule(ExposeHeaders=None))


def gzip_content_encoding_by_another_tool(bucket: Bucket) -> None:
    bucket.set_up()  # `aws s3 cp --content-encoding gzip`: the bytes are not compressed
    bucket.put_as_another_tool("genes_bin1.pmtiles", ContentEncoding="gzip", ContentType="application/vnd.pmtiles")


def truncated_archive_by_another_tool(bucket: Bucket) -> None:
    bucket.set_up()
    whole = (bucket.dataset / "genes_bin2.pmtiles").read_bytes()
    bucket.put_as_another_tool("genes_bin2.pmtiles", whole[:-4096], ContentType="application/vnd.pmtiles")


def served_as_text_html(bucket: Bucket) -> None:
    bucket.set_up()
    bucket.put_as_another_tool("genes_all.pmtiles", ContentType="text/html")


@dataclass(frozen=True)
class Case:
    arrange: Callable[[Bucket], None]
    readable: bool  # what the browser is expected to get: the test fails when the browser itself surprises
    judged_by: tuple[str, ...] = ()  # the run whose verdict is compared (default: a plain re-run)
    repaired: str = ""  # broken by another tool: the archive a full re-run must repair
    repair: str = ""  # what the re-run says it does to it
    warns: str = ""  # reads, weakened: the warning the tool gives (its consequence), not a failure


CASES = {
    "set up": Case(set_up, True),
    "private": Case(private, False),
    "CORS for another site only": Case(cors_for_another_site_only, False),
    "prefix not public": Case(prefix_not_public, False),
    "viewer CORS rule removed after set-up (lab's rule stays)": Case(viewer_rule_removed_after_set_up, False),
    "CORS configuration deleted after set-up": Case(cors_configuration_deleted_after_set_up, True),
    "a second prefix set up": Case(a_second_prefix_set_up, True),
    "CORS rule without Range in AllowedHeaders": Case(
        cors_without_range, True, warns="older browsers that still preflight Range cannot"),
    "CORS rule exposing no ETag": Case(
        cors_exposing_no_etag, True, warns="cannot notice an archive replaced while a page has it open"),
    "archive stored with Content-Encoding: gzip by another tool": Case(
        gzip_content_encoding_by_another_tool, False, ("--upload-optional-only",), "genes_bin1.pmtiles",
        "updated in place: {key}: Content-Encoding none (remote: gzip)"),
    "archive truncated by another tool (header points past its end)": Case(
        truncated_archive_by_another_tool, False, ("--upload-optional-only",), "genes_bin2.pmtiles",
        "uploaded {key}"),
    "archive stored as Content-Type: text/html": Case(
        served_as_text_html, True, ("--upload-optional-only",), "genes_all.pmtiles",
        "updated in place: {key}: Content-Type application/vnd.pmtiles (remote: text/html)",
        "Content-Type text/html, published as application/vnd.pmtiles"),
}


def verdict(bucket: Bucket, *extra: str) -> tuple[bool | None, CliResult, list[str]]:
    """The tool's verdict: viewer_ready in the report, and exit 5 with --require-viewer-ready exactly when not;
    and its warnings."""
    result, report = bucket.upload("--require-viewer-ready", *extra)
    ready = report["viewer_ready"]
    assert result.code == (0 if ready else 5), result.output
    return ready, result, report["viewer"]["warnings"]


def shown(read: BrowserRead) -> str:
    return "reads all" if read.readable else "; ".join(f"{name}: {why}" for name, why in read.failures.items())


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_the_tool_says_ready_exactly_when_the_browser_reads_it(case: str, browser: Browser, bucket: Bucket) -> None:
    import time

    spec = CASES[case]
    spec.arrange(bucket)
    started = time.monotonic()
    ready, result, warnings = verdict(bucket, *spec.judged_by)
    read = browser.read(bucket.catalog_url())
    MATRIX.append((case, shown(read), f"viewer_ready={ready}, exit {result.code}", f"{time.monotonic() - started:.1f}"))

    assert read.readable is spec.readable, shown(read)
    assert ready is read.readable, f"the browser: {shown(read)}\nthe tool:\n{result.stderr}"
    if ready:  # what only weakens reading is said, and only that
        assert bool(spec.warns) is bool(warnings) and all(spec.warns in w for w in warnings), warnings
    if spec.repaired:
        repaired, again, _ = verdict(bucket)
        key = f"{bucket.prefix.prefix}/{spec.repaired}"
        assert spec.repair.format(key=key) in again.stderr, again.stderr  # the repair is named in the output
        after = browser.read(bucket.catalog_url())
        MATRIX.append(("  then a full re-run of upload_aws", shown(after),
                       f"viewer_ready={repaired}, exit {again.code}", ""))
        assert repaired is True and after.readable, f"the browser: {shown(after)}\nthe tool:\n{again.stderr}"

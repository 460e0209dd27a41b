"""The pure parts of the S3 backend: destination parsing, keys, ETag prediction, content types."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from uploader.content_types import content_type
from uploader.errors import UsageError
from uploader.plan import Dataset, LocalFile
from uploader.s3 import PART_SIZE, S3Backend, S3Destination, _expected_etag


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix"),
    [("s3://bucket", "bucket", ""), ("s3://bucket/", "bucket", ""), ("s3://b-1.x/a/b/", "b-1.x", "a/b"),
     ("s3://bucket//a//b", "bucket", "a/b")],
)
def test_parse(uri, bucket, prefix):
    assert S3Destination.parse(uri) == S3Destination(bucket, prefix)


@pytest.mark.parametrize("uri", ["bucket/x", "s3:/bucket", "s3://", "s3://ab", "s3://bad bucket/x",
                                 "s3://-bucket", "s3://bucket/a/../b"])
def test_parse_refuses(uri):
    with pytest.raises(UsageError, match="--s3-dir"):
        S3Destination.parse(uri)


def test_keys_are_prefix_subdir_and_catalog_name():
    single = Dataset(Path("/d"), "", (), None)
    sample = Dataset(Path("/d"), "sample-1", (), None)
    assert S3Destination("b", "p/q").key(single, "genes_all.pmtiles") == "p/q/genes_all.pmtiles"
    assert S3Destination("b", "").key(single, "x.tsv") == "x.tsv"
    assert S3Destination("b", "p").key(sample, "x.tsv") == "p/sample-1/x.tsv"
    assert S3Destination("b", "").dataset_prefix(single) == ""
    assert S3Destination("b", "p").dataset_prefix(sample) == "p/sample-1/"


def file_of(size: int) -> LocalFile:
    return LocalFile("f", Path("/f"), size, 0)


def test_expected_etag_single_and_multipart():
    md5 = hashlib.md5(b"abc").hexdigest()
    assert _expected_etag(file_of(3), [md5]) == md5
    parts = [hashlib.md5(b"1").hexdigest(), hashlib.md5(b"2").hexdigest()]
    joined = hashlib.md5(bytes.fromhex(parts[0]) + bytes.fromhex(parts[1])).hexdigest()
    assert _expected_etag(file_of(PART_SIZE + 1), parts) == f"{joined}-2"
    # exactly one part size still goes multipart (s3transfer's threshold is inclusive)
    one = hashlib.md5(bytes.fromhex(md5)).hexdigest()
    assert _expected_etag(file_of(PART_SIZE), [md5]) == f"{one}-1"


def test_part_size_grows_to_stay_within_10000_parts():
    assert S3Backend.part_size(file_of(10 * 2**30)) == PART_SIZE
    assert S3Backend.part_size(file_of(200 * 2**30)) * 10_000 >= 200 * 2**30


@pytest.mark.parametrize(
    ("name", "expected"),
    [("genes_all.pmtiles", "application/vnd.pmtiles"), ("x-pseudobulk.tsv.gz", "application/gzip"),
     ("x.TSV", "text/tab-separated-values"), ("catalog.yaml", "application/yaml"), ("c.json", "application/json"),
     ("u.png", "image/png"), ("noext", "application/octet-stream"), ("dir.d/noext", "application/octet-stream"),
     ("weird.xyz", "application/octet-stream")],
)
def test_content_types(name, expected):
    assert content_type(name) == expected


def test_requests_name_the_tool_and_use_path_style_on_custom_endpoints(monkeypatch):
    from botocore.awsrequest import AWSResponse

    from uploader import __version__
    from uploader.s3 import S3Settings, _build_client

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    client = _build_client(S3Settings(endpoint_url="http://127.0.0.1:9"))
    sent = []

    def capture(request, **kwargs):  # answer locally: nothing listens on port 9
        sent.append(request)
        response = AWSResponse(request.url, 200, {"ETag": '"e"'}, None)
        response._content = b""
        return response

    client.meta.events.register("before-send.s3", capture)
    client.put_object(Bucket="bucket", Key="a/b.tsv", Body=b"x")
    client.put_object(Bucket="bucket", Key="c.tsv", Body=b"y")
    assert [r.url for r in sent] == ["http://127.0.0.1:9/bucket/a/b.tsv", "http://127.0.0.1:9/bucket/c.tsv"]
    assert all(r.headers["User-Agent"].startswith(f"cartload-uploader/{__version__} Boto3/".encode()) for r in sent)

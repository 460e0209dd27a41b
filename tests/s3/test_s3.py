"""The pure parts of the S3 backend: destination parsing, keys, ETag prediction, content types."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from uploader.errors import UsageError
from uploader.local.content_types import content_type
from uploader.local.digests import digests, multipart_etag_name, part_md5_name
from uploader.local.hash_cache import HashCache
from uploader.local.plan import Dataset, LocalFile
from uploader.s3.destination import S3Destination
from uploader.s3.verify import digests_of_etag
from uploader.s3.writer import PART_SIZE, part_size

BUCKET = S3Destination("bucket", "")  # where a client is for; these tests only build one


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


def etag_of(tmp_path: Path, data: bytes) -> str:
    """The multipart ETag the uploader predicts for a file holding `data` (derived from its part MD5s)."""
    path = tmp_path / "f"
    path.write_bytes(data)
    file = LocalFile("f", path, len(data), path.stat().st_mtime_ns)
    return digests(file, [multipart_etag_name(PART_SIZE)], HashCache(None))[multipart_etag_name(PART_SIZE)]


def test_expected_etag_single_and_multipart(tmp_path):
    assert etag_of(tmp_path, b"abc") == hashlib.md5(b"abc").hexdigest()
    data = b"1" * PART_SIZE + b"2"
    parts = [hashlib.md5(data[:PART_SIZE]).hexdigest(), hashlib.md5(b"2").hexdigest()]
    joined = hashlib.md5(bytes.fromhex(parts[0]) + bytes.fromhex(parts[1])).hexdigest()
    assert etag_of(tmp_path, data) == f"{joined}-2"
    # exactly one part size still goes multipart (s3transfer's threshold is inclusive)
    whole = hashlib.md5(data[:PART_SIZE]).hexdigest()
    assert etag_of(tmp_path, data[:PART_SIZE]) == f"{hashlib.md5(bytes.fromhex(whole)).hexdigest()}-1"


def test_a_listed_etag_vouches_only_for_what_it_can_be():
    md5 = hashlib.md5(b"x").hexdigest()
    assert digests_of_etag(md5, 10) == {multipart_etag_name(PART_SIZE): md5}
    assert digests_of_etag(md5, 3 * PART_SIZE) == {"md5": md5}  # another tool's single PUT of a big file
    assert digests_of_etag(f"{md5}-3", 3 * PART_SIZE) == {multipart_etag_name(PART_SIZE): f"{md5}-3"}
    assert digests_of_etag(f"{md5}-2", 3 * PART_SIZE) == {}  # another part size: a HEAD must tell
    assert digests_of_etag("opaque-kms-etag", 10) == {}


def test_part_size_grows_to_stay_within_10000_parts():
    assert part_size(10 * 2**30) == PART_SIZE
    assert part_size(200 * 2**30) * 10_000 >= 200 * 2**30
    assert part_md5_name(PART_SIZE) == f"md5parts:{PART_SIZE}"


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
    from uploader.s3.client import _build_client
    from uploader.s3.settings import S3Settings

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    client = _build_client(S3Settings(s3_dir=BUCKET, endpoint_url="http://127.0.0.1:9"))
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
    assert all(r.headers["User-Agent"].startswith(f"cartload-uploader/{__version__} Botocore/".encode())
               for r in sent)


@pytest.mark.parametrize(("option", "variable", "named"), [("nosuch", None, "--profile nosuch"),
                                                            (None, "nosuch", "AWS_PROFILE nosuch")])
def test_a_profile_that_does_not_exist_is_named_as_it_was_given(monkeypatch, tmp_path, option, variable, named):
    from uploader.s3.client import make_client
    from uploader.s3.settings import S3Settings

    (tmp_path / "config").write_text("[profile lab]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_PROFILE", raising=False)
    if variable:
        monkeypatch.setenv("AWS_PROFILE", variable)
    with pytest.raises(UsageError) as refused:
        make_client(S3Settings(s3_dir=BUCKET, profile=option, endpoint_url="http://127.0.0.1:9"))
    assert refused.value.message.startswith(f"{named}: no such profile in the AWS config files")


def test_a_profile_gives_its_region_and_credentials(monkeypatch, tmp_path):
    from uploader.s3.client import make_client
    from uploader.s3.settings import S3Settings

    (tmp_path / "config").write_text("[profile lab]\nregion = eu-west-1\n")
    (tmp_path / "credentials").write_text("[lab]\naws_access_key_id = LABKEY\naws_secret_access_key = labsecret\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    client = make_client(S3Settings(s3_dir=BUCKET, profile="lab", endpoint_url="http://127.0.0.1:9"))
    assert client.meta.region_name == "eu-west-1"
    assert client._request_signer._credentials.get_frozen_credentials().access_key == "LABKEY"


def test_an_http_proxy_sends_the_bytes_through_boto3(monkeypatch):
    from uploader.s3.client import _build_client
    from uploader.s3.settings import S3Settings
    from uploader.s3.transport import make_transport

    for name, value in {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}.items():
        monkeypatch.setenv(name, value)
    client = _build_client(S3Settings(s3_dir=BUCKET, endpoint_url="https://s3.example.org"))
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    assert make_transport(client, "bucket", 4).name == "crt"
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.org:3128")
    assert make_transport(client, "bucket", 4).name == "boto3"  # awscrt's S3 client cannot use a proxy
    monkeypatch.setenv("NO_PROXY", "s3.example.org")
    assert make_transport(client, "bucket", 4).name == "crt"


def test_bodies_in_flight_stay_within_the_byte_budget():
    import threading

    from uploader.s3.transport import TransportError
    from uploader.s3.writer import ByteBudget

    budget, stop = ByteBudget(100), threading.Event()
    budget.take(60, stop)
    budget.take(40, stop)
    waiting_done = threading.Event()

    def take_one_more() -> None:
        budget.take(30, stop)
        waiting_done.set()

    waiter = threading.Thread(target=take_one_more)
    waiter.start()
    assert not waiting_done.wait(0.1)  # 100 of 100 bytes are out: the third body waits
    budget.give_back(40)
    assert waiting_done.wait(5)
    waiter.join()
    budget.give_back(60)
    budget.give_back(30)
    budget.take(500, stop)  # a body bigger than the whole budget goes alone, not never
    with pytest.raises(TransportError, match="interrupted"):
        stop.set()
        budget.take(1, stop)

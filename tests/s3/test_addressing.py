"""--addressing-style, S3 Express directory buckets, and stores that refuse Content-MD5.

Unit tests check the request URLs botocore is about to send (nothing is
sent); end-to-end tests upload to the real local S3 server path-style and
virtual-hosted (SeaweedFS answers for BUCKET.s3.test when its own port is
the client's HTTP proxy: the host name never has to resolve).
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.awsrequest import AWSResponse

from tests.conftest import run_cli
from tests.proxy import RecordingTunnel
from tests.servers import VIRTUAL_HOST_DOMAIN
from uploader.errors import FileUploadError, RemoteError, UsageError
from uploader.s3.access import FirstWrite
from uploader.s3.addressing import uses_virtual_hosts
from uploader.s3.client import _build_client
from uploader.s3.destination import S3Destination
from uploader.s3.settings import S3Settings
from uploader.s3.transport import CrtTransport, TransportError

BUCKET = S3Destination("bucket", "")  # where a client is for; most tests here only build one

INITIATED = b"<InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>k</Key><UploadId>u</UploadId>" \
            b"</InitiateMultipartUploadResult>"
NO_UPLOADS = b"<ListMultipartUploadsResult><Bucket>bucket</Bucket></ListMultipartUploadsResult>"
NOT_IMPLEMENTED = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code>'
                   b"<Message>Content-MD5 is not supported</Message></Error>")


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def answer_locally(client: Any, status: int = 200, body: bytes = b"", when: Any = None) -> list[Any]:
    """Answer every request without a server, as a store would (`when` picks requests that get `status` and
    `body` instead); return what was sent."""
    sent: list[Any] = []

    def respond(request: Any, **kwargs: Any) -> AWSResponse:
        sent.append(request)
        chosen = when is not None and when(request)
        response = AWSResponse(request.url, status if chosen else 200, {"ETag": '"e"'}, None)
        response._content = body if chosen else INITIATED if request.method == "POST" else \
            NO_UPLOADS if request.url.endswith("?uploads") else b""
        return response

    client.meta.events.register("before-send.s3", respond)
    return sent


def url_of_a_put(settings: S3Settings, bucket: str = "bucket") -> str:
    client = _build_client(settings)
    sent = answer_locally(client)
    client.put_object(Bucket=bucket, Key="a/b.tsv", Body=b"x")
    return str(sent[0].url)


@pytest.mark.parametrize(
    ("endpoint", "style", "expected"),
    [
        ("http://127.0.0.1:9", "auto", "http://127.0.0.1:9/bucket/a/b.tsv"),
        ("https://s3.example.org", "auto", "https://s3.example.org/bucket/a/b.tsv"),
        ("https://s3.example.org", "path", "https://s3.example.org/bucket/a/b.tsv"),
        ("https://s3.example.org", "virtual", "https://bucket.s3.example.org/a/b.tsv"),
        (None, "auto", "https://bucket.s3.eu-west-1.amazonaws.com/a/b.tsv"),
        (None, "virtual", "https://bucket.s3.eu-west-1.amazonaws.com/a/b.tsv"),
        (None, "path", "https://s3.eu-west-1.amazonaws.com/bucket/a/b.tsv"),
    ],
)
def test_addressing_style_decides_where_requests_go(aws_env, endpoint, style, expected):
    assert url_of_a_put(S3Settings(s3_dir=BUCKET, endpoint_url=endpoint, addressing_style=style)) == expected


@pytest.mark.parametrize(
    ("endpoint", "style", "bucket"),
    [(None, "auto", "bucket"), (None, "auto", "lab.data"), (None, "path", "bucket"),
     ("https://s3.example.org", "auto", "bucket"), ("https://s3.example.org", "virtual", "bucket")],
)
def test_the_crt_engine_addresses_the_bucket_as_botocore_does(aws_env, endpoint, style, bucket):
    """The bytes go through awscrt: its requests must go where botocore's go (no dotted name as a sub-domain)."""
    settings = S3Settings(s3_dir=BUCKET, endpoint_url=endpoint, addressing_style=style)
    boto_url = urlsplit(url_of_a_put(settings, bucket))
    crt = CrtTransport(_build_client(settings), bucket, 2)
    assert (crt._host, crt._path + "a/b.tsv") == (boto_url.netloc, boto_url.path)


def test_auto_follows_the_aws_config_file(aws_env):
    (aws_env / "config").write_text("[default]\ns3 =\n    addressing_style = virtual\n")
    settings = S3Settings(s3_dir=BUCKET, endpoint_url="https://s3.example.org")
    assert url_of_a_put(settings) == "https://bucket.s3.example.org/a/b.tsv"
    assert uses_virtual_hosts(_build_client(settings), "bucket")


def test_virtual_hosts_on_an_ip_address_are_refused_not_ignored(aws_env):
    # botocore would quietly fall back to path-style: an option is never silently ignored.
    with pytest.raises(UsageError, match=re.escape("--addressing-style virtual: the endpoint http://127.0.0.1:9 is")):
        _build_client(S3Settings(s3_dir=BUCKET, endpoint_url="http://127.0.0.1:9", addressing_style="virtual"))


@pytest.mark.parametrize(
    ("endpoint", "style", "bucket", "virtual"),
    [(None, "auto", "bucket", True), (None, "auto", "my.bucket", False), (None, "path", "bucket", False),
     ("https://s3.example.org", "auto", "bucket", False), ("https://s3.example.org", "virtual", "bucket", True)],
)
def test_uses_virtual_hosts_tells_how_the_bucket_is_addressed(aws_env, endpoint, style, bucket, virtual):
    client = _build_client(S3Settings(s3_dir=BUCKET, endpoint_url=endpoint, addressing_style=style))
    assert uses_virtual_hosts(client, bucket) is virtual


def test_an_s3_express_directory_bucket_gets_one_clear_error():
    with pytest.raises(UsageError) as refused:
        S3Destination.parse("s3://lab-data--usw2-az1--x-s3/lung")
    message = str(refused.value)
    assert "S3 Express One Zone directory bucket" in message and "use a general purpose bucket" in message


def test_a_first_write_refused_for_its_content_md5_is_one_line_and_stops_the_run():
    settings = S3Settings(s3_dir=S3Destination("bucket", "p"))
    first = FirstWrite(settings.s3_dir, settings, settings.objects)
    refused = TransportError("NotImplemented", "Content-MD5 is not supported", 501, "UploadPart")

    stops = first.failure(refused)

    assert isinstance(stops, RemoteError)
    assert "refused a part carrying a Content-MD5 header (NotImplemented: Content-MD5 is not supported)" in str(stops)
    first.stored()  # once a write was stored, the store takes Content-MD5: a refusal is that file's own
    assert isinstance(first.failure(refused), FileUploadError)


# -- end to end, against the real local S3 server --------------------------------------------------


@pytest.mark.e2e
def test_upload_path_style(dataset, s3, cli_env):
    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, "--addressing-style", "path", env=cli_env)

    assert result.code == 0, result.output
    assert s3.get("catalog.yaml") == (dataset / "catalog.yaml").read_bytes()


@pytest.mark.e2e
def test_upload_virtual_hosted_style(dataset, s3, cli_env):
    if os.environ.get("S3_ENDPOINT_URL") and not os.environ.get("S3_VIRTUAL_HOST_DOMAIN"):
        pytest.fail("this S3 server's virtual-host domain is unknown: set S3_VIRTUAL_HOST_DOMAIN")
    domain = os.environ.get("S3_VIRTUAL_HOST_DOMAIN", VIRTUAL_HOST_DOMAIN)
    env = dict(cli_env)
    port = urlsplit(env.pop("AWS_ENDPOINT_URL_S3")).port
    assert port is not None
    tunnel = RecordingTunnel(port)  # as HTTP proxy: requests go out as 'PUT http://BUCKET.s3.test:PORT/KEY'
    try:
        result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, "--endpoint-url",
                         f"http://{domain}:{port}", "--addressing-style", "virtual",
                         env=env | {"HTTP_PROXY": tunnel.url, "http_proxy": tunnel.url})
    finally:
        tunnel.close()

    assert result.code == 0, result.output
    assert f"PUT http://{s3.bucket}.{domain}:{port}/{s3.prefix}/catalog.yaml HTTP/1.1".encode() in tunnel.sent
    assert f"http://{domain}:{port}/{s3.bucket}/".encode() not in tunnel.sent  # never path-style
    assert s3.get("catalog.yaml") == (dataset / "catalog.yaml").read_bytes()
    assert s3.get("genes_all.pmtiles") == (dataset / "genes_all.pmtiles").read_bytes()


@pytest.mark.e2e
def test_an_unknown_addressing_style_is_a_usage_error(dataset, s3, cli_env):
    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, "--addressing-style", "dns", env=cli_env)
    assert result.code == 2 and "--addressing-style dns: choose one of auto, path, virtual" in result.stderr
    assert s3.names() == set()


@pytest.mark.e2e
def test_an_s3_express_bucket_is_refused_before_anything_is_sent(dataset, cli_env):
    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", "s3://lab--use1-az4--x-s3/lung", env=cli_env)
    assert result.code == 2 and "S3 Express One Zone directory bucket" in result.stderr

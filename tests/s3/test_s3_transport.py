"""What the data requests put on the wire, for both engines: a recording HTTP server, no S3 needed.

Each PUT must carry the Content-MD5 the store checks, an unsigned payload
(the MD5 is the integrity check), no `Expect: 100-continue` round trip, no
trailing checksum (`aws-chunked`, which some stores keep as a
Content-Encoding), and exactly the file's bytes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

import pytest

from uploader.s3.client import _build_client
from uploader.s3.destination import S3Destination
from uploader.s3.settings import S3Settings
from uploader.s3.transport import Body, Boto3Transport, CrtTransport, TransportError

BUCKET = S3Destination("bucket", "")  # where a client is for; these tests only build one


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[dict[str, Any]]] = []
    answer_status = 200

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Recorder.seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                              "body": body})
        if Recorder.answer_status != 200:
            error = (b"<Error><Code>BadDigest</Code><Message>The Content-MD5 you specified did not match."
                     b"</Message></Error>")
            self.send_response(Recorder.answer_status)
            self.send_header("Content-Length", str(len(error)))
            self.end_headers()
            self.wfile.write(error)
            return
        self.send_response(200)
        self.send_header("ETag", f'"{hashlib.md5(body).hexdigest()}"')
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def endpoint(monkeypatch) -> Iterator[str]:
    Recorder.seen, Recorder.answer_status = [], 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    for name, value in {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_CONFIG_FILE": "/nonexistent",
                        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def transports(endpoint: str) -> list[Any]:
    client = _build_client(S3Settings(s3_dir=BUCKET, endpoint_url=endpoint))
    return [CrtTransport(client, "bucket", 4), Boto3Transport(client, "bucket", 4)]


@pytest.mark.parametrize("engine", [0, 1], ids=["crt", "boto3"])
def test_a_put_and_a_part_carry_the_md5_and_nothing_that_costs_a_round_trip(endpoint, tmp_path: Path, engine):
    data = os.urandom(3000)
    path = tmp_path / "f.pmtiles"
    path.write_bytes(data)
    md5 = base64.b64encode(hashlib.md5(data[1000:2500]).digest()).decode()
    transport = transports(endpoint)[engine]
    progress: list[int] = []
    params = {"ContentType": "application/vnd.pmtiles", "Metadata": {"sha256": "abc"}, "CacheControl": "no-cache"}

    whole = transport.put_object("dir/a b+c.pmtiles", Body(path, 0, 3000),
                                 base64.b64encode(hashlib.md5(data).digest()).decode(), params, progress.append)
    part = transport.upload_part("dir/k", "up/id=", 2, Body(path, 1000, 1500), md5, {}, progress.append)

    assert whole.result(timeout=30).etag == hashlib.md5(data).hexdigest()
    assert part.result(timeout=30).etag == hashlib.md5(data[1000:2500]).hexdigest()
    assert sorted(progress) == [1500, 3000]
    put, upload_part = sorted(Recorder.seen, key=lambda request: "partNumber" in request["path"])
    assert put["path"] == "/bucket/dir/a%20b%2Bc.pmtiles" and put["body"] == data
    path, _, query = upload_part["path"].partition("?")
    assert path == "/bucket/dir/k" and parse_qs(query) == {"partNumber": ["2"], "uploadId": ["up/id="]}
    assert upload_part["body"] == data[1000:2500] and upload_part["headers"]["content-md5"] == md5
    headers = put["headers"]
    assert headers["content-type"] == "application/vnd.pmtiles" and headers["cache-control"] == "no-cache"
    assert headers["x-amz-meta-sha256"] == "abc"
    for request in (put, upload_part):
        sent = request["headers"]
        assert sent["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
        assert "expect" not in sent and "content-encoding" not in sent
        assert not any(name.startswith("x-amz-checksum") or name == "x-amz-trailer" for name in sent)
        assert sent["authorization"].startswith("AWS4-HMAC-SHA256")


@pytest.mark.parametrize("engine", [0, 1], ids=["crt", "boto3"])
def test_the_stores_refusal_comes_back_with_its_code(endpoint, tmp_path: Path, engine):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    Recorder.answer_status = 400
    transport = transports(endpoint)[engine]
    future = transport.put_object("f", Body(path, 0, 10), "AAAAAAAAAAAAAAAAAAAAAA==", {}, lambda n: None)
    with pytest.raises(TransportError) as error:
        future.result(timeout=30)
    assert error.value.code == "BadDigest" and error.value.status == 400


@pytest.mark.parametrize("engine", [0, 1], ids=["crt", "boto3"])
def test_a_file_that_shrank_fails_at_once(endpoint, tmp_path: Path, engine):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    transport = transports(endpoint)[engine]
    future = transport.put_object("f", Body(path, 0, 200), "AAAAAAAAAAAAAAAAAAAAAA==", {}, lambda n: None)
    with pytest.raises(TransportError):
        future.result(timeout=10)


OBJECT_OPTIONS = {"ACL": "bucket-owner-full-control", "CacheControl": "max-age=60", "StorageClass": "STANDARD_IA",
                  "ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "1234abcd-12ab-34cd-56ef-1234567890ab",
                  "RequestPayer": "requester"}


@pytest.mark.parametrize("engine", [0, 1], ids=["crt", "boto3"])
def test_a_put_carries_every_object_option_and_a_part_only_the_request_payer(endpoint, tmp_path: Path, engine):
    path = tmp_path / "f.pmtiles"
    path.write_bytes(b"x" * 100)
    md5 = base64.b64encode(hashlib.md5(b"x" * 100).digest()).decode()
    transport = transports(endpoint)[engine]
    params = {"ContentType": "application/vnd.pmtiles", "Metadata": {"sha256": "abc"}, **OBJECT_OPTIONS}

    transport.put_object("k", Body(path, 0, 100), md5, params, lambda n: None).result(timeout=30)
    transport.upload_part("k", "id", 1, Body(path, 0, 100), md5, params, lambda n: None).result(timeout=30)

    put, part = sorted(Recorder.seen, key=lambda request: "partNumber" in request["path"])
    assert {name: put["headers"].get(name) for name in (
        "x-amz-acl", "cache-control", "x-amz-storage-class", "x-amz-server-side-encryption",
        "x-amz-server-side-encryption-aws-kms-key-id", "x-amz-request-payer")} == {
        "x-amz-acl": "bucket-owner-full-control", "cache-control": "max-age=60",
        "x-amz-storage-class": "STANDARD_IA", "x-amz-server-side-encryption": "aws:kms",
        "x-amz-server-side-encryption-aws-kms-key-id": "1234abcd-12ab-34cd-56ef-1234567890ab",
        "x-amz-request-payer": "requester"}
    assert part["headers"]["x-amz-request-payer"] == "requester"
    # The object's settings belong to CreateMultipartUpload; a part repeating them is refused by AWS.
    carried = {name for name in part["headers"] if name.startswith("x-amz-") or name == "cache-control"}
    assert carried <= {"x-amz-request-payer", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"}

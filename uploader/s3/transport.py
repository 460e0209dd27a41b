"""The requests that carry bytes (PutObject, UploadPart): AWS's C runtime (awscrt), or boto3 where it cannot go.

Every other call (listing, HEAD, multipart create/complete/abort, bucket
settings) goes through the run's boto3 client. The bytes go through awscrt's
S3 client: the same signed requests, each with the Content-MD5 the runner's
digests give, sent from C threads at a fraction of botocore's per-request CPU
(2,000 small PUTs: ~0.7 s of CPU instead of ~3 s). No trailing checksum is
asked for (its `aws-chunked` encoding is kept as a Content-Encoding by some
stores), payloads are not SHA-256-signed (the Content-MD5 is checked by the
server), and no `Expect: 100-continue` round trip is made.

The CRT's S3 client does not use HTTP proxies; when HTTPS_PROXY/HTTP_PROXY
applies to the endpoint (or CARTLOAD_UPLOADER_ENGINE=boto3 asks for it), the
same requests go through boto3 instead.
"""

from __future__ import annotations

import io
import os
import threading
import urllib.request
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlsplit

from uploader.s3.addressing import uses_virtual_hosts

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

ENGINE_ENV = "CARTLOAD_UPLOADER_ENGINE"  # crt (default) or boto3
THROUGHPUT_TARGET_GBPS = 100.0
# boto3's names for what a PUT may carry, and the headers they are sent as.
HEADERS_OF = {"ContentType": "Content-Type", "CacheControl": "Cache-Control", "ACL": "x-amz-acl",
              "StorageClass": "x-amz-storage-class", "ServerSideEncryption": "x-amz-server-side-encryption",
              "SSEKMSKeyId": "x-amz-server-side-encryption-aws-kms-key-id", "RequestPayer": "x-amz-request-payer"}
# What an UploadPart may carry of those: the object's settings belong to CreateMultipartUpload alone (SSE-C,
# which a part would repeat, is not offered).
PART_PARAMS = ("RequestPayer",)


@dataclass(frozen=True)
class Body:
    """Bytes of a local file: `length` bytes from `offset`."""

    path: Path
    offset: int
    length: int


@dataclass(frozen=True)
class Sent:
    """What the store answered to one data request."""

    etag: str
    encryption: str = ""  # x-amz-server-side-encryption, e.g. "aws:kms" (then the ETag is not an MD5)
    resumed: int = 0  # bytes an earlier attempt or run had already stored (a resumed multipart upload)
    digests: Mapping[str, str] = field(default_factory=dict)  # of the file, computed from the bytes sent


class TransportError(Exception):
    """A data request failed: S3's error code and message, or a connection failure (code empty)."""

    def __init__(self, code: str, message: str, status: int | None = None, operation: str = "") -> None:
        super().__init__(f"{code}: {message}" if code else message)
        self.code, self.message, self.status, self.operation = code, message, status, operation


class Transport(Protocol):
    """Sends one data request and answers, in a Future, what the store said (its ETag)."""

    name: str

    def put_object(self, key: str, body: Body, md5_b64: str, params: Mapping[str, Any],
                   progress: Callable[[int], None]) -> Future[Sent]: ...

    def upload_part(self, key: str, upload_id: str, number: int, body: Body, md5_b64: str,
                    params: Mapping[str, Any], progress: Callable[[int], None]) -> Future[Sent]: ...

    def cancel_all(self) -> None: ...


def make_transport(client: S3Client, bucket: str, connections: int) -> Transport:
    """awscrt's, unless a proxy applies to the endpoint or the environment asks for boto3."""
    wanted = os.environ.get(ENGINE_ENV, "crt").lower()
    if wanted == "boto3" or _proxy_applies(client.meta.endpoint_url):
        return Boto3Transport(client, bucket, connections)
    return CrtTransport(client, bucket, connections)


class DeferredTransport:
    """A Transport built ahead of its first request, in the background: awscrt's client costs ~40 ms of CPU, spent
    better while the first listing is on the wire than before it is sent. A dry run never builds it."""

    name = "deferred"

    def __init__(self, build: Callable[[], Transport]) -> None:
        self._build = build
        self._built: Future[Transport] | None = None
        self._lock = threading.Lock()

    def start(self, run: Callable[[Callable[[], Transport]], Future[Transport]]) -> None:
        """Build it with `run` (e.g. a thread pool's submit) unless that has begun."""
        with self._lock:
            if self._built is None:
                self._built = run(self._build)

    def put_object(self, key: str, body: Body, md5_b64: str, params: Mapping[str, Any],
                   progress: Callable[[int], None]) -> Future[Sent]:
        return self._transport().put_object(key, body, md5_b64, params, progress)

    def upload_part(self, key: str, upload_id: str, number: int, body: Body, md5_b64: str,
                    params: Mapping[str, Any], progress: Callable[[int], None]) -> Future[Sent]:
        return self._transport().upload_part(key, upload_id, number, body, md5_b64, params, progress)

    def cancel_all(self) -> None:
        with self._lock:
            built = self._built
        if built is not None and built.done() and built.exception() is None:
            built.result().cancel_all()

    def _transport(self) -> Transport:
        with self._lock:
            if self._built is None:  # never started ahead: built here, once
                self._built = Future()
                self._built.set_result(self._build())
            built = self._built
        return built.result()


def _proxy_applies(endpoint_url: str) -> bool:
    host = urlsplit(endpoint_url).hostname or ""
    scheme = urlsplit(endpoint_url).scheme
    return bool(urllib.request.getproxies().get(scheme)) and not urllib.request.proxy_bypass(host)


# -- awscrt -------------------------------------------------------------------------------------


class CrtTransport:
    """Data requests through awscrt's S3 client, signed with the credentials boto3 resolved."""

    name = "crt"

    def __init__(self, client: S3Client, bucket: str, connections: int) -> None:
        import awscrt.auth
        import awscrt.http
        import awscrt.io
        import awscrt.s3

        self._s3 = awscrt.s3
        self._http = awscrt.http
        endpoint = urlsplit(client.meta.endpoint_url)
        path_style = not uses_virtual_hosts(client, bucket)  # as botocore addresses the bucket (--addressing-style)
        self._host = endpoint.netloc if path_style else f"{bucket}.{endpoint.netloc}"
        self._path = f"/{quote(bucket, safe='')}/" if path_style else "/"
        credentials = awscrt.auth.AwsCredentialsProvider.new_delegate(_BotocoreCredentials(client))
        signing = awscrt.s3.create_default_s3_signing_config(region=client.meta.region_name,
                                                             credential_provider=credentials)
        https = endpoint.scheme == "https"
        self._client = awscrt.s3.S3Client(
            bootstrap=awscrt.io.ClientBootstrap.get_or_create_static_default(), region=client.meta.region_name,
            tls_mode=awscrt.s3.S3RequestTlsMode.ENABLED if https else awscrt.s3.S3RequestTlsMode.DISABLED,
            tls_connection_options=_tls_options(self._host) if https else None, signing_config=signing,
            # The CRT sizes its connection pool from a throughput target; at its default, it opened so few
            # connections that 2,000 small PUTs over a 40 ms link took 2.5 x as long as s5cmd's.
            throughput_target_gbps=THROUGHPUT_TARGET_GBPS, max_active_connections_override=connections,
            connect_timeout_ms=int(float(os.environ.get("CARTLOAD_UPLOADER_CONNECT_TIMEOUT", "10")) * 1000))
        self._requests: dict[int, Any] = {}
        self._lock = threading.Lock()

    def put_object(self, key: str, body: Body, md5_b64: str, params: Mapping[str, Any],
                   progress: Callable[[int], None]) -> Future[Sent]:
        # A whole file: the CRT reads it itself, in C, up to the Content-Length. A Python stream would call
        # back into Python, taking the GIL, for every read of every small file (~0.2 ms of CPU per file).
        return self._send(key, "", body, md5_b64, params, progress, "PutObject", whole_file=True)

    def upload_part(self, key: str, upload_id: str, number: int, body: Body, md5_b64: str,
                    params: Mapping[str, Any], progress: Callable[[int], None]) -> Future[Sent]:
        query = f"?partNumber={number}&uploadId={quote(upload_id, safe='')}"
        return self._send(key, query, body, md5_b64, _part_params(params), progress, "UploadPart")

    def cancel_all(self) -> None:
        with self._lock:
            running = list(self._requests.values())
        for request in running:
            request.cancel()

    def _send(self, key: str, query: str, body: Body, md5_b64: str, params: Mapping[str, Any],
              progress: Callable[[int], None], operation: str, whole_file: bool = False) -> Future[Sent]:
        headers = [("Host", self._host), ("Content-Length", str(body.length)), ("Content-MD5", md5_b64)]
        headers += _object_headers(params)
        stream = None if whole_file else _FileSlice(body)
        request = self._http.HttpRequest("PUT", f"{self._path}{quote(key, safe='/~')}{query}",
                                         self._http.HttpHeaders(headers), stream)
        answer: Future[Sent] = Future()
        answered: dict[str, str] = {}

        def on_headers(status_code: int, headers: list[tuple[str, str]], **kwargs: Any) -> None:
            answered.update((name.lower(), value) for name, value in headers)

        def on_done(error: BaseException | None = None, error_body: bytes | None = None,
                    status_code: int | None = None, **kwargs: Any) -> None:
            if stream is not None:
                stream.close()
            with self._lock:
                self._requests.pop(id(answer), None)
            if answer.done():  # cancelled meanwhile
                return
            if error is None:
                progress(body.length)  # the CRT reports no progress of a DEFAULT request: count it when done
                answer.set_result(Sent(answered.get("etag", "").strip('"'),
                                       answered.get("x-amz-server-side-encryption", "")))
            else:
                answer.set_exception(_crt_error(error, error_body, status_code, operation))

        started = self._client.make_request(
            type=self._s3.S3RequestType.DEFAULT, operation_name=operation, request=request,
            send_filepath=str(body.path) if whole_file else None, on_headers=on_headers, on_done=on_done)
        with self._lock:
            if not answer.done():
                self._requests[id(answer)] = started
        return answer


class _BotocoreCredentials:
    """Hands awscrt the credentials botocore resolved (profiles, SSO, roles), refreshed as botocore refreshes them."""

    def __init__(self, client: S3Client) -> None:
        self._credentials = client._request_signer._credentials  # type: ignore[attr-defined]

    def __call__(self) -> Any:
        import awscrt.auth

        frozen = self._credentials.get_frozen_credentials()
        return awscrt.auth.AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token)


def _tls_options(host: str) -> Any:
    import awscrt.io

    options = awscrt.io.TlsContextOptions()
    bundle = os.environ.get("AWS_CA_BUNDLE")
    if bundle:
        options.override_default_trust_store_from_path(ca_filepath=bundle)
    connection = awscrt.io.ClientTlsContext(options).new_connection_options()
    connection.set_server_name(host.split(":")[0])
    return connection


class _FileSlice(io.RawIOBase):
    """A part of a file as a stream the CRT reads from (nothing is read before it is sent)."""

    def __init__(self, body: Body) -> None:
        super().__init__()
        self._fd = os.open(body.path, os.O_RDONLY)
        self._start = self._position = body.offset
        self._end = body.offset + body.length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        # The CRT rewinds a body to send it again after a failed attempt.
        base = {io.SEEK_SET: self._start, io.SEEK_CUR: self._position, io.SEEK_END: self._end}[whence]
        self._position = min(max(base + offset, self._start), self._end)
        return self._position - self._start

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self._end - self._position)
        if count <= 0:
            return 0
        got = os.preadv(self._fd, [memoryview(buffer)[:count]], self._position)
        if got == 0:
            raise OSError(f"the file ended {self._end - self._position} bytes early: it shrank while being sent")
        self._position += got
        return got

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def _part_params(params: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in params.items() if name in PART_PARAMS}


def _object_headers(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    headers = [(HEADERS_OF[name], str(value)) for name, value in params.items() if name in HEADERS_OF]
    headers += [(f"x-amz-meta-{name}", value) for name, value in params.get("Metadata", {}).items()]
    return headers


def _crt_error(error: BaseException, body: bytes | None, status: int | None, operation: str) -> TransportError:
    if body:
        try:
            root = ElementTree.fromstring(body)
            return TransportError(root.findtext("Code") or str(status), root.findtext("Message") or "", status,
                                  operation)
        except ElementTree.ParseError:
            pass
    if status:
        return TransportError(str(status), f"HTTP {status}", status, operation)
    return TransportError("", getattr(error, "name", "") or str(error), operation=operation)


# -- boto3 --------------------------------------------------------------------------------------


class Boto3Transport:
    """The same requests through the run's boto3 client (its proxies and CA settings), in a pool of threads."""

    name = "boto3"

    def __init__(self, client: S3Client, bucket: str, connections: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._client = client
        self._bucket = bucket
        self._pool = ThreadPoolExecutor(max_workers=max(1, connections), thread_name_prefix="s3-request")

    def put_object(self, key: str, body: Body, md5_b64: str, params: Mapping[str, Any],
                   progress: Callable[[int], None]) -> Future[Sent]:
        return self._pool.submit(self._send, lambda data: self._client.put_object(
            Bucket=self._bucket, Key=key, Body=data, ContentMD5=md5_b64, **params), body, progress)

    def upload_part(self, key: str, upload_id: str, number: int, body: Body, md5_b64: str,
                    params: Mapping[str, Any], progress: Callable[[int], None]) -> Future[Sent]:
        return self._pool.submit(self._send, lambda data: self._client.upload_part(
            Bucket=self._bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data, ContentMD5=md5_b64,
            **_part_params(params)), body, progress)

    def cancel_all(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _send(call: Callable[[bytes], Mapping[str, Any]], body: Body, progress: Callable[[int], None]) -> Sent:
        import botocore.exceptions

        with open(body.path, "rb") as handle:
            handle.seek(body.offset)
            data = handle.read(body.length)
        if len(data) != body.length:
            raise TransportError("", f"the file ended {body.length - len(data)} bytes early: it shrank while"
                                 " being sent")
        try:
            response = call(data)
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            raise TransportError(str(error.get("Code", status)), str(error.get("Message", "")), status,
                                 exc.operation_name) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise TransportError("", str(exc)) from None
        progress(body.length)
        return Sent(str(response.get("ETag", "")).strip('"'), str(response.get("ServerSideEncryption", "")))

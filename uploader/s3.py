"""The S3 backend: the only code that talks to S3 (AWS, MinIO, SeaweedFS, Ceph, ...).

One boto3 client and one s3transfer TransferManager serve the whole run.
Integrity does not depend on the store supporting botocore's newer default
checksums: those are turned off (`when_required`) and every PUT and every
multipart part carries a Content-MD5 taken from the file's cached part
digests, so the server rejects corrupted bytes (BadDigest). The payload is
then not SHA-256-signed as well, over http just as botocore already does over
https when a Content-MD5 is present: a second hash of every byte would prove
nothing more. The file's SHA-256 is stored as `x-amz-meta-sha256`.

Verification: a single-part upload is confirmed by the ETag its PUT returns
(the server's MD5 of what it stored); a multipart object, the catalog, and the
first object of each Content-Type by a HEAD (size, hash, Content-Type, no
Content-Encoding): a store that drops headers drops them for every object.
Before a catalog is published, one listing must show every file it names in
place with the size and ETag uploaded; a HEAD per small file would cost as
much as uploading it.

An unchanged file is recognised from one listing: same size and an ETag equal
to the MD5 (or multipart MD5-of-MD5s) predicted from the local digests. Only
when the ETag does not tell (another part size, SSE-KMS) is a HEAD spent to
compare the stored SHA-256.
"""

from __future__ import annotations

import base64
import io
import os
import platform
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from hashlib import md5
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from uploader import __version__
from uploader.content_types import content_type
from uploader.errors import AuthError, FileUploadError, RemoteError, UploaderError, UsageError
from uploader.hashing import Cancelled, HashCache, digests, part_md5_name
from uploader.plan import Action, Dataset, LocalFile, Operation, UploadPlan

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from s3transfer.manager import TransferManager

PART_SIZE = 8 * 1024 * 1024  # aws cli's default too: its multipart ETags then match ours
SHA256_META = "sha256"
PROBE_KEY = ".cartload-uploader-write-check"
AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
              "InvalidToken", "AllAccessDisabled", "AccountProblem", "403", "401"}


@dataclass(frozen=True)
class S3Destination:
    """Where a run publishes: a bucket and a key prefix (no leading or trailing slash)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> S3Destination:
        """Parse `s3://bucket[/prefix]`; raise UsageError naming --s3-dir otherwise."""
        if not uri.startswith("s3://"):
            raise UsageError(f"--s3-dir {uri}: must look like s3://BUCKET/PREFIX")
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        if not (3 <= len(bucket) <= 63) or not all(c.isalnum() or c in ".-_" for c in bucket) \
                or not bucket[0].isalnum():
            raise UsageError(f"--s3-dir {uri}: '{bucket}' is not a valid bucket name")
        prefix = "/".join(part for part in prefix.split("/") if part)
        if any(part in (".", "..") for part in prefix.split("/")):
            raise UsageError(f"--s3-dir {uri}: the prefix must not contain '.' or '..' parts")
        return cls(bucket, prefix)

    def key(self, dataset: Dataset, name: str) -> str:
        """The object key of a file: exactly <prefix>/<dataset subdir>/<catalog file name>."""
        return "/".join(part for part in (self.prefix, dataset.subdir, name) if part)

    def dataset_prefix(self, dataset: Dataset) -> str:
        base = "/".join(part for part in (self.prefix, dataset.subdir) if part)
        return f"{base}/" if base else ""

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key or self.prefix}"


@dataclass(frozen=True)
class S3Settings:
    """How to reach the store; None leaves the choice to botocore's usual chain."""

    profile: str | None = None
    endpoint_url: str | None = None
    n_jobs: int = 8


class S3Backend:
    """Publishes an UploadPlan under an S3Destination (see runner.Backend)."""

    def __init__(self, destination: S3Destination, settings: S3Settings, cache: HashCache) -> None:
        self.destination = destination
        self.settings = settings
        self.cache = cache
        self.client: S3Client = _make_client(settings)
        self._part_md5s: dict[str, list[str]] = {}  # key -> Content-MD5 (hex) of each part in flight
        self._manager: TransferManager | None = None
        self._manager_lock = threading.Lock()
        self._planned_keys: set[str] = set()
        self._in_place: dict[str, tuple[int, str | None]] = {}  # key -> size, ETag (None: not an MD5)
        self._headers_proven: set[str] = set()  # Content-Types a HEAD showed the store keeps
        self.client.meta.events.register("before-parameter-build.s3.UploadPart", self._add_part_md5)
        # On 'before-call.s3', after botocore's own handler there that adds the header.
        self.client.meta.events.register_last("before-call.s3", _no_continue_for_small_bodies)

    # -- runner.Backend -----------------------------------------------------------------

    def check_access(self, plan: UploadPlan, *, dry_run: bool) -> None:
        bucket = self.destination.bucket
        with _translated(f"bucket '{bucket}'", self.settings):
            self.client.head_bucket(Bucket=bucket)
        if not dry_run:
            self._probe_write()

    def decide(self, plan: UploadPlan, *, restart: bool) -> list[Operation]:
        ops: list[Operation] = []
        for dataset in plan.datasets:
            remote = {} if restart else self._list(self.destination.dataset_prefix(dataset))
            for file in dataset.all_files:
                key = self.destination.key(dataset, file.name)
                self._planned_keys.add(key)
                listed = remote.get(key)
                op = Operation(Action.UPLOAD, dataset, file, key, "new", is_catalog=file is dataset.catalog)
                if restart:
                    op.reason = "--restart"
                elif listed and listed[0] != file.size:
                    op.action, op.reason = Action.REPLACE, f"size differs (remote {listed[0]:,d} bytes)"
                elif listed:
                    op.action, op.reason = Action.REPLACE, "same size"  # settled by _compare_content
                    op.remote["etag"] = listed[1]
                    self._in_place[key] = listed
                ops.append(op)
        same_size = [op for op in ops if op.remote.get("etag")]
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=self.settings.n_jobs, thread_name_prefix="compare")
        try:
            list(pool.map(lambda op: self._compare_content(op, stop), same_size))
        except KeyboardInterrupt:
            stop.set()  # hashing a cold 50 GB dataset must not delay Ctrl-C
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return ops

    def begin(self) -> None:
        self._abort_stale_uploads()

    def transfer(self, op: Operation, progress: Callable[[int], None], stop: threading.Event) -> None:
        file = op.file
        assert file is not None  # S3 plans have no remote-only deletions
        if not file.unchanged_on_disk():
            raise FileUploadError("the file changed on disk during the run; re-run to upload its new content")
        try:
            sums = digests(file, ("sha256", part_md5_name(self.part_size(file))), self.cache, stop)
        except Cancelled:
            raise FileUploadError("interrupted") from None
        except OSError as exc:
            raise FileUploadError(f"cannot read {file.path}: {exc.strerror}") from None
        op.checksum = f"sha256:{sums['sha256']}"
        part_md5s = sums[part_md5_name(self.part_size(file))].split(",")
        etag = _expected_etag(file, part_md5s)
        if op.is_catalog:
            self._confirm_dataset_in_place(op)
        extra = {"ContentType": content_type(file.name), "Metadata": {SHA256_META: sums["sha256"]}}
        self._in_place.pop(op.destination, None)
        try:
            if _is_multipart(file):
                self._put_multipart(file, op.destination, extra, part_md5s, progress)
                response: dict[str, Any] = {}
            else:
                response = self._put_single(file, op.destination, extra, part_md5s[0])
                progress(file.size)
        except Exception as exc:
            raise _file_error(exc) from None
        if response and not _etag_is_opaque(response):
            if response.get("ETag", "").strip('"') != etag:
                raise FileUploadError("verification failed: the store's MD5 (ETag) differs from the file's",
                                      retryable=True)
            if not op.is_catalog and content_type(file.name) in self._headers_proven:
                self._in_place[op.destination] = (file.size, etag)
                return
        self._verify(op.destination, file, sums["sha256"], etag)

    def finish(self, ops: list[Operation], *, ok: bool) -> list[str]:
        self.close()
        published = [op.destination for op in ops if op.is_catalog and op.status in ("uploaded", "skipped")]
        return [f"catalog: {self.destination.uri(key)}" for key in published]

    def cancel(self) -> None:
        with self._manager_lock:
            manager = self._manager
        if manager is not None:
            # Cancelling runs s3transfer's failure clean-up: in-flight multipart uploads are aborted.
            # The context-manager exit is the path that cancels correctly: shutdown(cancel=True)
            # hands its arguments on shifted in s3transfer 0.19 and fails on a live transfer.
            interrupt = KeyboardInterrupt("interrupted")
            manager.__exit__(KeyboardInterrupt, interrupt, None)
        self._abort_stale_uploads()

    def close(self) -> None:
        with self._manager_lock:
            if self._manager is not None:
                self._manager.shutdown()
                self._manager = None

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def part_size(file: LocalFile) -> int:
        """The part size s3transfer will use for this file (it grows parts past 10,000)."""
        from s3transfer.utils import ChunksizeAdjuster

        return int(ChunksizeAdjuster().adjust_chunksize(PART_SIZE, file.size))

    def _probe_write(self) -> None:
        # A multipart upload that is started and aborted proves write access
        # without leaving an object behind, before gigabytes are sent.
        key = "/".join(p for p in (self.destination.prefix, PROBE_KEY) if p)
        with _translated(f"writing under {self.destination.uri()}", self.settings):
            upload_id = self.client.create_multipart_upload(Bucket=self.destination.bucket, Key=key)["UploadId"]
            self.client.abort_multipart_upload(Bucket=self.destination.bucket, Key=key, UploadId=upload_id)

    def _list(self, prefix: str) -> dict[str, tuple[int, str]]:
        listing: dict[str, tuple[int, str]] = {}
        with _translated(f"listing {self.destination.uri(prefix)}", self.settings):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.destination.bucket, Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    listing[item["Key"]] = (item["Size"], item.get("ETag", "").strip('"'))
        return listing

    def _compare_content(self, op: Operation, stop: threading.Event) -> None:
        file = op.file
        assert file is not None
        name = part_md5_name(self.part_size(file))
        try:
            sums = digests(file, ("sha256", name), self.cache, stop)
        except Cancelled:
            return
        if op.remote.pop("etag") == _expected_etag(file, sums[name].split(",")):
            op.action, op.reason = Action.SKIP, "unchanged (same size and MD5)"
            return
        with _translated(f"reading {op.destination}", self.settings):
            head = self.client.head_object(Bucket=self.destination.bucket, Key=op.destination)
        if head.get("Metadata", {}).get(SHA256_META) == sums["sha256"]:
            op.action, op.reason = Action.SKIP, "unchanged (same size and SHA-256)"
        else:
            op.reason = "content differs (same size)"

    def _put_single(self, file: LocalFile, key: str, extra: dict[str, Any], md5_hex: str) -> dict[str, Any]:
        # Read whole (it is under one part): an in-memory body is sent without
        # 'Expect: 100-continue' (_no_continue_for_small_bodies), one round trip less per file.
        with open(file.path, "rb") as handle:
            body = handle.read()
        response = self.client.put_object(Bucket=self.destination.bucket, Key=key, Body=body,
                                          ContentMD5=_b64(md5_hex), **extra)
        return dict(response)

    def _put_multipart(self, file: LocalFile, key: str, extra: dict[str, Any], part_md5s: list[str],
                       progress: Callable[[int], None]) -> None:
        from s3transfer.subscribers import BaseSubscriber

        class _Progress(BaseSubscriber):  # type: ignore[misc]
            def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
                progress(bytes_transferred)

        self._part_md5s[key] = part_md5s
        try:
            future = self._transfer_manager().upload(str(file.path), self.destination.bucket, key,
                                                     extra_args=extra, subscribers=[_Progress()])
            future.result()
        finally:
            self._part_md5s.pop(key, None)

    def _add_part_md5(self, params: dict[str, Any], **kwargs: Any) -> None:
        part_md5s = self._part_md5s.get(params.get("Key", ""))
        if part_md5s and 1 <= params.get("PartNumber", 0) <= len(part_md5s):
            params["ContentMD5"] = _b64(part_md5s[params["PartNumber"] - 1])

    def _transfer_manager(self) -> TransferManager:
        with self._manager_lock:
            if self._manager is None:
                from s3transfer.manager import TransferConfig, TransferManager

                config = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE,
                                        max_request_concurrency=self.settings.n_jobs)
                self._manager = TransferManager(self.client, config)
            return self._manager

    def _verify(self, key: str, file: LocalFile, sha256: str, etag: str) -> None:
        try:
            head = self.client.head_object(Bucket=self.destination.bucket, Key=key)
        except Exception as exc:
            raise _file_error(exc) from None
        problems = []
        if head["ContentLength"] != file.size:
            problems.append(f"size {head['ContentLength']} != {file.size}")
        if head.get("Metadata", {}).get(SHA256_META) != sha256:
            problems.append("stored sha256 differs")
        if head.get("ContentType") != content_type(file.name):
            problems.append(f"Content-Type {head.get('ContentType')!r}")
        if head.get("ContentEncoding"):
            problems.append(f"unexpected Content-Encoding {head['ContentEncoding']!r}")
        # With SSE-KMS or SSE-C the ETag is not an MD5; the stored sha256 still is checked.
        opaque = _etag_is_opaque(head)
        if not opaque and head.get("ETag", "").strip('"') != etag:
            problems.append("ETag does not match the local MD5")
        if problems:
            raise FileUploadError(f"verification failed: {'; '.join(problems)}", retryable=True)
        self._headers_proven.add(content_type(file.name))
        self._in_place[key] = (file.size, None if opaque else etag)

    def _confirm_dataset_in_place(self, catalog: Operation) -> None:
        """One listing shows every file of the catalog's dataset as uploaded (or as found unchanged)."""
        dataset = catalog.dataset
        try:
            listing = self._list(self.destination.dataset_prefix(dataset))
        except UploaderError as exc:
            raise FileUploadError(f"not published: {exc.message}", retryable=True) from None
        wrong = []
        for file in dataset.files:
            key = self.destination.key(dataset, file.name)
            expected, found = self._in_place.get(key), listing.get(key)
            if expected is None or found is None or found[0] != expected[0] or \
                    (expected[1] is not None and found[1] != expected[1]):
                wrong.append(file.name)
        if wrong:
            raise FileUploadError(f"not published: {len(wrong)} file(s) are not in the bucket as uploaded"
                                  f" (e.g. {wrong[0]}); is something else writing there? Re-run to repair")

    def _abort_stale_uploads(self) -> None:
        # Parts of an interrupted multipart upload are invisible but billed:
        # abort those for the keys this run publishes (left by a killed run).
        if not self._planned_keys:
            return
        prefixes = {key.rsplit("/", 1)[0] + "/" if "/" in key else "" for key in self._planned_keys}
        try:
            for prefix in prefixes:
                pages = self.client.get_paginator("list_multipart_uploads").paginate(
                    Bucket=self.destination.bucket, Prefix=prefix)
                for page in pages:
                    for upload in page.get("Uploads", []):
                        if upload["Key"] in self._planned_keys:
                            self.client.abort_multipart_upload(Bucket=self.destination.bucket,
                                                               Key=upload["Key"], UploadId=upload["UploadId"])
        except Exception:
            pass


def _make_client(settings: S3Settings) -> S3Client:
    import botocore.exceptions

    try:
        return _build_client(settings)
    except botocore.exceptions.ProfileNotFound:
        raise UsageError(f"--profile {settings.profile}: no such profile in the AWS config files;"
                         " check ~/.aws/config or run 'aws configure --profile NAME'") from None
    except botocore.exceptions.BotoCoreError as exc:  # e.g. a config file that does not parse
        raise UsageError(f"AWS configuration problem: {exc}; fix the file (or AWS_CONFIG_FILE)") from None


def _build_client(settings: S3Settings) -> S3Client:
    import boto3
    import botocore
    import botocore.session
    from botocore.config import Config

    core = botocore.session.get_session()
    # Timestamps (LastModified) are never used: parsing them with dateutil was a third of a listing's cost.
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
    session = boto3.session.Session(profile_name=settings.profile, botocore_session=core)
    options: dict[str, Any] = {
        "max_pool_connections": 2 * settings.n_jobs + 4,
        # Given whole, the User-Agent is built once; botocore's own is rebuilt twice per request
        # (a tenth of a small PUT's CPU).
        "user_agent": f"cartload-uploader/{__version__} Boto3/{boto3.__version__} Botocore/{botocore.__version__}"
                      f" Python/{platform.python_version()}",
        # Every request that carries data carries a Content-MD5 the server checks (see above).
        "s3": {"payload_signing_enabled": False},
    }
    # Let explicit AWS_* settings win; otherwise choose what is safe on every store.
    if not os.environ.get("AWS_REQUEST_CHECKSUM_CALCULATION"):
        options["request_checksum_calculation"] = "when_required"
    if not os.environ.get("AWS_RESPONSE_CHECKSUM_VALIDATION"):
        options["response_checksum_validation"] = "when_required"
    if not os.environ.get("AWS_RETRY_MODE") and not os.environ.get("AWS_MAX_ATTEMPTS"):
        options["retries"] = {"mode": "standard", "max_attempts": 8}
    region = session.region_name or "us-east-1"
    client = session.client("s3", endpoint_url=settings.endpoint_url, region_name=region, config=Config(**options))
    host = urlsplit(client.meta.endpoint_url).hostname or ""
    if not host.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        # S3-compatible stores on custom endpoints rarely resolve bucket sub-domains.
        options["s3"] = {"addressing_style": "path", "payload_signing_enabled": False}
        client = session.client("s3", endpoint_url=settings.endpoint_url, region_name=region,
                                config=Config(**options))
    if session.get_credentials() is None:
        raise AuthError("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,"
                        " run 'aws configure', or pass --profile")
    return client


@contextmanager
def _translated(what: str, settings: S3Settings) -> Iterator[None]:
    """Turn botocore failures of an up-front call into one-line UploaderErrors."""
    import botocore.exceptions as bx

    try:
        yield
    except bx.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchBucket", "404") and what.startswith("bucket"):
            raise UsageError(f"--s3-dir: {what} does not exist; create it first or check the name"
                             " (and --endpoint-url)") from None
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
            raise AuthError(f"credentials rejected ({code}) for {what}; check the access key and"
                            " secret (or --profile), or refresh expired ones") from None
        if code in AUTH_CODES or status == 403:
            raise AuthError(f"access denied for {what}: these credentials may not do this; ask the"
                            " bucket owner for s3:ListBucket and s3:PutObject on it") from None
        raise RemoteError(f"{what} failed: {code} {_message(exc)}") from None
    except (bx.NoCredentialsError, bx.PartialCredentialsError):
        raise AuthError("no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,"
                        " run 'aws configure', or pass --profile") from None
    except (bx.SSOError, bx.TokenRetrievalError):
        raise AuthError(f"AWS SSO login needed: run 'aws sso login' (profile {settings.profile or 'default'});"
                        " under Singularity ~/.aws must be writable for the SSO cache") from None
    except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError) as exc:
        raise RemoteError(f"cannot reach the S3 endpoint for {what}: {exc}; check --endpoint-url"
                          " and the network") from None
    except bx.BotoCoreError as exc:
        raise RemoteError(f"{what} failed: {exc}") from None


def _file_error(exc: BaseException) -> FileUploadError:
    import botocore.exceptions as bx

    if isinstance(exc, FileUploadError):
        return exc
    if isinstance(exc, bx.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        # BadDigest: the bytes the server got are not the bytes we hashed; botocore does not retry it.
        return FileUploadError(f"{code}: {_message(exc)}", retryable=code in ("BadDigest", "InvalidDigest"))
    if isinstance(exc, OSError) and not isinstance(exc, bx.BotoCoreError):
        return FileUploadError(f"cannot read the file: {exc.strerror or exc}")
    return FileUploadError(f"{type(exc).__name__}: {exc}")


def _message(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)


def _no_continue_for_small_bodies(params: dict[str, Any], **kwargs: Any) -> None:
    # botocore asks for '100-continue' before any body; for a body under one part,
    # in memory, that round trip costs more than sending it would.
    body = params.get("body")
    if isinstance(body, io.BytesIO) and body.getbuffer().nbytes < PART_SIZE:
        params.get("headers", {}).pop("Expect", None)


def _etag_is_opaque(response: Any) -> bool:
    """With SSE-KMS or SSE-C the ETag is not the MD5 of the content."""
    return str(response.get("ServerSideEncryption", "")).startswith("aws:kms") \
        or bool(response.get("SSECustomerAlgorithm"))


def _is_multipart(file: LocalFile) -> bool:
    return file.size >= PART_SIZE  # s3transfer's rule with multipart_threshold=PART_SIZE


def _expected_etag(file: LocalFile, part_md5s: list[str]) -> str:
    """The ETag S3 gives our upload: the MD5, or for multipart the MD5 of part MD5s and the part count."""
    if not _is_multipart(file):
        return part_md5s[0]
    joined = b"".join(bytes.fromhex(h) for h in part_md5s)
    return f"{md5(joined).hexdigest()}-{len(part_md5s)}"


def _b64(md5_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(md5_hex)).decode("ascii")

"""The S3 backend: the runner's view of a bucket (AWS, MinIO, SeaweedFS, Ceph, ...).

What only S3 knows stays here: which ETags are MD5s (single PUTs), which are
the MD5 of the part MD5s (multipart uploads with our part size), and which
tell nothing (another part size, SSE-KMS); the SHA-256 kept as
`x-amz-meta-sha256`; and the headers a store must keep.

Verification: a single PUT is confirmed by the ETag it returns (the server's
MD5 of what it stored); a multipart object, the catalog, and the first object
of each Content-Type by a HEAD (size, SHA-256, Content-Type, no
Content-Encoding, and the object options given): a store that drops headers
drops them for every object.

The object options (options.py) go with every PutObject and
CreateMultipartUpload; the request payer with every request. An unchanged
object whose options differ from those given is updated in place (UPDATE):
a server-side copy onto itself that keeps its bytes, SHA-256 and
Content-Type, or only a new ACL.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from uploader.backend import RemoteFile, Stored
from uploader.content_types import content_type
from uploader.errors import FileUploadError, RemoteError, UsageError
from uploader.hashing import multipart_etag_name, part_md5_name
from uploader.operations import PUBLISHED, Action, Operation
from uploader.plan import Dataset, LocalFile, UploadPlan
from uploader.s3.client import (
    AUTH_CODES,
    S3Settings,
    as_file_upload_error,
    error_message,
    make_client,
    uploader_errors_for,
)
from uploader.s3.destination import S3Destination
from uploader.s3.leases import Leases
from uploader.s3.options import ObjectOptions, canned_acl_of, grants_as_params, stored_values
from uploader.s3.transport import Sent, make_transport
from uploader.s3.writer import PART_SIZE, ObjectWriter, is_multipart, part_size

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

SHA256_META = "sha256"
OWN_KEY_MARK = ".cartload-uploader"  # the tool's own keys (write probe, leases): never a dataset's file
PROBE_KEY = f"{OWN_KEY_MARK}-write-check"
COPY_LIMIT = 5 * 1024**3  # the largest object one CopyObject copies; beyond, a multipart copy
RELEASE_WAIT_SECONDS = 3
log = logging.getLogger("uploader")


class S3Backend:
    """Publishes an UploadPlan under an S3Destination (see backend.Backend)."""

    restart_empties_remote = False  # --restart re-sends the plan's files; other objects stay
    catalogs_go_live = True  # the viewer reads catalog.yaml the moment it is in the bucket

    def __init__(self, destination: S3Destination, settings: S3Settings,
                 objects: ObjectOptions | None = None) -> None:
        self.s3_dir = destination
        self.settings = settings
        self.objects = objects or ObjectOptions()
        self.client: S3Client = make_client(settings)
        if self.objects.request_payer:
            self.client.meta.events.register("before-parameter-build.s3", self._add_request_payer)
        transport = make_transport(self.client, destination.bucket, connections=settings.n_jobs)
        self.leases = Leases(self.client, destination.bucket, destination.prefix, take_over=settings.take_over)
        self.writer = ObjectWriter(self.client, destination.bucket, transport, self.leases)
        # Multipart uploads and sends verified by a HEAD wait for their answers in these threads.
        self._waiting = ThreadPoolExecutor(settings.n_jobs, thread_name_prefix="s3-send")
        self._bucket_there: Future[None] | None = None
        self._ready_to_write: Future[None] | None = None
        # A HEAD of the first object of each Content-Type proves the store keeps our headers; until it
        # has, the others of that type wait for it (the proof), then go out verified by their ETags.
        self._proofs: dict[str, Future[Stored]] = {}
        self._proofs_lock = threading.Lock()
        self._copier: Any = None  # s3transfer's TransferManager, made for the first UPDATE of an object over 5 GiB
        # The HEAD each object's options were compared by: its update starts from it (one request less each).
        self._heads: dict[str, Any] = {}
        self._updates_proven = threading.Event()  # an update was read back: the store keeps what it is asked
        self._acls: bool | None = None  # whether the bucket has object ACLs, once asked

    # -- what is there --------------------------------------------------------------------

    def destination(self, dataset: Dataset, name: str) -> str:
        return self.s3_dir.key(dataset, name)

    def digests_to_send(self, file: LocalFile) -> tuple[str, ...]:
        return "sha256", part_md5_name(part_size(file.size))

    def check_access(self, plan: UploadPlan, *, dry_run: bool) -> None:
        """Checks that go on beside the first listing (round trips on a WAN): the bucket, then writing."""
        self._bucket_there = self._waiting.submit(self._check_bucket)
        if not dry_run:
            self._ready_to_write = self._waiting.submit(self._prepare_to_write)

    def remote_files(self, dataset: Dataset) -> dict[str, RemoteFile]:
        listing = self._list(dataset)
        if self._bucket_there is not None:
            self._bucket_there.result()  # some stores list a missing bucket as empty
        return listing

    def _check_bucket(self) -> None:
        bucket = self.s3_dir.bucket
        with uploader_errors_for(f"bucket '{bucket}'", self.settings):
            self.client.head_bucket(Bucket=bucket)

    def _list(self, dataset: Dataset) -> dict[str, RemoteFile]:
        prefix = self.s3_dir.dataset_prefix(dataset)
        found: dict[str, RemoteFile] = {}
        with uploader_errors_for(f"listing {self.s3_dir.uri(prefix)}", self.settings):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.s3_dir.bucket,
                                                                          Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    if item["Key"].rsplit("/", 1)[-1].startswith(OWN_KEY_MARK):
                        continue  # the tool's own bookkeeping: not compared, never deleted
                    size, etag = item["Size"], item.get("ETag", "").strip('"')
                    found[item["Key"]] = RemoteFile(item["Key"], size, _digests_of_etag(etag, size))
        return found

    def digests_on_request(self, remote: RemoteFile) -> dict[str, str]:
        with uploader_errors_for(f"reading {remote.name}", self.settings):
            head = self.client.head_object(Bucket=self.s3_dir.bucket, Key=remote.name)
        stored = head.get("Metadata", {}).get(SHA256_META)
        return {"sha256": stored} if stored else {}

    def stored_options(self, remote: RemoteFile, wanted: Mapping[str, str]) -> dict[str, str]:
        """What the object holds for each wanted option (a HEAD; GetObjectAcl for --acl), in the options' terms."""
        with uploader_errors_for(f"reading the options of {remote.name}", self.settings):
            return self._stored_values(remote.name, wanted)

    def _stored_values(self, key: str, wanted: Mapping[str, str]) -> dict[str, str]:
        found: dict[str, str] = {}
        if set(wanted) - {"--acl"}:
            head = self._heads[key] = self.client.head_object(Bucket=self.s3_dir.bucket, Key=key)
            found.update(stored_values(head, wanted))
        if "--acl" in wanted:
            acl = self.client.get_object_acl(Bucket=self.s3_dir.bucket, Key=key)
            found["--acl"] = canned_acl_of(acl, wanted["--acl"])
        return found

    def read(self, remote: RemoteFile) -> bytes:
        with uploader_errors_for(f"reading {self.s3_dir.uri(remote.name)}", self.settings):
            return bytes(self.client.get_object(Bucket=self.s3_dir.bucket, Key=remote.name)["Body"].read())

    def check_plan(self, ops: list[Operation]) -> None:
        """Any plan fits in a bucket."""

    # -- writing --------------------------------------------------------------------------

    def begin(self, ops: list[Operation]) -> bool:
        """Before the first write: the write probe started at check_access must have passed."""
        if any(op.action is not Action.SKIP for op in ops) and self._ready_to_write is not None:
            self._ready_to_write.result()  # a refusal stops the run before gigabytes are sent
        return False

    def _prepare_to_write(self) -> None:
        """Prove write access and learn whose the unfinished uploads are, side by side with the listing."""
        assert self._bucket_there is not None
        self._bucket_there.result()  # a write to a missing bucket may create it on some stores
        with ThreadPoolExecutor(1, thread_name_prefix="leases") as pool:
            survey = pool.submit(self._survey_uploads)
            self._probe_write()
            survey.result()

    def _survey_uploads(self) -> None:
        with uploader_errors_for(f"listing unfinished uploads under {self.s3_dir.uri()}", self.settings):
            self.leases.survey(abort_all=self.settings.abort_incomplete)

    def start_send(self, op: Operation, digests: Mapping[str, str], progress: Callable[[int], None],
                   stop: threading.Event) -> Future[Stored]:
        """A small file goes out without a thread of ours once its Content-Type is proven; the rest wait in one."""
        file = op.file
        assert file is not None
        parts = part_size(file.size)
        part_md5s = digests[part_md5_name(parts)].split(",")
        kind = content_type(file.name)
        if op.action is Action.UPDATE:
            return self._waiting.submit(self._update, op, digests["sha256"])
        params: dict[str, Any] = {"ContentType": kind, "Metadata": {SHA256_META: digests["sha256"]},
                                  **self.objects.put_params(catalog=op.is_catalog)}
        if op.is_catalog:
            return self._waiting.submit(self._send_and_check, op, params, part_md5s, progress, stop, True)
        with self._proofs_lock:
            proof = self._proofs.get(kind)
            if proof is None or (proof.done() and proof.exception() is not None):
                proof = self._waiting.submit(self._send_and_check, op, params, part_md5s, progress, stop, True)
                self._proofs[kind] = proof
                return proof
        if not proof.done():
            stored: Future[Stored] = Future()
            proof.add_done_callback(lambda _: _forward(self.start_send(op, digests, progress, stop), stored))
            return stored
        if is_multipart(file.size):
            return self._waiting.submit(self._send_and_check, op, params, part_md5s, progress, stop, False)
        stored = Future()
        sending = self.writer.start_single(file, op.destination, params, part_md5s[0], progress)
        sending.add_done_callback(lambda sent: self._settle(op, sent, stored))
        return stored

    def _settle(self, op: Operation, sending: Future[Sent], stored: Future[Stored]) -> None:
        """In the transport's thread: what a single PUT stored, by its ETag (a HEAD where the ETag is no MD5)."""
        assert op.file is not None
        try:
            sent = sending.result()
        except Exception as exc:
            stored.set_exception(as_file_upload_error(exc))
            return
        if sent.encryption.startswith("aws:kms"):  # SSE-KMS: the ETag is no MD5; only a HEAD tells
            headed = self._waiting.submit(self._stored_as_headed, op.destination, op.file)
            headed.add_done_callback(lambda done: _copy_outcome(done, stored))
            return
        stored.set_result(Stored(op.file.size, {multipart_etag_name(part_size(op.file.size)): sent.etag}))

    def _send_and_check(self, op: Operation, params: dict[str, Any], part_md5s: list[str],
                        progress: Callable[[int], None], stop: threading.Event, head: bool) -> Stored:
        """Send and wait; what a HEAD shows when asked for (or the ETag is no MD5), else the ETag."""
        file = op.file
        assert file is not None
        try:
            sent = self.writer.put(file, op.destination, params, part_md5s, params["Metadata"][SHA256_META],
                                   progress, stop)
        except Exception as exc:
            raise as_file_upload_error(exc) from None
        if head or sent.encryption.startswith("aws:kms"):
            return replace(self._stored_as_headed(op.destination, file), resumed=sent.resumed)
        return Stored(file.size, {multipart_etag_name(part_size(file.size)): sent.etag}, resumed=sent.resumed)

    def delete(self, op: Operation) -> None:
        try:
            self.client.delete_object(Bucket=self.s3_dir.bucket, Key=op.destination)
        except Exception as exc:
            raise as_file_upload_error(exc) from None

    def finish(self, ops: list[Operation], *, ok: bool) -> list[str]:
        if self._ready_to_write is not None:
            self._ready_to_write.exception()  # a run with nothing to write still lets the probe clean up
        if self._copier is not None:
            self._copier.shutdown()
        self.leases.release()
        published = [op.destination for op in ops if op.is_catalog and op.status in PUBLISHED]
        return [f"catalog: {self.s3_dir.uri(key)}" for key in published] + self._kept_uploads()

    def cancel(self) -> None:
        """Stop what is in flight; keep the unfinished uploads, and hand them to the next run at once."""
        self.writer.cancel()
        if self._copier is not None:  # the context-manager exit is the way s3transfer 0.19 cancels a live copy
            self._copier.__exit__(KeyboardInterrupt, KeyboardInterrupt("interrupted"), None)
        # Releasing the lease is a request: a dead endpoint must not hold the interrupt (stale after a while).
        releasing = threading.Thread(target=self._release_quietly, name="release", daemon=True)
        releasing.start()
        releasing.join(timeout=RELEASE_WAIT_SECONDS)
        for line in self._kept_uploads():
            log.warning("%s", line)

    def _release_quietly(self) -> None:
        try:
            self.leases.release()
        except Exception as exc:  # the lease goes stale instead, and the next run takes its uploads then
            log.warning("warning: could not release this run's lease (%s)", exc)

    def _kept_uploads(self) -> list[str]:
        return [f"kept: the unfinished upload of {record.key} ({record.size:,d} bytes) stays on the store;"
                " the same command continues it" for record in self.leases.kept()]

    def resume_options(self) -> list[str]:
        return []  # the same command resumes: S3 keys are the destination

    # -- helpers --------------------------------------------------------------------------

    def _probe_write(self) -> None:
        # A multipart upload that is started, given one tiny part with a Content-MD5, and aborted proves
        # write access, and that the store takes the Content-MD5 every upload carries, without leaving an
        # object behind, before gigabytes are sent.
        key = "/".join(p for p in (self.s3_dir.prefix, PROBE_KEY) if p)
        what = f"writing under {self.s3_dir.uri()}"
        with uploader_errors_for(what, self.settings), self._options_refused_as_usage():
            # With the object options of the run: a store that refuses one (an ACL on a bucket without
            # ACLs, an unknown storage class or KMS key) says so before any upload.
            upload_id = self.client.create_multipart_upload(Bucket=self.s3_dir.bucket, Key=key,
                                                            **self.objects.put_params(catalog=False))["UploadId"]
        try:
            self._probe_part_with_md5(key, upload_id, what)
        finally:
            with uploader_errors_for(what, self.settings):
                self.client.abort_multipart_upload(Bucket=self.s3_dir.bucket, Key=key, UploadId=upload_id)

    def _probe_part_with_md5(self, key: str, upload_id: str, what: str) -> None:
        import botocore.exceptions

        body = b"cartload-uploader write check\n"
        with uploader_errors_for(what, self.settings):
            try:
                self.client.upload_part(Bucket=self.s3_dir.bucket, Key=key, UploadId=upload_id, PartNumber=1,
                                        Body=body, ContentMD5=base64.b64encode(hashlib.md5(body).digest()).decode())
            except botocore.exceptions.ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code in AUTH_CODES or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 403:
                    raise  # reported as a permission problem
                raise RemoteError(f"the store refused a part carrying a Content-MD5 header ({code}:"
                                  f" {error_message(exc)}); every part this tool sends carries one, so that the"
                                  " store rejects corrupted bytes, so it cannot upload here: use a store that"
                                  " checks Content-MD5 (AWS S3, MinIO and SeaweedFS do)") from None

    @contextmanager
    def _options_refused_as_usage(self) -> Iterator[None]:
        """A request the store refuses as invalid (400, 501) while object options are given: those options' fault."""
        import botocore.exceptions

        try:
            yield
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if not self.objects.flags or status not in (400, 501) or code in AUTH_CODES:
                raise
            raise UsageError(f"the store refused an upload with {', '.join(self.objects.flags)} ({code}:"
                             f" {error_message(exc)}); check those options, or leave out what this store does"
                             " not support") from None

    def _stored_as_headed(self, key: str, file: LocalFile, *, updated: bool = False) -> Stored:
        """What a HEAD shows of the object; the headers the viewer needs, and the options given, are checked here.

        `updated`: after a copy onto itself, whose new ETag is accepted as the store makes it (AWS gives a
        copied multipart object a plain MD5, which only reading the whole file again could check).
        """
        try:
            head = self.client.head_object(Bucket=self.s3_dir.bucket, Key=key)
            wanted = self.objects.stored()
            kept = stored_values(head, wanted)
            if "--acl" in wanted:
                kept["--acl"] = canned_acl_of(self.client.get_object_acl(Bucket=self.s3_dir.bucket, Key=key),
                                              wanted["--acl"])
        except Exception as exc:
            raise as_file_upload_error(exc) from None
        problems = []
        if head.get("ContentType") != content_type(file.name):
            problems.append(f"Content-Type {head.get('ContentType')!r}")
        if head.get("ContentEncoding"):
            problems.append(f"unexpected Content-Encoding {head['ContentEncoding']!r}")
        if problems:
            raise FileUploadError(f"verification failed: {'; '.join(problems)}", retryable=True)
        if dropped := [f"{name} {value} (it holds {kept.get(name) or 'none'})" for name, value in wanted.items()
                       if kept.get(name) != value]:
            raise FileUploadError(f"the store did not keep {'; '.join(dropped)}: it ignores what was asked for; leave"
                                  " the option out, or use a store that keeps it")
        vouched = {"sha256": head.get("Metadata", {}).get(SHA256_META, "")}
        etag, size = head.get("ETag", "").strip('"'), int(head["ContentLength"])
        opaque = _etag_is_opaque(head)  # with SSE-KMS or SSE-C the ETag is not an MD5
        if updated and not opaque:
            vouched.update((name, value) for name, value in _digests_of_etag(etag, size).items() if name != "md5")
        elif not opaque:
            vouched[multipart_etag_name(part_size(file.size))] = etag
        return Stored(size, vouched)

    # -- updating an object's options in place ----------------------------------------------

    def _update(self, op: Operation, sha256: str) -> Stored:
        """Give an unchanged object the options this run asks for, without sending its bytes again."""
        file = op.file
        assert file is not None
        assert op.remote is not None
        try:
            if set(op.changes) - {"--acl"}:
                stored = self._copy_onto_itself(op.destination, file, sha256)
            else:  # only the ACL: its own request; the bytes, and so the listed digests, stay as they are
                acl: Any = self.objects.acl
                self.client.put_object_acl(Bucket=self.s3_dir.bucket, Key=op.destination, ACL=acl)
                stored = Stored(op.remote.size, op.remote.digests)
        except Exception as exc:
            raise as_file_upload_error(exc) from None
        if stored is None or not self._updates_proven.is_set():
            # As for uploads: the first update of a run is read back (a store that drops an option drops it
            # for every object); so is a copy whose answer vouches for nothing (SSE-KMS, a new plain MD5).
            stored = self._stored_as_headed(op.destination, file, updated=True)
            self._updates_proven.set()
        return stored

    def _copy_onto_itself(self, key: str, file: LocalFile, sha256: str) -> Stored | None:
        """A server-side copy with new headers (MetadataDirective REPLACE) that keeps what it is not asked to change.

        REPLACE drops every header not given again, and a copy's ACL is private unless given: what the
        object holds is read first and given again (its grants as Grant* headers: the copy is never
        private for a moment), with this run's options over it.
        """
        bucket = self.s3_dir.bucket
        head = self._heads.pop(key, None) or self.client.head_object(Bucket=bucket, Key=key)
        if head["ContentLength"] != file.size:
            raise FileUploadError("it changed on the remote since it was listed; re-run to compare it again")
        grants = {} if self.objects.acl or not self._bucket_has_acls() else self._grants_to_keep(key)
        kept = {name: head[name] for name in ("CacheControl", "ContentDisposition", "ContentLanguage", "StorageClass",
                                              "ServerSideEncryption", "SSEKMSKeyId") if head.get(name)}
        if self.objects.sse:
            kept.pop("SSEKMSKeyId", None)  # the key of the encryption it had, not of the one asked for
        extra = {**kept, **grants, "MetadataDirective": "REPLACE", "ContentType": content_type(file.name),
                 "Metadata": {**head.get("Metadata", {}), SHA256_META: sha256},
                 "CopySourceIfMatch": head["ETag"],  # the object compared, not one written meanwhile
                 **self.objects.put_params(catalog=False)}
        source: Any = {"Bucket": bucket, "Key": key}
        if file.size > COPY_LIMIT:
            self._copy_manager().copy(source, bucket, key, extra_args=extra).result()
            return None
        copied = self.client.copy_object(Bucket=bucket, Key=key, CopySource=source, **extra)
        if _etag_is_opaque(copied):
            return None
        etag = str(copied.get("CopyObjectResult", {}).get("ETag", "")).strip('"')
        vouched = {name: value for name, value in _digests_of_etag(etag, file.size).items() if name != "md5"}
        return Stored(file.size, vouched) if vouched else None  # the source's size: CopySourceIfMatch held

    def _bucket_has_acls(self) -> bool:
        """False when the bucket's ObjectOwnership is BucketOwnerEnforced (AWS's default): no ACL to keep."""
        import botocore.exceptions

        with self._proofs_lock:
            if self._acls is None:
                try:
                    rules = self.client.get_bucket_ownership_controls(Bucket=self.s3_dir.bucket)
                    owners = {rule.get("ObjectOwnership") for rule in rules["OwnershipControls"]["Rules"]}
                    self._acls = owners != {"BucketOwnerEnforced"}
                except botocore.exceptions.ClientError:  # none set, not implemented, or not allowed to ask
                    self._acls = True
            return self._acls

    def _grants_to_keep(self, key: str) -> dict[str, str]:
        """The object's ACL as Grant* parameters, if it grants more than its owner's FULL_CONTROL (else none)."""
        import botocore.exceptions

        try:
            acl = self.client.get_object_acl(Bucket=self.s3_dir.bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NotImplemented", "AccessControlListNotSupported"):
                return {}  # a store or bucket without ACLs: nothing to lose
            raise
        return {} if canned_acl_of(acl, "private") == "private" else grants_as_params(acl)

    def _copy_manager(self) -> Any:
        """One s3transfer manager for the run, for objects over 5 GiB: a multipart copy in our part size."""
        with self._proofs_lock:
            if self._copier is None:
                from s3transfer.manager import TransferConfig, TransferManager

                self._copier = TransferManager(self.client, TransferConfig(
                    multipart_threshold=COPY_LIMIT, multipart_chunksize=PART_SIZE))
            return self._copier

    def _add_request_payer(self, params: dict[str, Any], model: Any, **kwargs: Any) -> None:
        """botocore's before-parameter-build: --request-payer on every request that takes it (list, HEAD, copy...)."""
        shape = model.input_shape
        if shape is not None and "RequestPayer" in shape.members:
            params.setdefault("RequestPayer", self.objects.request_payer)


def _digests_of_etag(etag: str, size: int) -> dict[str, str]:
    """What a listed ETag vouches for: the MD5, our multipart ETag, or nothing (another part size, SSE-KMS)."""
    parts = part_size(size)
    if "-" in etag:
        count = etag.rsplit("-", 1)[1]
        expected = -(-size // parts)
        return {multipart_etag_name(parts): etag} if count.isdigit() and int(count) == expected else {}
    if len(etag) != 32:
        return {}
    # A plain MD5-shaped ETag: our single PUT, or another tool's single PUT of a bigger file.
    return {multipart_etag_name(parts): etag} if not is_multipart(size) else {"md5": etag}


def _etag_is_opaque(response: Any) -> bool:
    """With SSE-KMS or SSE-C the ETag is not the MD5 of the content."""
    return str(response.get("ServerSideEncryption", "")).startswith("aws:kms") \
        or bool(response.get("SSECustomerAlgorithm"))


def _forward(source: Future[Stored], target: Future[Stored]) -> None:
    """`target` ends as `source` will (without waiting for it here)."""
    source.add_done_callback(lambda done: _copy_outcome(done, target))


def _copy_outcome(source: Future[Stored], target: Future[Stored]) -> None:
    """Once `source` is done: the same result or error in `target`."""
    error = source.exception()
    if error is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())

"""The S3 backend: the runner's view of a bucket (AWS, MinIO, SeaweedFS, Ceph, ...).

It lists what is there (verify.py says what each ETag vouches for), checks
the bucket beside that listing and lets the run's first write prove write
access (access.py), sends files and verifies what the
store holds (sends.py, over writer.py and transport.py), updates unchanged
objects' options in place (updates.py), and keeps unfinished multipart
uploads for the next run (leases.py). Its options are settings.py's.

The object options (options.py) go with every PutObject and
CreateMultipartUpload; the request payer with every request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING

from uploader.engine.operations import PUBLISHED, Action, Operation, RemoteFile, Stored
from uploader.errors import FileUploadError
from uploader.local.content_types import content_type
from uploader.local.digests import part_md5_name
from uploader.local.plan import CATALOG_NAME, Dataset, LocalFile, UploadPlan
from uploader.local.pmtiles import is_pmtiles_name
from uploader.redact import redact
from uploader.s3.access import FirstWrite, check_bucket
from uploader.s3.client import RideThroughOutages, make_client, uploader_errors_for
from uploader.s3.leases import Leases
from uploader.s3.options import send_request_payer_always
from uploader.s3.reader import S3Reader
from uploader.s3.sends import VerifiedSends
from uploader.s3.settings import S3Settings
from uploader.s3.transport import DeferredTransport, make_transport
from uploader.s3.updates import InPlaceUpdates
from uploader.s3.verify import object_now_at
from uploader.s3.writer import ObjectWriter, is_multipart, part_size

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

RELEASE_WAIT_SECONDS = 3
log = logging.getLogger("uploader")


class S3Backend:
    """Publishes an UploadPlan under an S3Destination (see backend.Backend)."""

    restart_empties_remote = False  # --restart re-sends the plan's files; other objects stay
    catalogs_go_live = True  # the viewer reads catalog.yaml the moment it is in the bucket
    holds_only_the_plan = False  # other objects under the prefix stay (unless --delete)

    def __init__(self, settings: S3Settings, n_jobs: int = 8) -> None:
        self.settings = settings
        self.s3_dir = destination = settings.s3_dir
        self.objects = settings.objects
        self.outages = RideThroughOutages(settings.stall_seconds)
        self.client: S3Client = make_client(settings, n_jobs, self.outages)
        self.reader = S3Reader(self.client, destination, settings)  # the read side, shared with verify_aws
        if payer := self.objects.given.get("--request-payer"):
            send_request_payer_always(self.client, payer)
        self._transport = DeferredTransport(partial(make_transport, self.client, destination.bucket, n_jobs))
        self.leases = Leases(self.client, destination.bucket, destination.prefix, take_over=settings.take_over)
        self.writer = ObjectWriter(self.client, destination.bucket, self._transport, self.leases)
        self.first_write = FirstWrite(destination, settings, self.objects)
        # Multipart uploads and sends verified by a HEAD wait for their answers in these threads.
        self._waiting = ThreadPoolExecutor(n_jobs, thread_name_prefix="s3-send")
        self._bucket_there: Future[None] | None = None
        self._surveyed: Future[None] | None = None  # whose the unfinished uploads are: before the first multipart
        self.updates = InPlaceUpdates(self.client, destination.bucket, self.objects)
        self.sends = VerifiedSends(self.client, destination.bucket, self.writer, self.objects, self._waiting,
                                   self.first_write, self.updates, self._wait_for_survey)

    # -- the options the decisions need -----------------------------------------------------

    overwrite = False  # --restart re-sends everything; there is no --overwrite

    @property
    def deletes_unnamed(self) -> bool:
        return self.settings.delete

    @property
    def wanted_options(self) -> Mapping[str, str]:
        return self.objects.stored()

    @property
    def stall_seconds(self) -> float | None:
        return self.settings.stall_seconds

    @property
    def waiting_for(self) -> str:
        return f"the S3 endpoint ({redact(self.client.meta.endpoint_url)})"

    # -- what is there --------------------------------------------------------------------

    def destination(self, dataset: Dataset, name: str) -> str:
        return self.reader.destination(dataset, name)

    def digests_to_send(self, file: LocalFile) -> tuple[str, ...]:
        return "sha256", part_md5_name(part_size(file.size))

    def digests_while_sending(self, file: LocalFile) -> tuple[str, ...]:
        """A first multipart upload hashes its parts as it sends them (writer.py), unless SSE-KMS is asked for:
        then the ETag vouches for nothing, and the SHA-256 must go with CreateMultipartUpload."""
        if not is_multipart(file.size) or self.objects.given.get("--sse", "").startswith("aws:kms"):
            return ()
        return self.digests_to_send(file)

    def check_access(self, plan: UploadPlan, *, dry_run: bool) -> None:
        """Beside the first listing (round trips on a WAN): the bucket, and whose the unfinished uploads are.

        Write access is what the run's first write proves (access.FirstWrite): no probe of its own.
        """
        self.s3_dir.check_keys(plan)  # keys S3 cannot hold: refused before any request
        self._bucket_there = self._waiting.submit(check_bucket, self.client, self.s3_dir.bucket, self.settings)
        if not dry_run:
            self._surveyed = self._waiting.submit(self._survey_uploads)
            self._transport.start(self._waiting.submit)

    def remote_files(self, dataset: Dataset) -> dict[str, RemoteFile]:
        listing = self._list(dataset)
        if self._bucket_there is not None:
            self._bucket_there.result()  # some stores list a missing bucket as empty
        return listing

    def _list(self, dataset: Dataset) -> dict[str, RemoteFile]:
        return self.reader.remote_files(dataset)

    def digests_on_request(self, remote: RemoteFile) -> dict[str, str]:
        return self.reader.digests_on_request(remote)

    def stored_options(self, remote: RemoteFile, wanted: Mapping[str, str]) -> dict[str, str]:
        """What the object holds for each wanted option (a HEAD; GetObjectAcl for --acl), in the options' terms."""
        with uploader_errors_for(f"reading the options of {remote.name}", self.settings):
            return self.updates.stored_values(remote.name, wanted)

    def published_headers(self, file: LocalFile) -> dict[str, str]:
        """What the viewer's browser depends on, for the catalog and the archives it reads by ranges: a
        Content-Encoding (none is ever set here) makes the browser decode bytes that are not encoded, and fail."""
        if not is_pmtiles_name(file.name) and file.name.rsplit("/", 1)[-1] != CATALOG_NAME:
            return {}
        return {"Content-Type": content_type(file.name), "Content-Encoding": ""}

    def read(self, remote: RemoteFile) -> bytes:
        return self.reader.read(remote)

    def now_at(self, name: str) -> RemoteFile | None:
        """One HEAD: the object at `name` with what its ETag and stored SHA-256 vouch for; None if there is none."""
        return object_now_at(self.client, self.s3_dir.bucket, name)

    def check_plan(self, ops: list[Operation]) -> None:
        """Any plan fits in a bucket."""

    # -- writing --------------------------------------------------------------------------

    def begin(self, ops: list[Operation]) -> bool:
        """Before the first write: the bucket is there (a write to a missing bucket creates it on some stores)."""
        if any(op.action is not Action.SKIP for op in ops) and self._bucket_there is not None:
            self._bucket_there.result()
        return False

    def _wait_for_survey(self) -> None:
        """Before a multipart upload: an unfinished upload of its file may be ours to resume, or another run's."""
        if self._surveyed is not None:
            self._surveyed.result()

    def _survey_uploads(self) -> None:
        with uploader_errors_for(f"listing unfinished uploads under {self.s3_dir.uri()}", self.settings):
            self.leases.survey(abort_all=self.settings.abort_incomplete)

    def start_send(self, op: Operation, digests: Mapping[str, str], progress: Callable[[int], None],
                   stop: threading.Event) -> Future[Stored]:
        """An update in place waits in a thread of ours; a file goes out as sends.py says."""
        if op.action is Action.UPDATE:
            return self._waiting.submit(self._update, op, digests.get("sha256", ""))
        return self.sends.start(op, digests, progress, stop)

    def delete(self, op: Operation) -> None:
        try:
            self.client.delete_object(Bucket=self.s3_dir.bucket, Key=op.destination)
        except Exception as exc:
            raise self.first_write.failure(exc) from None

    def _update(self, op: Operation, sha256: str) -> Stored:
        try:
            return self.updates.update(op, sha256)
        except FileUploadError as exc:
            raise self.first_write.failure(exc) from None

    def finish(self, ops: list[Operation], *, ok: bool) -> list[str]:
        self.updates.close()
        self.leases.release()
        published = [op.destination for op in ops if op.is_catalog and op.status in PUBLISHED]
        return [f"catalog: {self.s3_dir.uri(key)}" for key in published] + self._kept_uploads() \
            + self._survey_failed()

    def _survey_failed(self) -> list[str]:
        """The unfinished uploads could not be listed (a run that sent no multipart upload did not need them)."""
        failed = self._surveyed.exception() if self._surveyed is not None else None
        return [f"warning: {failed}; unfinished uploads under it were not checked or cleaned up"] if failed else []

    def cancel(self) -> None:
        """Stop what is in flight; keep the unfinished uploads, and hand them to the next run at once."""
        self.outages.stop()  # a request in an outage is not tried again: the run is ending
        self.writer.cancel()
        self.updates.close(cancel=True)
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

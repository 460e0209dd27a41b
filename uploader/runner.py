"""Run an upload plan against a backend: the mechanics every backend shares.

The order is what makes a published dataset trustworthy:
check access -> compare with the remote (the operations a dry run shows)
-> deletions -> every content file, in parallel, each verified -> each
dataset's catalog, only once a fresh listing shows every other file of it in
place -> the backend's finish (e.g. Zenodo's publish). A file that fails is
retried when the failure is worth retrying, then reported; the others go on.

The runner alone hashes local files and compares digests: a backend only
reports what its remote holds and carries out one operation at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from uploader.backend import Backend, Stored
from uploader.compare import CompareOptions, decide
from uploader.errors import ExitStatus, FileUploadError, NotPublished, first_applicable
from uploader.hashing import Cancelled, HashCache, digests, is_digest_name
from uploader.operations import Action, Operation, Status
from uploader.plan import Dataset, LocalFile, UploadPlan
from uploader.progress import Progress

INTEGRITY_ATTEMPTS = 3  # a file whose bytes arrived wrong is sent again; HTTP-level retries are the backend's
CANCEL_GRACE_SECONDS = 60
LISTINGS_AT_ONCE = 8


@dataclass(frozen=True)
class RunOptions:
    n_jobs: int
    dry_run: bool = False
    restart: bool = False
    overwrite: bool = False


@dataclass
class RunResult:
    """What happened to every file; the report and the summary are built from this."""

    ops: list[Operation]
    elapsed: float
    dry_run: bool = False
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    not_published: str = ""  # why the backend's finish (e.g. Zenodo's publish) was refused

    @property
    def offline(self) -> list[str]:
        """Catalogs withdrawn by this run and not published again: those datasets cannot be opened now."""
        withdrawn = [op for op in self.ops if op.is_catalog and op.action is Action.DELETE
                     and op.status is Status.DELETED]
        published = {op.destination for op in self.ops
                     if op.is_catalog and op.transfers_bytes and op.status is Status.UPLOADED}
        return [op.destination for op in withdrawn if op.destination not in published]

    @property
    def files_ok(self) -> bool:
        return not self.interrupted and all(op.status is not Status.FAILED for op in self.ops)

    @property
    def ok(self) -> bool:
        return self.files_ok and not self.not_published

    def count(self, status: Status) -> int:
        return sum(1 for op in self.ops if op.status is status)

    @property
    def bytes_uploaded(self) -> int:
        return sum(op.size for op in self.ops if op.status is Status.UPLOADED)

    @property
    def exit_status(self) -> ExitStatus:
        statuses = {ExitStatus.OK}
        if self.interrupted:
            statuses.add(ExitStatus.INTERRUPTED)
        if self.offline:
            statuses.add(ExitStatus.OFFLINE)
        if not self.ok:
            statuses.add(ExitStatus.FILES_FAILED)
        return first_applicable(statuses)


def run(plan: UploadPlan, backend: Backend, options: RunOptions, cache: HashCache,
        make_progress: Callable[[int, int], Progress]) -> RunResult:
    """Check, compare, then (unless a dry run) execute the plan in its safe order."""
    started = time.monotonic()
    backend.check_access(plan, dry_run=options.dry_run)
    ops = _decide(plan, backend, options, cache)
    if options.dry_run:
        for op in ops:
            op.status = Status.PLANNED
        return RunResult(ops, time.monotonic() - started, dry_run=True)
    if backend.begin(ops):
        ops = _decide(plan, backend, options, cache)

    result = RunResult(ops, 0.0)
    work = [op for op in ops if op.action is not Action.SKIP]
    for op in ops:
        if op.action is Action.SKIP:
            op.status = Status.SKIPPED
    progress = make_progress(sum(op.size for op in work if op.transfers_bytes), len(work))
    executor = _Executor(backend, cache, options.n_jobs, progress)
    try:
        executor.run_all(op for op in work if op.action is Action.DELETE)
        _hold_back_where_withdrawal_failed(ops)
        executor.run_all(op for op in work if op.transfers_bytes and not op.is_catalog and op.status is Status.PENDING)
        executor.run_all(_catalogs_ready_to_publish(ops))
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        progress.close()
    result.elapsed = time.monotonic() - started
    if result.interrupted:
        for op in ops:
            if op.status is Status.PENDING:
                op.status, op.error = Status.NOT_RUN, "interrupted"
        return result
    try:
        result.notes = backend.finish(ops, ok=result.files_ok)
    except NotPublished as refused:
        result.not_published = refused.message
    return result


def _decide(plan: UploadPlan, backend: Backend, options: RunOptions, cache: HashCache) -> list[Operation]:
    # A collection's datasets are listed side by side: each listing is a round trip or more.
    with ThreadPoolExecutor(min(len(plan.datasets), LISTINGS_AT_ONCE), thread_name_prefix="list") as pool:
        listings = dict(zip((d.subdir for d in plan.datasets), pool.map(backend.remote_files, plan.datasets),
                            strict=True))
    ops = decide(plan, listings, backend, CompareOptions(restart=options.restart, overwrite=options.overwrite),
                 cache, options.n_jobs)
    backend.check_plan(ops)
    return ops


def _hold_back_where_withdrawal_failed(ops: list[Operation]) -> None:
    """A live catalog that could not be withdrawn keeps vouching for its files: replace none of them."""
    stuck = {op.dataset.subdir for op in ops if op.is_catalog and op.action is Action.DELETE
             and op.status is Status.FAILED}
    for op in ops:
        if op.dataset.subdir in stuck and op.action is Action.REPLACE:
            op.fail("not replaced: the live catalog naming it could not be withdrawn first; re-run")


def _catalogs_ready_to_publish(ops: list[Operation]) -> list[Operation]:
    """Each dataset's catalog, if every other file of that dataset succeeded; the rest are withheld."""
    ready = []
    for op in ops:
        if not op.is_catalog or not op.transfers_bytes:
            continue
        failed = [o for o in ops if o.dataset is op.dataset and not o.is_catalog and o.status is Status.FAILED]
        if failed:
            op.fail(f"not published: {len(failed)} file(s) of this dataset failed")
        else:
            ready.append(op)
    return ready


class _Executor:
    """A thread pool that runs operations, verifies and retries them, and feeds the progress display."""

    def __init__(self, backend: Backend, cache: HashCache, n_jobs: int, progress: Progress) -> None:
        self.backend = backend
        self.cache = cache
        self.n_jobs = max(1, n_jobs)
        self.progress = progress
        self.stop = threading.Event()

    def run_all(self, ops: Iterable[Operation]) -> None:
        """Run `ops` in parallel; on Ctrl-C/SIGTERM stop them promptly, then re-raise."""
        ops = list(ops)
        if not ops:
            return
        pool = ThreadPoolExecutor(max_workers=min(self.n_jobs, len(ops)), thread_name_prefix="upload")
        queued = iter(ops)
        running: set[Future[None]] = set()

        def top_up() -> None:
            # A small window, not every op at once: waiting on thousands of
            # futures for each completion costs more than uploading small files.
            while len(running) < 2 * self.n_jobs and (op := next(queued, None)) is not None:
                running.add(pool.submit(self._run_one, op))

        try:
            top_up()
            while running:
                # A timeout keeps the main thread responsive to Ctrl-C and SIGTERM.
                done, running = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()  # re-raises a bug in our own code
                top_up()
        except KeyboardInterrupt:
            # Not `with ThreadPoolExecutor`: its exit would wait for every upload to finish.
            self.stop.set()
            self.backend.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            # Futures cancelled above never count as done for wait(): leave them out, or it waits the whole grace.
            wait({future for future in running if not future.cancelled()}, timeout=CANCEL_GRACE_SECONDS)
            raise
        pool.shutdown()

    def _run_one(self, op: Operation) -> None:
        sent = 0

        def advance(count: int) -> None:
            nonlocal sent
            sent += count
            self.progress.advance(count)

        for attempt in range(1, INTEGRITY_ATTEMPTS + 1):
            if self.stop.is_set():
                return
            try:
                self._carry_out(op, advance)
                op.status = Status.DELETED if op.action is Action.DELETE else Status.UPLOADED
                break
            except FileUploadError as exc:
                self.progress.advance(-sent)  # the retry sends those bytes again
                sent = 0
                if self.stop.is_set():
                    op.status, op.error = Status.NOT_RUN, "interrupted"
                    return
                op.fail(exc.reason)
                if not exc.retryable or attempt == INTEGRITY_ATTEMPTS:
                    break
        self.progress.file_done(op)

    def _carry_out(self, op: Operation, advance: Callable[[int], None]) -> None:
        if op.action is Action.DELETE:
            self.backend.delete(op)
            return
        file = op.file
        assert file is not None
        if not file.unchanged_on_disk():
            raise FileUploadError("the file changed on disk during the run; re-run to upload its new content")
        try:
            op.digests.update(digests(file, self.backend.digests_to_send(file), self.cache, self.stop))
        except Cancelled:
            raise FileUploadError("interrupted") from None
        except OSError as exc:
            raise FileUploadError(f"cannot read {file.path}: {exc.strerror}") from None
        if op.is_catalog:
            _confirm_in_place(op.dataset, op, self.backend, self.cache)
        stored = self.backend.send(op, op.digests, advance, self.stop)
        self._verify(op, stored)

    def _verify(self, op: Operation, stored: Stored) -> None:
        """The remote holds what was sent: its size, and each digest it vouches for, equal the local file's."""
        file = op.file
        assert file is not None
        op.digests.update(stored.sent_digests)
        if stored.sent_digests:
            if not file.unchanged_on_disk():
                raise FileUploadError("the file changed on disk during the upload; re-run to upload its new content")
            self.cache.store(file, dict(stored.sent_digests))  # the bytes sent are the file's: no second read
        if stored.size != file.size:
            raise FileUploadError(f"verification failed: the remote holds {stored.size:,d} bytes, the file has"
                                  f" {file.size:,d}", retryable=True)
        names = [name for name in stored.digests if is_digest_name(name)]
        if not names:
            raise FileUploadError("verification failed: the remote vouches for no digest of what it stored")
        op.digests.update(digests(file, names, self.cache, self.stop))
        for name in names:
            if op.digests[name] != stored.digests[name]:
                raise FileUploadError(f"verification failed: the remote's {name} differs from the file's"
                                      f" ({stored.digests[name]} != {op.digests[name]})", retryable=True)
        op.checksum = _report_checksum(op.digests)


def _confirm_in_place(dataset: Dataset, catalog: Operation, backend: Backend, cache: HashCache) -> None:
    """A fresh listing shows every file of the catalog's dataset with the size and digests it was verified with."""
    try:
        listing = backend.remote_files(dataset)
    except Exception as exc:  # the catalog waits: a listing that failed proves nothing
        raise FileUploadError(f"not published: cannot list the remote ({exc})", retryable=True) from None
    wrong = []
    for file in dataset.files:
        found = listing.get(backend.destination(dataset, file.name))
        if found is None or found.size != file.size or not _digests_agree(found.digests, file, cache):
            wrong.append(file.name)
    if wrong:
        raise FileUploadError(f"not published: {len(wrong)} file(s) are not in place as uploaded (e.g. {wrong[0]});"
                              " is something else writing there? Re-run to repair")


def _digests_agree(vouched: Mapping[str, str], file: LocalFile, cache: HashCache) -> bool:
    names = [name for name in vouched if is_digest_name(name)]
    local = digests(file, names, cache) if names else {}
    return all(local[name] == vouched[name] for name in names)


def _report_checksum(known: Mapping[str, str]) -> str:
    for name in ("sha256", "md5"):
        if name in known:
            return f"{name}:{known[name]}"
    return ""

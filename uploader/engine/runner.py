"""Run an upload plan against a backend: the mechanics every backend shares.

The order is what makes a published dataset trustworthy:
check access -> compare with the remote (the operations a dry run shows)
-> deletions -> every content file, in parallel, each verified -> each
dataset's catalog, only once a fresh listing shows every other file of it in
place -> a collection's root catalog, after the samples' -> what --delete
removes, only from datasets whose catalog is published -> the backend's
finish (e.g. Zenodo's publish). A file that fails is
retried when the failure is worth retrying, then reported; the others go on.

The runner alone hashes local files and compares digests: a backend only
reports what its remote holds and carries out one operation at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from uploader.engine.backend import Backend
from uploader.engine.compare import decide
from uploader.engine.executor import POLL_SECONDS, Executor, Liveness, RunStalled
from uploader.engine.operations import PUBLISHED, Action, Operation, RemoteFile, Status
from uploader.engine.progress import Progress
from uploader.engine.readiness import Readiness
from uploader.engine.settings import RunSettings
from uploader.engine.settle import settle_catalogs_in_doubt
from uploader.errors import ExitStatus, NotPublished, RemoteError, first_applicable
from uploader.local.hashing import HashCache
from uploader.local.plan import UploadPlan

LISTINGS_AT_ONCE = 8


@dataclass
class RunResult:
    """What happened to every file; the report and the summary are built from this."""

    ops: list[Operation]
    elapsed: float
    dry_run: bool = False
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    not_published: str = ""  # why the backend's finish (e.g. Zenodo's publish) was refused
    stalled: str = ""  # why the run stopped early: the remote stopped answering

    @property
    def offline(self) -> list[str]:
        """Catalogs withdrawn by this run and not published again: those datasets cannot be opened now."""
        published = {op.destination for op in self.ops
                     if op.is_catalog and op.transfers_bytes and op.status is Status.UPLOADED}
        # A catalog that waits for files another run sends is offline until that run publishes it: no failure.
        return [name for name in self.withdrawn if name not in published | self.waiting]

    @property
    def withdrawn(self) -> list[str]:
        """Live catalogs this run withdrew before replacing files they name."""
        return [op.destination for op in self.ops if op.is_catalog and op.action is Action.DELETE
                and op.status is Status.DELETED]

    @property
    def waiting(self) -> set[str]:
        return {op.destination for op in self.ops if op.is_catalog and op.status is Status.WAITING}

    @property
    def catalogs_published(self) -> bool:
        """No catalog failed: what failed was only a deletion after publication (--delete)."""
        return not any(op.is_catalog and op.status is Status.FAILED for op in self.ops)

    @property
    def files_ok(self) -> bool:
        return not (self.interrupted or self.stalled) and all(op.status is not Status.FAILED for op in self.ops)

    @property
    def ok(self) -> bool:
        return self.files_ok and not self.not_published

    def count(self, status: Status) -> int:
        return sum(1 for op in self.ops if op.status is status)

    @property
    def bytes_uploaded(self) -> int:
        return sum(op.size for op in self.ops if op.status is Status.UPLOADED)

    @property
    def bytes_resumed(self) -> int:
        """Of bytes_uploaded, those an earlier run had already stored (resumed, not sent again)."""
        return sum(op.resumed for op in self.ops if op.status is Status.UPLOADED)

    @property
    def exit_status(self) -> ExitStatus:
        statuses = {ExitStatus.OK}
        if self.interrupted:
            statuses.add(ExitStatus.INTERRUPTED)
        if self.stalled:  # the remote stopped answering: before anything was uploaded, it could not be used
            done = any(op.status in (Status.UPLOADED, Status.DELETED) for op in self.ops)
            statuses.add(ExitStatus.FILES_FAILED if done else ExitStatus.REMOTE)
        if self.offline:
            statuses.add(ExitStatus.OFFLINE)
        if not self.ok:
            statuses.add(ExitStatus.FILES_FAILED)
        return first_applicable(statuses)


def run(plan: UploadPlan, backend: Backend, settings: RunSettings, cache: HashCache,
        make_progress: Callable[[int, int], Progress]) -> RunResult:
    """Check, compare, then (unless a dry run) execute the plan in its safe order."""
    started = time.monotonic()
    liveness = Liveness()
    backend.check_access(plan, dry_run=settings.dry_run)
    ops = _decide(plan, backend, settings, cache, liveness)
    if settings.dry_run:
        for op in ops:
            op.status = Status.PLANNED
        return RunResult(ops, time.monotonic() - started, dry_run=True)
    if backend.begin(ops):
        ops = _decide(plan, backend, settings, cache, liveness)

    result = RunResult(ops, 0.0)
    work = [op for op in ops if op.action is not Action.SKIP or op.recheck]
    for op in ops:
        if op.action is Action.SKIP and not op.recheck:
            op.status = Status.SKIPPED
    progress = make_progress(sum(op.size for op in work if op.transfers_bytes), len(work))
    executor = Executor(backend, cache, settings.n_jobs, progress, backend.stall_seconds, backend.waiting_for,
                        liveness)
    try:
        executor.run_all([op for op in work if op.action is Action.DELETE and not op.after_publish])
        _hold_back_where_withdrawal_failed(ops)
        executor.run_all([op for op in work if op.writes_file and not op.is_catalog
                          and op.status is Status.PENDING])
        executor.run_all(_catalogs_ready_to_publish(ops, roots=False))
        executor.run_all(_catalogs_ready_to_publish(ops, roots=True))
        executor.run_all(_removals_once_published(ops))
    except KeyboardInterrupt:
        result.interrupted = True
    except RunStalled as stalled:
        result.stalled = stalled.message
    finally:
        progress.close()
    settle_catalogs_in_doubt(ops, backend, cache)  # a catalog update cut short: the store says what is there
    result.elapsed = time.monotonic() - started
    if result.interrupted or result.stalled:
        for op in ops:
            if op.status is Status.PENDING:
                op.status, op.error = Status.NOT_RUN, result.stalled or "interrupted"
        return result
    try:
        result.notes = backend.finish(ops, ok=result.files_ok)
    except NotPublished as refused:
        result.not_published = refused.message
    return result


def _decide(plan: UploadPlan, backend: Backend, settings: RunSettings, cache: HashCache,
            liveness: Liveness) -> list[Operation]:
    listings = _list_remote(plan, backend, liveness)
    ops = decide(plan, listings, backend, settings.restart, cache, settings.n_jobs)
    backend.check_plan(ops)
    return ops


def _list_remote(plan: UploadPlan, backend: Backend, liveness: Liveness) -> dict[str, dict[str, RemoteFile]]:
    """Each dataset's remote files, listed side by side (each listing is a round trip or more).

    The wait says so when it is long and ends at the stall limit: a store that accepts connections and never
    answers must not hold a run for minutes of read timeouts and retries.
    """
    pool = ThreadPoolExecutor(min(len(plan.datasets), LISTINGS_AT_ONCE), thread_name_prefix="list")
    listing = {dataset.subdir: pool.submit(backend.remote_files, dataset) for dataset in plan.datasets}
    pool.shutdown(wait=False)  # not `with`: a listing stuck on a dead endpoint must not hold the run
    liveness.touch()
    while not all(future.done() for future in listing.values()):
        wait(listing.values(), timeout=POLL_SECONDS)
        try:
            liveness.check(backend.stall_seconds, backend.waiting_for)
        except RunStalled as stalled:
            raise RemoteError(f"{stalled.message} while listing what is there; nothing was uploaded") from None
    return {subdir: future.result() for subdir, future in listing.items()}


def _hold_back_where_withdrawal_failed(ops: list[Operation]) -> None:
    """A live catalog that could not be withdrawn keeps vouching for its files: replace none of them."""
    stuck = {op.dataset.subdir for op in ops if op.is_catalog and op.action is Action.DELETE
             and op.status is Status.FAILED}
    for op in ops:
        if op.dataset.subdir in stuck and op.action is Action.REPLACE:
            op.fail("not replaced: the live catalog naming it could not be withdrawn first; re-run")


def _catalogs_ready_to_publish(ops: list[Operation], *, roots: bool) -> list[Operation]:
    """Each dataset's catalog (or, `roots`, a collection's root catalog), if every other file of that dataset
    succeeded, and for a root every sample's file and catalog it names; the rest are withheld.

    A root never waits for a sample of its own run that failed: that is the run's failure, told as one, and
    the same command resumes it.
    """
    ready = []
    for op in ops:
        if not op.is_catalog or not (op.writes_file or op.recheck) or op.dataset.collection_root is not roots:
            continue
        failed = [o for o in ops if o.dataset is op.dataset and not o.is_catalog and o.status is Status.FAILED]
        named = {file.name for file in op.dataset.others} if roots else set()
        withheld = [o for o in ops if o.file is not None and o.status is Status.FAILED
                    and f"{o.dataset.subdir}/{o.file.name}" in named]
        if failed:
            op.fail(f"not published: {len(failed)} file(s) of this dataset failed")
        elif withheld:
            op.fail(f"not published: {len(withheld)} file(s) of the samples it names failed or were not published"
                    f" (e.g. {withheld[0].destination})")
        else:
            ready.append(op)
    return ready


def _removals_once_published(ops: list[Operation]) -> list[Operation]:
    """--delete's deletions of each dataset whose catalog is published; the others are left as they are."""
    published = [op.dataset for op in ops if op.is_catalog and op.action is not Action.DELETE
                 and op.status in PUBLISHED]
    ready = []
    for op in ops:
        if not op.after_publish:
            continue
        if any(op.dataset is dataset for dataset in published):
            ready.append(op)
        else:
            op.status, op.error = Status.NOT_RUN, "not deleted: the catalog was not published"
    return ready


def exit_status(result: RunResult, readiness: Readiness | None) -> ExitStatus:
    """The run's exit status: the upload's own, or 5 when readiness is enforced and readers cannot use it."""
    if readiness is not None and readiness.ready is False and readiness.required:
        return first_applicable({result.exit_status, ExitStatus.NOT_USABLE})
    return result.exit_status

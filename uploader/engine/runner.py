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
from uploader.engine.decide import (
    catalogs_ready_to_publish,
    decide,
    files_to_send,
    hold_back_where_withdrawal_failed,
    removals_once_published,
    withdrawals,
    work_of_the_run,
)
from uploader.engine.executor import POLL_SECONDS, Executor, Liveness, RunStalled
from uploader.engine.operations import Action, Operation, RemoteFile, Status
from uploader.engine.progress import Progress
from uploader.engine.readiness import Readiness
from uploader.engine.settings import RunSettings
from uploader.engine.settle import settle_catalogs_in_doubt
from uploader.errors import ExitStatus, NotPublished, RemoteError, exit_status
from uploader.local.hash_cache import HashCache
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
        """The upload's own exit status (see final_status)."""
        return self.final_status(None)

    def final_status(self, readiness: Readiness | None) -> ExitStatus:
        """The run's exit status, with the readers' verdict after it (exit 5 only when readiness is enforced)."""
        return exit_status(interrupted=self.interrupted, stalled=bool(self.stalled), failed=not self.ok,
                           changed_something=any(op.status in (Status.UPLOADED, Status.DELETED) for op in self.ops),
                           offline=bool(self.offline),
                           not_usable=readiness is not None and readiness.ready is False and readiness.required)


def run(plan: UploadPlan, backend: Backend, settings: RunSettings, cache: HashCache,
        make_progress: Callable[[int, int], Progress]) -> RunResult:
    """Check, decide, then (unless a dry run) execute the plan in its safe order, and finish."""
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
    _execute(result, backend, settings, cache, liveness, make_progress)
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


def _execute(result: RunResult, backend: Backend, settings: RunSettings, cache: HashCache, liveness: Liveness,
             make_progress: Callable[[int, int], Progress]) -> None:
    """The phases, in their safe order, each as the decisions say; an interrupt or a stall ends them."""
    ops = result.ops
    work = work_of_the_run(ops)
    progress = make_progress(sum(op.size for op in work if op.transfers_bytes), len(work))
    executor = Executor(backend, cache, settings.n_jobs, progress, backend.stall_seconds, backend.waiting_for,
                        liveness)
    try:
        executor.run_all(withdrawals(work))
        hold_back_where_withdrawal_failed(ops)
        executor.run_all(files_to_send(work))
        executor.run_all(catalogs_ready_to_publish(ops, roots=False))
        executor.run_all(catalogs_ready_to_publish(ops, roots=True))
        executor.run_all(removals_once_published(ops))
    except KeyboardInterrupt:
        result.interrupted = True
    except RunStalled as stalled:
        result.stalled = stalled.message
    finally:
        progress.close()


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

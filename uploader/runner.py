"""Run an upload plan against a backend: the mechanics every backend shares.

The order is what makes a published dataset trustworthy:
check access -> compare with the remote (the operations a dry run shows)
-> deletions -> every content file, in parallel, each verified -> each
dataset's catalog, only once a fresh listing shows every other file of it in
place -> a collection's root catalog, after the samples' -> the backend's
finish (e.g. Zenodo's publish). A file that fails is
retried when the failure is worth retrying, then reported; the others go on.

The runner alone hashes local files and compares digests: a backend only
reports what its remote holds and carries out one operation at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from uploader.backend import Backend
from uploader.compare import CompareOptions, decide
from uploader.errors import ExitStatus, NotPublished, first_applicable
from uploader.executor import Executor
from uploader.hashing import HashCache
from uploader.operations import Action, Operation, Status
from uploader.plan import UploadPlan
from uploader.progress import Progress

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
    work = [op for op in ops if op.action is not Action.SKIP or op.recheck]
    for op in ops:
        if op.action is Action.SKIP and not op.recheck:
            op.status = Status.SKIPPED
    progress = make_progress(sum(op.size for op in work if op.transfers_bytes), len(work))
    executor = Executor(backend, cache, options.n_jobs, progress)
    try:
        executor.run_all([op for op in work if op.action is Action.DELETE])
        _hold_back_where_withdrawal_failed(ops)
        executor.run_all([op for op in work if op.transfers_bytes and not op.is_catalog
                          and op.status is Status.PENDING])
        executor.run_all(_catalogs_ready_to_publish(ops, roots=False))
        executor.run_all(_catalogs_ready_to_publish(ops, roots=True))
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


def _catalogs_ready_to_publish(ops: list[Operation], *, roots: bool) -> list[Operation]:
    """Each dataset's catalog (or, `roots`, a collection's root catalog), if every other file of that dataset
    succeeded, and for a root every sample's file and catalog it names; the rest are withheld.

    A root never waits for a sample of its own run that failed: that is the run's failure, told as one, and
    the same command resumes it.
    """
    ready = []
    for op in ops:
        if not op.is_catalog or not (op.transfers_bytes or op.recheck) or op.dataset.collection_root is not roots:
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

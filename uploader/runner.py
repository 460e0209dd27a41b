"""Run an upload plan against a backend: the mechanics every backend shares.

The order is what makes a published dataset trustworthy:
check access -> compare with the remote (the operations a dry run shows)
-> deletions -> every content file, in parallel, each verified -> each
dataset's catalog, only if all its files succeeded -> the backend's finish
(e.g. Zenodo's publish). A file that fails is retried when the failure is
worth retrying, then reported; the others go on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

from uploader.errors import FileUploadError, NotPublished
from uploader.plan import Action, Operation, UploadPlan
from uploader.progress import Progress

FILE_ATTEMPTS = 3  # for integrity failures; botocore/urllib3 already retry transient HTTP errors
CANCEL_GRACE_SECONDS = 60


class Backend(Protocol):
    """What a destination (S3, Zenodo) provides to the runner."""

    def check_access(self, plan: UploadPlan, *, dry_run: bool) -> None:
        """Fail fast (UploaderError) on bad credentials, permissions or destination."""

    def decide(self, plan: UploadPlan, *, restart: bool) -> list[Operation]:
        """Compare the plan with the remote; one operation per file (and per remote deletion)."""

    def begin(self) -> None:
        """Called once before the first write (not in a dry run)."""

    def transfer(self, op: Operation, progress: Callable[[int], None], stop: threading.Event) -> None:
        """Carry out one operation and verify it; raise FileUploadError on failure."""

    def finish(self, ops: list[Operation], *, ok: bool) -> list[str]:
        """Called after every operation ran; returns lines for the summary."""

    def cancel(self) -> None:
        """Stop in-flight transfers promptly and clean up partial uploads."""


@dataclass
class RunOptions:
    n_jobs: int
    dry_run: bool = False
    restart: bool = False


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
    def files_ok(self) -> bool:
        return not self.interrupted and all(op.status != "failed" for op in self.ops)

    @property
    def ok(self) -> bool:
        return self.files_ok and not self.not_published

    def count(self, status: str) -> int:
        return sum(1 for op in self.ops if op.status == status)

    @property
    def bytes_uploaded(self) -> int:
        return sum(op.size for op in self.ops if op.status == "uploaded")


def run(plan: UploadPlan, backend: Backend, options: RunOptions,
        make_progress: Callable[[int, int], Progress]) -> RunResult:
    """Check, compare, then (unless a dry run) execute the plan in its safe order."""
    started = time.monotonic()
    backend.check_access(plan, dry_run=options.dry_run)
    ops = backend.decide(plan, restart=options.restart)
    if options.dry_run:
        for op in ops:
            op.status = "planned"
        return RunResult(ops, time.monotonic() - started, dry_run=True)

    backend.begin()
    work = [op for op in ops if op.action is not Action.SKIP]
    for op in ops:
        if op.action is Action.SKIP:
            op.status = "skipped"
    progress = make_progress(sum(op.size for op in work if op.transfers_bytes), len(work))
    executor = _Executor(backend, options.n_jobs, progress)
    result = RunResult(ops, 0.0)
    try:
        executor.run_all([op for op in work if op.action is Action.DELETE])
        executor.run_all([op for op in work if op.transfers_bytes and not op.is_catalog])
        executor.run_all(_catalogs_ready_to_publish(ops))
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        progress.close()
    result.elapsed = time.monotonic() - started
    if result.interrupted:
        for op in ops:
            if op.status == "pending":
                op.status, op.error = "not-run", "interrupted"
        return result
    try:
        result.notes = backend.finish(ops, ok=result.files_ok)
    except NotPublished as refused:
        result.not_published = refused.message
    return result


def _catalogs_ready_to_publish(ops: list[Operation]) -> list[Operation]:
    """Each dataset's catalog, if every other file of that dataset succeeded; the rest are withheld."""
    ready = []
    for op in ops:
        if not op.is_catalog or op.action is Action.SKIP:
            continue
        failed = [o for o in ops if o.dataset is op.dataset and not o.is_catalog and o.status == "failed"]
        if failed:
            op.status = "failed"
            op.error = f"not published: {len(failed)} file(s) of this dataset failed"
        else:
            ready.append(op)
    return ready


class _Executor:
    """A thread pool that runs operations, retries integrity failures and feeds the progress display."""

    def __init__(self, backend: Backend, n_jobs: int, progress: Progress) -> None:
        self.backend = backend
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
            wait(running, timeout=CANCEL_GRACE_SECONDS)
            raise
        pool.shutdown()

    def _run_one(self, op: Operation) -> None:
        sent = 0

        def advance(count: int) -> None:
            nonlocal sent
            sent += count
            self.progress.advance(count)

        for attempt in range(1, FILE_ATTEMPTS + 1):
            if self.stop.is_set():
                return
            try:
                self.backend.transfer(op, advance, self.stop)
                op.status = "deleted" if op.action is Action.DELETE else "uploaded"
                break
            except FileUploadError as exc:
                self.progress.advance(-sent)  # the retry sends those bytes again
                sent = 0
                if self.stop.is_set():
                    op.status, op.error = "not-run", "interrupted"
                    return
                op.status, op.error = "failed", exc.reason
                if not exc.retryable or attempt == FILE_ATTEMPTS:
                    break
        self.progress.file_done(op)

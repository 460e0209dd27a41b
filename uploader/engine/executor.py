"""Carrying out operations in parallel: each one prepared, started, verified, retried and counted.

Sends are started, not waited for: a backend hands back a Future (awscrt
completes thousands of small PUTs from its own threads), so a request in
flight costs no thread of ours; blocking one thread per request cost ~0.4 ms
of CPU per small file in lock and GIL traffic alone. Three kinds of threads
take part:
- the caller's thread hands operations out as room frees up (at most
  `in_flight` at once) and waits, with timeouts that keep it answering
  Ctrl-C and SIGTERM;
- a few workers prepare each operation (the file is still the one planned,
  its digests, the catalog's in-place check) and start it;
- one completing thread verifies what each send stored, records the outcome,
  and hands an attempt worth repeating back to the workers.

A failure that is the run's, not a file's (an UploaderError from a send,
e.g. the store refusing the run's first write for a permission) stops the
run at once, as an interrupt does, and is raised for the entrypoint to tell.

Two kinds of failed attempt are tried again: bytes that arrived wrong (a few
times), and a remote that did not take them this time (an outage, a reset, a
5xx): after a growing pause, for as long as the run as a whole makes
progress. A run that has made none for `stall_seconds` stops (RunStalled):
an endpoint that accepts connections and never answers ends a run in
minutes, not hours, and says so while it waits.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from uploader.engine.backend import Backend
from uploader.engine.decide import disagreeing_digest, publish_or_wait, vouched
from uploader.engine.operations import Action, Operation, Status, Stored
from uploader.engine.progress import Progress
from uploader.errors import CatalogInPlace, CatalogWaits, FileUploadError, RemoteError, UploaderError
from uploader.local.digests import Cancelled, cached_digests, digests
from uploader.local.hash_cache import HashCache
from uploader.local.plan import LocalFile
from uploader.retry import pause_before

INTEGRITY_ATTEMPTS = 3  # a file whose bytes arrived wrong is sent again; HTTP-level retries are the backend's
CANCEL_GRACE_SECONDS = 60
STALLED_GRACE_SECONDS = 2
PREPARE_WORKERS = 4  # hashing is the slow part of preparing, and there are few cores to hash on
# A small file is prepared by the thread handing operations out: handing it to a worker cost more than preparing
# it (two thread hops, and threads taking the GIL from each other around every stat and read: 20,000 tiny files
# took ~15 % more CPU).
PREPARE_HERE_BELOW = 1024 * 1024
POLL_SECONDS = 0.5
# After this long without progress, say that the run is waiting (and every as long again).
NOTICE_SECONDS = float(os.environ.get("CARTLOAD_UPLOADER_NOTICE_SECONDS", "10"))
log = logging.getLogger("uploader")


class RunStalled(RemoteError):
    """Nothing moved for the stall limit: the remote stopped answering."""


class Liveness:
    """When the run last made progress: bytes acknowledged, an operation finished, or local work going on."""

    def __init__(self) -> None:
        self._last = time.monotonic()
        self._working = 0  # hashing a big file is progress too, though nothing is sent meanwhile
        self._noticed = 0.0
        self._lock = threading.Lock()

    def touch(self) -> None:
        self._last = time.monotonic()

    @contextmanager
    def working(self) -> Iterator[None]:
        with self._lock:
            self._working += 1
        try:
            yield
        finally:
            with self._lock:
                self._working -= 1
            self.touch()

    def idle_seconds(self) -> float:
        return 0.0 if self._working else time.monotonic() - self._last

    def check(self, stall_seconds: float | None, waiting_for: str) -> None:
        """Say so when nothing has moved for a while; raise RunStalled once it is the stall limit."""
        idle = self.idle_seconds()
        if stall_seconds is not None and idle >= stall_seconds:
            raise RunStalled(f"no progress for {idle:.0f} s: {waiting_for} stopped answering")
        if idle < NOTICE_SECONDS:
            self._noticed = 0.0
        elif idle - self._noticed >= NOTICE_SECONDS:
            self._noticed = idle
            limit = f"; the run stops after {stall_seconds:.0f} s without progress" if stall_seconds else ""
            log.warning("waiting: no progress for %.0f s (%s is not answering, or slowly); still trying%s",
                        idle, waiting_for, limit)


@dataclass
class _Attempt:
    """One try at one operation, and the bytes it has sent so far (taken back if it fails)."""

    op: Operation
    number: int
    progress: Progress
    liveness: Liveness
    sent: int = 0
    pauses: int = 0  # transient failures so far: each pause before the next attempt is longer

    def advance(self, count: int) -> None:
        self.sent += count
        self.progress.advance(count)
        self.liveness.touch()

    def next(self, *, after_pause: bool) -> _Attempt:
        return _Attempt(self.op, self.number + 1, self.progress, self.liveness,
                        pauses=self.pauses + (1 if after_pause else 0))

    def pause(self) -> float:
        """Seconds to wait before the next attempt after a transient failure."""
        return pause_before(self.pauses)

    def take_back(self) -> None:
        self.progress.advance(-self.sent)  # the next attempt sends those bytes again
        self.sent = 0


class Executor:
    """Runs batches of operations against one backend; `stop` is set when the run is interrupted."""

    def __init__(self, backend: Backend, cache: HashCache, in_flight: int, progress: Progress,
                 stall_seconds: float | None = None, waiting_for: str = "the remote",
                 liveness: Liveness | None = None) -> None:
        self.backend = backend
        self.cache = cache
        self.in_flight = max(1, in_flight)
        self.progress = progress
        self.stall_seconds = stall_seconds
        self.waiting_for = waiting_for
        self.liveness = liveness or Liveness()
        self.stop = threading.Event()

    def run_all(self, ops: list[Operation]) -> None:
        """Carry out `ops`; on Ctrl-C/SIGTERM stop them promptly, then re-raise."""
        if ops:
            _Batch(self, ops).run()

    def start(self, attempt: _Attempt) -> Future[Stored | None]:
        """In a worker: check and prepare one operation, then start it; the Future ends with its outcome."""
        op = attempt.op
        if self.stop.is_set():
            raise FileUploadError("interrupted")
        if op.action is Action.DELETE:
            op.in_doubt = True
            self.backend.delete(op)
            return _done(None)
        file = op.file
        assert file is not None
        if not file.unchanged_on_disk():
            raise FileUploadError("the file changed on disk during the run; re-run to upload its new content")
        try:
            with self.liveness.working():
                op.digests.update(self._digests_to_send(op, file))
        except Cancelled:
            raise FileUploadError("interrupted") from None
        except OSError as exc:
            raise FileUploadError(f"cannot read {file.path}: {exc.strerror}") from None
        if op.is_catalog:  # sent only when the decisions say so now (else CatalogWaits, CatalogInPlace)
            publish_or_wait(op, self.backend, self.cache)
        op.in_doubt = True
        return _as_optional(self.backend.start_send(op, op.digests, attempt.advance, self.stop))

    def _digests_to_send(self, op: Operation, file: LocalFile) -> dict[str, str]:
        """What the backend needs before sending; on a first upload, what it hashes while sending is not read."""
        wanted = self.backend.digests_to_send(file)
        if op.action is Action.UPLOAD and set(wanted) <= set(self.backend.digests_while_sending(file)):
            return cached_digests(file, wanted, self.cache) or {}
        return digests(file, wanted, self.cache, self.stop)

    def complete(self, attempt: _Attempt, outcome: Future[Stored | None]) -> _Attempt | None:
        """In the completing thread: verify and record the outcome; the next attempt if one is worth it."""
        op = attempt.op
        try:
            stored = outcome.result()
            if stored is not None:
                self._verify(op, stored)
            op.status = {Action.DELETE: Status.DELETED, Action.UPDATE: Status.UPDATED}.get(op.action, Status.UPLOADED)
            op.in_doubt = False
            self.liveness.touch()
        except CatalogWaits as waits:
            op.status, op.error = Status.WAITING, waits.reason
        except CatalogInPlace as there:
            op.status, op.reason = Status.SKIPPED, there.reason
        except FileUploadError as exc:
            attempt.take_back()
            op.in_doubt = exc.transient or self.stop.is_set()  # no answer, or one that tells nothing
            if self.stop.is_set():
                op.status, op.error = Status.NOT_RUN, "interrupted"
                return None
            op.fail(exc.reason)  # what it ends with, unless the next attempt does better
            if exc.transient:  # tried again after a pause, until the run stalls as a whole
                return attempt.next(after_pause=True)
            if exc.retryable and attempt.number < INTEGRITY_ATTEMPTS:
                return attempt.next(after_pause=False)
        return None

    def _verify(self, op: Operation, stored: Stored) -> None:
        """The remote holds what was sent: its size, and each digest it vouches for, equal the local file's."""
        file = op.file
        assert file is not None
        if not file.unchanged_on_disk():  # appended to or rewritten while it was being sent
            raise FileUploadError("changed during upload: the file on disk is no longer the one that was sent;"
                                  " re-run once it is complete to upload its new content")
        op.digests.update(stored.sent_digests)
        if stored.sent_digests:
            self.cache.store(file, dict(stored.sent_digests))  # the bytes sent are the file's: no second read
        if stored.size != file.size:
            raise FileUploadError(f"verification failed: the remote holds {stored.size:,d} bytes, the file has"
                                  f" {file.size:,d}", retryable=True)
        names = list(vouched(stored.digests))
        if not names:
            raise FileUploadError("verification failed: the remote vouches for no digest of what it stored")
        op.digests.update(digests(file, [name for name in names if name not in op.digests], self.cache))
        if (name := disagreeing_digest(stored.digests, op.digests)) is not None:
            raise FileUploadError(f"verification failed: the remote's {name} differs from the file's"
                                  f" ({stored.digests[name]} != {op.digests[name]})", retryable=True)
        op.checksum = _report_checksum(op.digests)
        op.resumed = stored.resumed


class _Batch:
    """One batch of operations: handed out within the room, their outcomes collected, each counted once."""

    def __init__(self, executor: Executor, ops: list[Operation]) -> None:
        self.executor = executor
        self.ops = ops
        self._room = threading.Semaphore(executor.in_flight)
        self._left = len(ops)
        self._lock = threading.Lock()
        self._all_done = threading.Event()
        self._outcomes: queue.SimpleQueue[tuple[_Attempt, Future[Stored | None]] | None] = queue.SimpleQueue()
        self._workers = ThreadPoolExecutor(PREPARE_WORKERS, thread_name_prefix="prepare")
        self._bug: BaseException | None = None

    def run(self) -> None:
        completing = threading.Thread(target=self._complete_all, name="complete", daemon=True)
        completing.start()
        handed_out = 0
        try:
            for op in self.ops:
                self._wait_for_room()
                attempt = _Attempt(op, 1, self.executor.progress, self.executor.liveness)
                if _quick_to_prepare(op):
                    self._start_here(attempt)
                else:
                    self._try(attempt)
                handed_out += 1
            self._wait_for_all()
        except (KeyboardInterrupt, UploaderError) as ending:  # an interrupt, a stall, or the run's own failure
            # Not `with ThreadPoolExecutor`: its exit would wait for every upload to finish.
            self._bug = None  # raised once, here
            self.executor.stop.set()
            self.executor.backend.cancel()
            self._workers.shutdown(wait=False, cancel_futures=True)
            for _ in self.ops[handed_out:]:  # never started: nothing to wait for
                self._one_done()
            # A dead remote answers nothing more: what is still in flight is not waited for.
            interrupted = isinstance(ending, KeyboardInterrupt)
            self._wait_for_all(grace=CANCEL_GRACE_SECONDS if interrupted else STALLED_GRACE_SECONDS)
            raise
        finally:
            self._outcomes.put(None)
            completing.join(timeout=CANCEL_GRACE_SECONDS)
        self._workers.shutdown()

    def _try_after(self, attempt: _Attempt, pause: float) -> None:
        if pause <= 0:
            self._try(attempt)
            return
        timer = threading.Timer(pause, self._try, (attempt,))
        timer.daemon = True
        timer.start()

    def _try(self, attempt: _Attempt) -> None:
        prepared = self._workers.submit(self.executor.start, attempt)
        prepared.add_done_callback(lambda future: self._started(attempt, future))

    def _start_here(self, attempt: _Attempt) -> None:
        """Prepare and start a small file's attempt in this thread, as a worker would."""
        try:
            sending = self.executor.start(attempt)
        except Exception as failure:
            self._outcomes.put((attempt, _failed(failure)))
            return
        sending.add_done_callback(lambda outcome: self._outcomes.put((attempt, outcome)))

    def _started(self, attempt: _Attempt, prepared: Future[Future[Stored | None]]) -> None:
        """A worker is done with an attempt: its send's outcome (or the worker's failure) goes to the queue."""
        if prepared.cancelled():  # never started: the run was interrupted
            attempt.op.status, attempt.op.error = Status.NOT_RUN, "interrupted"
            self._one_done()
        elif (failure := prepared.exception()) is not None:
            self._outcomes.put((attempt, _failed(failure)))
        else:
            prepared.result().add_done_callback(lambda outcome: self._outcomes.put((attempt, outcome)))

    def _complete_all(self) -> None:
        while (item := self._outcomes.get()) is not None:
            attempt, outcome = item
            try:
                retry = self.executor.complete(attempt, outcome)
                if retry is not None:
                    self._try_after(retry, retry.pause() if retry.pauses > attempt.pauses else 0.0)
                    continue
                self.executor.progress.file_done(attempt.op)
            except BaseException as bug:  # our own code failed: the caller's thread re-raises it
                self._bug = bug
            self._one_done()

    def _one_done(self) -> None:
        self._room.release()
        with self._lock:
            self._left -= 1
            if self._left == 0:
                self._all_done.set()

    def _wait_for_room(self) -> None:
        while not self._room.acquire(timeout=POLL_SECONDS):  # a timeout keeps Ctrl-C and SIGTERM answered
            self._raise_bug()
            self._check_liveness()

    def _wait_for_all(self, grace: float | None = None) -> None:
        deadline = None if grace is None else time.monotonic() + grace
        while not self._all_done.wait(POLL_SECONDS):
            if deadline is not None and time.monotonic() > deadline:
                return
            self._raise_bug()
            if deadline is None:
                self._check_liveness()
        self._raise_bug()

    def _check_liveness(self) -> None:
        self.executor.liveness.check(self.executor.stall_seconds, self.executor.waiting_for)

    def _raise_bug(self) -> None:
        if self._bug is not None:
            raise self._bug


def _report_checksum(known: Mapping[str, str]) -> str:
    for name in ("sha256", "md5"):
        if name in known:
            return f"{name}:{known[name]}"
    return ""


def _as_optional(sending: Future[Stored]) -> Future[Stored | None]:
    return sending  # type: ignore[return-value]  # a Future is covariant in what it holds, for our purposes


def _quick_to_prepare(op: Operation) -> bool:
    """A small file's send: hashed in a few milliseconds at most, and started without waiting on the remote.

    Not a deletion, nor a catalog (whose preparing lists the remote) nor an update in place: those wait.
    """
    return op.action in (Action.UPLOAD, Action.REPLACE) and not op.is_catalog and op.size < PREPARE_HERE_BELOW


def _done(value: Stored | None) -> Future[Stored | None]:
    future: Future[Stored | None] = Future()
    future.set_result(value)
    return future


def _failed(error: BaseException) -> Future[Stored | None]:
    future: Future[Stored | None] = Future()
    future.set_exception(error)
    return future

"""Content digests of local files: computed in one read pass, from the hash cache when it knows them.

Digest names: "sha256" and "md5" of the whole file; "md5parts:<N>", the MD5 of
each N-byte part, comma-separated (what S3 needs for Content-MD5 on each part);
and "multipart-etag:<N>", derived from those without reading the file again:
the ETag S3 and the stores that copy it give a file uploaded in N-byte parts
(the MD5 for a file under one part, else the MD5 of the part MD5s, "-", the
part count).

The engine alone hashes: `digest_files` hashes many files in one pool that
stops at once on Ctrl-C.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from uploader.local.hash_cache import HashCache
from uploader.local.plan import LocalFile

logger = logging.getLogger(__name__)

READ_SIZE = 1024 * 1024
SMALL_READ_SIZE = 64 * 1024
PARALLEL_MIN_SIZE = 32 * READ_SIZE  # below this, a helper thread costs more than it saves
SMALL_WHOLE = READ_SIZE  # files under this are read in one go
WHOLE_FILE_HASHES = {"sha256": hashlib.sha256, "md5": hashlib.md5}


class Cancelled(Exception):
    """Hashing stopped because the run is being interrupted."""


def digests(file: LocalFile, names: Iterable[str], cache: HashCache,
            stop: threading.Event | None = None) -> dict[str, str]:
    """The requested digests of `file`, from the cache or from one read of the file."""
    wanted = list(dict.fromkeys(names))
    read = list(dict.fromkeys(_read_digest_name(name) for name in wanted))
    found = {name: value for name in read if (value := cache.lookup(file, name)) is not None}
    missing = [name for name in read if name not in found]
    if missing:
        computed = _compute(file, missing, stop)
        cache.store(file, computed)
        found.update(computed)
    return {name: _derive(name, found, file.size) for name in wanted}


def cached_digests(file: LocalFile, names: Iterable[str], cache: HashCache) -> dict[str, str] | None:
    """The requested digests of `file` if the cache knows every one of them (no read), else None."""
    wanted = list(dict.fromkeys(names))
    found = {}
    for name in dict.fromkeys(_read_digest_name(name) for name in wanted):
        if (value := cache.lookup(file, name)) is None:
            return None
        found[name] = value
    return {name: _derive(name, found, file.size) for name in wanted}


def digest_files(jobs: Sequence[tuple[LocalFile, Sequence[str]]], cache: HashCache,
                 workers: int) -> list[dict[str, str]]:
    """The digests of many files: the cache's at once, the others hashed side by side; Ctrl-C stops every read.

    A re-run finds nearly all of them in the cache: handing those to a pool cost more than answering them
    (2,000 files: ~60 ms of thread hand-offs before a no-op run could end).
    """
    found = [cached_digests(file, names, cache) for file, names in jobs]
    unknown = [job for job, known in zip(jobs, found, strict=True) if known is None]
    if not unknown:
        return [known for known in found if known is not None]
    read = iter(_read_side_by_side(unknown, cache, workers))
    return [known if known is not None else next(read) for known in found]


def _read_side_by_side(jobs: Sequence[tuple[LocalFile, Sequence[str]]], cache: HashCache,
                       workers: int) -> list[dict[str, str]]:
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs))), thread_name_prefix="hash")
    try:
        found = list(pool.map(lambda job: digests(job[0], job[1], cache, stop), jobs))
    except KeyboardInterrupt:
        stop.set()  # hashing a cold 50 GB dataset must not delay Ctrl-C
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return found


def is_digest_name(name: str) -> bool:
    """Whether `digests` can compute a digest of this name."""
    kind, _, size = name.partition(":")
    return name in ("md5", "sha256") or (kind in ("md5parts", MULTIPART_ETAG) and size.isdigit() and int(size) > 0)


MULTIPART_ETAG = "multipart-etag"


def multipart_etag_name(part_size: int) -> str:
    return f"{MULTIPART_ETAG}:{part_size}"


def _read_digest_name(name: str) -> str:
    # A multipart ETag is derived from the part MD5s: reading those is reading the file.
    kind, _, size = name.partition(":")
    return part_md5_name(int(size)) if kind == MULTIPART_ETAG else name


def _derive(name: str, found: dict[str, str], file_size: int) -> str:
    kind, _, size = name.partition(":")
    if kind != MULTIPART_ETAG:
        return found[name]
    part_md5s = found[part_md5_name(int(size))].split(",")
    if file_size < int(size):  # one PUT, no multipart upload: the ETag is the MD5
        return part_md5s[0]
    joined = b"".join(bytes.fromhex(value) for value in part_md5s)
    return f"{hashlib.md5(joined).hexdigest()}-{len(part_md5s)}"


def part_md5_name(part_size: int) -> str:
    return f"md5parts:{part_size}"


def _compute(file: LocalFile, names: list[str], stop: threading.Event | None) -> dict[str, str]:
    if file.size < SMALL_WHOLE:
        return _compute_small(file, names)
    whole = {name: hashlib.new(name) for name in names if name in ("sha256", "md5")}
    part_sizes = [int(name.split(":", 1)[1]) for name in names if name.startswith("md5parts:")]
    parts = {size: _PartHasher(size) for size in part_sizes}
    updates = [hasher.update for hasher in whole.values()] + [hasher.update for hasher in parts.values()]
    # A fresh 1 MiB buffer for an 8 KiB file was most of its hashing cost (zeroing, page faults).
    buffer = bytearray(min(READ_SIZE, max(file.size + 1, SMALL_READ_SIZE)))
    view = memoryview(buffer)
    # hashlib lets go of the GIL while it hashes: on a big file, MD5 and SHA-256 of
    # each block run side by side, and the first byte of a 5 GB file is sent sooner.
    helper = ThreadPoolExecutor(1, thread_name_prefix="hash") \
        if file.size >= PARALLEL_MIN_SIZE and len(updates) > 1 else None
    try:
        with open(file.path, "rb") as handle:
            while count := handle.readinto(buffer):
                if stop is not None and stop.is_set():
                    raise Cancelled()
                chunk = view[:count]
                beside = helper.submit(updates[-1], chunk) if helper else None
                for update in updates[:-1] if helper else updates:
                    update(chunk)
                if beside is not None:
                    beside.result()  # before the buffer is read into again
    finally:
        if helper is not None:
            helper.shutdown()
    result = {name: hasher.hexdigest() for name, hasher in whole.items()}
    result.update({part_md5_name(size): hasher.hexdigests() for size, hasher in parts.items()})
    return result


def _compute_small(file: LocalFile, names: list[str]) -> dict[str, str]:
    """A small file read whole: no buffers, no part bookkeeping (most of a 8 KiB file's hashing cost).

    One read of the planned size (and one more byte, to see growth) instead of buffered I/O's four system
    calls: each is a moment another thread may take the interpreter lock, and thousands of small files are
    prepared in the thread that hands the work out.
    """
    handle = os.open(file.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(handle, file.size + 1)
        while len(data) > file.size and (more := os.read(handle, READ_SIZE)):  # it grew: read what is there
            data += more
    finally:
        os.close(handle)
    result = {}
    for name in names:
        kind, _, size = name.partition(":")
        if kind == "md5parts":
            part = int(size)
            result[name] = hashlib.md5(data).hexdigest() if len(data) <= part else ",".join(
                hashlib.md5(data[start:start + part]).hexdigest() for start in range(0, len(data), part))
        else:
            result[name] = WHOLE_FILE_HASHES[kind](data).hexdigest()
    return result


class _PartHasher:
    """MD5 of each consecutive `part_size` slice of a stream."""

    def __init__(self, part_size: int) -> None:
        self.part_size = part_size
        self.done: list[str] = []
        self.current = hashlib.md5()
        self.filled = 0

    def update(self, chunk: memoryview) -> None:
        while len(chunk):
            take = min(len(chunk), self.part_size - self.filled)
            self.current.update(chunk[:take])
            self.filled += take
            chunk = chunk[take:]
            if self.filled == self.part_size:
                self.done.append(self.current.hexdigest())
                self.current, self.filled = hashlib.md5(), 0

    def hexdigests(self) -> str:
        if self.filled or not self.done:  # an empty file is one empty part
            self.done.append(self.current.hexdigest())
            self.current, self.filled = hashlib.md5(), 0
        return ",".join(self.done)

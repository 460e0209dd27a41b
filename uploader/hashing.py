"""Content hashes of local files: computed in one read pass, cached by path and stat identity.

A re-run of a 50 GB dataset must not read 50 GB again just to learn that
nothing changed, so digests are kept in a small SQLite file in the user's
cache directory. When no writable cache directory exists (a read-only HOME
under Singularity) the cache is simply off: every run re-hashes, nothing breaks.

Digest names: "sha256" and "md5" of the whole file; "md5parts:<N>", the MD5 of
each N-byte part, comma-separated (what S3 needs for Content-MD5 on each part);
and "multipart-etag:<N>", derived from those without reading the file again:
the ETag S3 and the stores that copy it give a file uploaded in N-byte parts
(the MD5 for a file under one part, else the MD5 of the part MD5s, "-", the
part count).

The runner alone hashes: `digest_files` hashes many files in one pool that
stops at once on Ctrl-C.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from uploader.plan import LocalFile

READ_SIZE = 1024 * 1024
SMALL_READ_SIZE = 64 * 1024
PARALLEL_MIN_SIZE = 32 * READ_SIZE  # below this, a helper thread costs more than it saves
CACHE_ENV = "CARTLOAD_UPLOADER_CACHE_DIR"
PRELOAD_BATCH = 500  # paths per query: under SQLite's limit on parameters
FLUSH_ROWS = 2000
FLUSH_SECONDS = 5.0  # a long run keeps what it hashed even if it is killed
TABLE = "digest_v1"  # a new name when the layout changes: old caches are then simply ignored


class Cancelled(Exception):
    """Hashing stopped because the run is being interrupted."""


class HashCache:
    """Digests keyed by (resolved path, size/mtime/ctime/inode, digest name). Thread-safe.

    Lookups are answered from memory (`preload` reads a whole plan's rows in a
    few queries) and new digests are written in batches: per-file queries and
    commits cost more than uploading a small file.
    """

    def __init__(self, directory: Path | None) -> None:
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._known: dict[tuple[str, str, str], str] = {}
        self._preloaded: set[str] = set()
        self._pending: list[tuple[str, str, str, str]] = []
        self._flushed_at = time.monotonic()
        self.notice = ""
        if directory is None:
            self.notice = (f"hash cache off: no HOME or XDG_CACHE_HOME to keep it in; files are re-hashed on every"
                           f" run (set {CACHE_ENV} to a writable directory to keep it)")
            return
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(directory / "hashes.sqlite3", check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # a lost cache row only costs a re-hash
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (path TEXT, identity TEXT, name TEXT, value TEXT,"
                " PRIMARY KEY (path, identity, name))"
            )
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            self._db = None
            self.notice = (f"hash cache off: cannot write {directory} ({exc}); files are re-hashed on every run"
                           f" (set {CACHE_ENV} to a writable directory to keep it)")

    @classmethod
    def default(cls) -> HashCache:
        """The cache in $CARTLOAD_UPLOADER_CACHE_DIR, else $XDG_CACHE_HOME or ~/.cache."""
        return cls(default_cache_dir())

    def preload(self, files: Iterable[LocalFile]) -> None:
        """Read the cached digests of all `files` at once."""
        paths = sorted({str(file.path) for file in files} - self._preloaded)
        if self._db is None or not paths:
            return
        try:
            with self._lock:
                for start in range(0, len(paths), PRELOAD_BATCH):
                    batch = paths[start:start + PRELOAD_BATCH]
                    rows = self._db.execute(
                        f"SELECT path, identity, name, value FROM {TABLE} WHERE path IN"
                        f" ({','.join('?' * len(batch))})", batch).fetchall()
                    self._known.update({(path, identity, name): value for path, identity, name, value in rows})
                self._preloaded.update(paths)
        except sqlite3.Error:
            pass  # a damaged cache only costs a re-hash

    def lookup(self, file: LocalFile, name: str) -> str | None:
        key = (str(file.path), _identity(file), name)
        if key in self._known or key[0] in self._preloaded:
            return self._known.get(key)
        self.preload([file])
        return self._known.get(key)

    def store(self, file: LocalFile, values: dict[str, str]) -> None:
        path, identity = str(file.path), _identity(file)
        with self._lock:
            self._known.update({(path, identity, name): value for name, value in values.items()})
            self._pending.extend((path, identity, name, value) for name, value in values.items())
            if len(self._pending) >= FLUSH_ROWS or time.monotonic() - self._flushed_at > FLUSH_SECONDS:
                self._flush()

    def close(self) -> None:
        with self._lock:
            self._flush()
        if self._db is not None:
            self._db.close()
            self._db = None

    def _flush(self) -> None:
        rows, self._pending, self._flushed_at = self._pending, [], time.monotonic()
        if self._db is None or not rows:
            return
        try:
            # Older versions of the same files are dead weight.
            self._db.executemany(f"DELETE FROM {TABLE} WHERE path=? AND identity!=?",
                                 sorted({(path, identity) for path, identity, _, _ in rows}))
            self._db.executemany(f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, ?, ?)", rows)
            self._db.commit()
        except sqlite3.Error:
            pass  # a cache that cannot be written only costs time on the next run


def default_cache_dir() -> Path | None:
    """Where the hash cache lives, or None when there is no home to put it in."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "cartload-uploader"
    home = os.environ.get("HOME")
    return Path(home) / ".cache" / "cartload-uploader" if home else None


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


def digest_files(jobs: Sequence[tuple[LocalFile, Sequence[str]]], cache: HashCache,
                 workers: int) -> list[dict[str, str]]:
    """The digests of many files, hashed side by side; Ctrl-C stops every read at once."""
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="hash")
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


def _identity(file: LocalFile) -> str:
    return ":".join(str(value) for value in file.identity)


def part_md5_name(part_size: int) -> str:
    return f"md5parts:{part_size}"


def _compute(file: LocalFile, names: list[str], stop: threading.Event | None) -> dict[str, str]:
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

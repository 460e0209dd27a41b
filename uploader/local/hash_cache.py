"""The hash cache: each local file's digests kept in a small SQLite file, by path and stat identity.

A re-run of a 50 GB dataset must not read 50 GB again just to learn that
nothing changed, so digests are kept in a small SQLite file in the user's
cache directory. The cache only ever costs time, never correctness:
- no writable cache directory (a read-only HOME under Singularity): the cache
  is off, with one notice, and every run re-hashes;
- a network file system (NFS, Lustre, ... where HOME often lives on a
  cluster): SQLite's WAL mode needs shared memory those cannot give, so the
  rollback journal is used there; if file locks do not work at all the cache
  is off, with one notice;
- a damaged cache file is moved aside (once: one `.damaged` copy is kept)
  and a new one is started, with one notice.

What the digests are, and how they are computed: digests.py.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from uploader.local.plan import LocalFile

logger = logging.getLogger(__name__)

CACHE_ENV = "CARTLOAD_UPLOADER_CACHE_DIR"
PRELOAD_BATCH = 500  # paths per query: under SQLite's limit on parameters
FLUSH_ROWS = 2000
FLUSH_SECONDS = 5.0  # a long run keeps what it hashed even if it is killed
TABLE = "digest_v1"  # a new name when the layout changes: old caches are then simply ignored
CACHE_FILE = "hashes.sqlite3"
LOCK_WAIT_SECONDS = 30.0  # another run writing the same cache holds its lock for milliseconds
# File systems shared between machines: no shared memory for WAL, and locks that may not work
# (SQLite's FAQ and its "WAL does not work over a network filesystem").
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "lustre", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "fuse.glusterfs", "gpfs", "beegfs",
    "fuse.beegfs", "panfs", "wekafs", "afs", "9p", "fuse.sshfs", "fuse.s3fs", "fuse.rclone", "fuse.juicefs",
    "fuse.cephfs",
})
# What SQLite answers when file locks fail (ENOLCK, ENOSYS): a cache it cannot lock is off.
LOCK_ERRORS = frozenset({
    "SQLITE_IOERR", "SQLITE_IOERR_LOCK", "SQLITE_IOERR_RDLOCK", "SQLITE_IOERR_UNLOCK", "SQLITE_PROTOCOL",
    "SQLITE_IOERR_CHECKRESERVEDLOCK", "SQLITE_IOERR_SHMLOCK", "SQLITE_IOERR_SHMMAP", "SQLITE_IOERR_SHMOPEN",
    "SQLITE_IOERR_SHMSIZE", "SQLITE_NOLFS",
})
DAMAGE_ERRORS = frozenset({"SQLITE_NOTADB", "SQLITE_CORRUPT"})


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
        self._moved_aside = False
        self.notice = ""
        self.path = directory / CACHE_FILE if directory is not None else None
        if directory is None:
            self.notice = (f"hash cache off: no HOME or XDG_CACHE_HOME to keep it in; files are re-hashed on every"
                           f" run (set {CACHE_ENV} to a writable directory to keep it)")
            return
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._off(f"cannot create {directory} ({exc.strerror or exc})")
            return
        self._open()

    def _open(self) -> None:
        """Open (or create) the cache file, in the journal mode its file system can take."""
        assert self.path is not None
        fs_type = filesystem_type(self.path.parent)
        broken = _lock_failure(self.path.parent)
        if broken:
            # SQLite takes a refused lock (ENOLCK) for a busy one and would wait LOCK_WAIT_SECONDS first.
            self._off(f"{self.path.parent} is on a file system ({fs_type or 'unknown type'}) where file locks do"
                      f" not work ({broken})", where="a directory on a local disk, such as node-local scratch,")
            return
        try:
            self._db = _connect(self.path, wal=fs_type not in NETWORK_FILESYSTEMS)
        except sqlite3.Error as exc:
            self._db = None
            self._opening_failed(exc, fs_type)

    def _opening_failed(self, exc: sqlite3.Error, fs_type: str) -> None:
        assert self.path is not None
        reason = _error_name(exc)
        if reason in DAMAGE_ERRORS:
            self._move_aside(exc)
        elif reason == "SQLITE_BUSY":
            self._off(f"{self.path} stayed locked by another run for {LOCK_WAIT_SECONDS:.0f} s")
        elif reason in LOCK_ERRORS:
            self._off(f"{self.path.parent} is on a file system ({fs_type or 'unknown type'}) where file locks do"
                      f" not work ({exc})", where="a directory on a local disk, such as node-local scratch,")
        else:
            self._off(f"cannot write {self.path.parent} ({exc})")

    def _move_aside(self, exc: sqlite3.Error) -> None:
        """A damaged cache file is set aside (one copy, for a post-mortem) and a new one started."""
        assert self.path is not None
        if self._moved_aside:  # a new file that is damaged at once: something else is wrong
            self._off(f"{self.path} is damaged again right after being started anew ({exc})")
            return
        self._moved_aside = True
        aside = self.path.with_name(self.path.name + ".damaged")
        try:
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm", "-journal"):  # never apply an old journal to the new file
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        except OSError as move_error:
            self._off(f"{self.path} is damaged ({exc}) and cannot be moved aside ({move_error.strerror})")
            return
        self.notice = f"hash cache: {self.path} was damaged ({exc}); moved it to {aside.name} and started a new one"
        self._open()

    def _off(self, why: str, where: str = "a writable directory") -> None:
        self._db = None
        self.notice = (f"hash cache off: {why}; files are re-hashed on every run"
                       f" (set {CACHE_ENV} to {where} to keep it)")

    @classmethod
    def default(cls) -> HashCache:
        """The cache in $CARTLOAD_UPLOADER_CACHE_DIR, else $XDG_CACHE_HOME or ~/.cache."""
        return cls(default_cache_dir())

    def preload(self, files: Iterable[LocalFile]) -> None:
        """Read the cached digests of all `files` at once."""
        paths = sorted({file.cache_key[0] for file in files} - self._preloaded)
        if self._db is None or not paths:
            return
        with self._lock:
            try:
                for start in range(0, len(paths), PRELOAD_BATCH):
                    batch = paths[start:start + PRELOAD_BATCH]
                    rows = self._db.execute(
                        f"SELECT path, identity, name, value FROM {TABLE} WHERE path IN"
                        f" ({','.join('?' * len(batch))})", batch).fetchall()
                    self._known.update({(path, identity, name): value for path, identity, name, value in rows})
                self._preloaded.update(paths)
            except sqlite3.Error as exc:
                self._damaged(exc)  # otherwise a cache that cannot be read only costs a re-hash

    def read_again(self, files: Iterable[LocalFile]) -> None:
        """Read the rows of `files` again: another process may have stored them since (an --shard worker that
        hashed them as it sent them, sharing this cache), and a lookup then costs no read of the file."""
        files = list(files)
        with self._lock:
            self._preloaded.difference_update(file.cache_key[0] for file in files)
        self.preload(files)

    def lookup(self, file: LocalFile, name: str) -> str | None:
        key = (*file.cache_key, name)
        if key in self._known or key[0] in self._preloaded:
            return self._known.get(key)
        self.preload([file])
        return self._known.get(key)

    def store(self, file: LocalFile, values: dict[str, str]) -> None:
        path, identity = file.cache_key
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
        except sqlite3.Error as exc:
            self._damaged(exc)  # otherwise a cache that cannot be written only costs time on the next run

    def _damaged(self, exc: sqlite3.Error) -> None:
        """Damage found after opening (a bad page deep in the file): move it aside and start anew. Holds the lock."""
        if _error_name(exc) not in DAMAGE_ERRORS or self._db is None:
            return
        self._db.close()
        self._db = None
        self._move_aside(exc)
        if self._db is not None:
            self._preloaded.clear()  # the new file knows nothing; what is in memory stays valid
        logger.warning("note: %s", self.notice)  # found mid-run, after the notices at the start were shown


def _connect(path: Path, wal: bool) -> sqlite3.Connection:
    """A connection whose first write succeeded: locking and the file's format are proven, or this raises."""
    db = sqlite3.connect(path, check_same_thread=False, timeout=LOCK_WAIT_SECONDS)
    try:
        db.execute(f"PRAGMA journal_mode={'WAL' if wal else 'DELETE'}")
        db.execute("PRAGMA synchronous=NORMAL")  # a lost cache row only costs a re-hash
        db.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (path TEXT, identity TEXT, name TEXT, value TEXT,"
                   " PRIMARY KEY (path, identity, name))")
        db.execute("BEGIN IMMEDIATE")  # takes the write lock even when the table already exists
        db.execute(f"SELECT count(*) FROM (SELECT 1 FROM {TABLE} LIMIT 1)")
        db.commit()
    except BaseException:
        db.close()
        raise
    return db


def _lock_failure(directory: Path) -> str:
    """Why a POSIX lock cannot be taken in `directory` ("" when it can, or when it is merely held by another)."""
    probe = directory / ".lock-probe"
    try:
        handle = os.open(probe, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return ""  # not writable: opening the cache says so
    try:
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(handle, fcntl.LOCK_UN)
    except OSError as exc:
        if exc.errno in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EIO):
            return exc.strerror or str(exc)
    finally:
        os.close(handle)
        with contextlib.suppress(OSError):
            probe.unlink()
    return ""


def _error_name(exc: sqlite3.Error) -> str:
    # sqlite_errorname is Python 3.11+; before it, the message is all there is.
    name = str(getattr(exc, "sqlite_errorname", ""))
    if name:
        return name
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        return "SQLITE_CORRUPT"
    if "locked" in text:
        return "SQLITE_BUSY"
    return "SQLITE_IOERR" if "disk I/O" in text or "locking protocol" in text else "SQLITE_ERROR"


def filesystem_type(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> str:
    """The type of the file system holding `path` (e.g. "ext4", "nfs4"), or "" when it cannot be told."""
    try:
        lines = mountinfo.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""  # not Linux: no network file system is recognised
    target = os.path.realpath(path)
    best, best_type = "", ""
    for line in lines:
        fields = line.split()
        if "-" not in fields or len(fields) < 5:
            continue
        # "<id> <parent> <dev> <root> <mount point> <options> [optional...] - <type> <source> <options>"
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, best_type = point, fields[fields.index("-") + 1]
    return best_type


def default_cache_dir() -> Path | None:
    """Where the hash cache lives, or None when there is no home to put it in."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "cartload-uploader"
    home = os.environ.get("HOME")
    return Path(home) / ".cache" / "cartload-uploader" if home else None

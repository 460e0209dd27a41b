"""What a run does with each file, and what became of it: the runner's side of the plan.

The plan (plan.py) says which local files make up a dataset; comparing them
with the remote (decide.py) turns each into an Operation with an Action and
a reason. `--dry-run` prints these operations, the runner executes them and
records each one's Status, and the report and progress display read them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from uploader.local.plan import Dataset, LocalFile


@dataclass(frozen=True)
class RemoteFile:
    """One file on the remote, as its listing shows it."""

    name: str  # the destination name (S3 key, Zenodo file name)
    size: int
    digests: Mapping[str, str] = field(default_factory=dict)  # what the remote vouches for, by digest name
    handle: str = ""  # the backend's own reference to it (e.g. a Zenodo file id)
    origin: str = ""  # where it came from, for messages (e.g. "in version 1": a file a new Zenodo version inherited)


@dataclass(frozen=True)
class Stored:
    """What the remote says it now holds after a send, and what the backend learnt while sending."""

    size: int
    digests: Mapping[str, str]  # vouched by the remote, to compare with the local digests
    sent_digests: Mapping[str, str] = field(default_factory=dict)  # of the bytes sent, computed while sending
    resumed: int = 0  # bytes an earlier attempt or run had already stored, checked and kept


class Action(enum.Enum):
    """What a run does with one file, decided by comparing it with the remote."""

    UPLOAD = "upload"  # not there yet
    REPLACE = "replace"  # there, with other content (or replacing was asked for)
    SKIP = "skip"  # there and identical
    UPDATE = "update"  # there and identical, but stored with other options (e.g. Cache-Control): set them in place
    DELETE = "delete"  # remove from the remote (e.g. emptying a Zenodo draft with --restart)


class Status(enum.Enum):
    """What became of one operation (the report's `status`)."""

    PLANNED = "planned"  # a dry run: decided, not executed
    PENDING = "pending"  # not finished yet
    UPLOADED = "uploaded"
    UPDATED = "updated"  # its options set in place, its bytes not sent again
    SKIPPED = "skipped"
    DELETED = "deleted"
    FAILED = "failed"
    NOT_RUN = "not-run"  # the run was interrupted before it got to this one
    WAITING = "waiting"  # a catalog that waits for files another upload group's run sends (not a failure)


# A catalog in one of these states is on the remote as it is here: its dataset is published.
PUBLISHED = (Status.UPLOADED, Status.UPDATED, Status.SKIPPED)


@dataclass
class Operation:
    """One step of the executed plan and, once run, its outcome."""

    action: Action
    dataset: Dataset
    file: LocalFile | None  # None for a DELETE of a file that exists only on the remote
    destination: str  # the S3 key or Zenodo file name
    reason: str
    is_catalog: bool = False
    remote: RemoteFile | None = None  # the remote copy the decision was made against
    status: Status = Status.PENDING
    error: str = ""
    checksum: str = ""  # the digest the report shows, e.g. "sha256:..." or "md5:..."
    resumed: int = 0  # bytes an earlier attempt or run had stored already (kept, not sent again)
    digests: dict[str, str] = field(default_factory=dict)  # the local file's digests, as far as they are known
    changes: dict[str, str] = field(default_factory=dict)  # UPDATE: option -> the value to set (it differs)
    after_publish: bool = False  # a DELETE that waits until its dataset's catalog is published (--delete)
    # A catalog another --shard worker may publish or withdraw meanwhile: decided again, skipped if already
    # there as it is here, from the listing taken just before it would be published.
    recheck: bool = False
    # A request for it went out and no answer tells what the remote did (interrupted, timed out, cut): for a
    # catalog, the store is asked afterwards (engine/settle.py), and `store_says` holds its word.
    in_doubt: bool = False
    store_says: str = ""

    @property
    def size(self) -> int:
        return self.file.size if self.file else 0

    @property
    def transfers_bytes(self) -> bool:
        return self.action in (Action.UPLOAD, Action.REPLACE)

    @property
    def writes_file(self) -> bool:
        """It writes this file on the remote: its bytes, or only its stored options."""
        return self.transfers_bytes or self.action is Action.UPDATE

    def fail(self, reason: str) -> None:
        self.status, self.error = Status.FAILED, reason

"""The contract between the runner and a destination (S3, Zenodo, the tests' in-memory store).

A backend says what is on its remote and carries out single operations; it
never decides what to skip or replace. Digests are named as in hashing.py
("md5", "sha256", "md5parts:N", "multipart-etag:N"): a backend reports the
ones its remote vouches for, the runner computes the same ones locally and
compares.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from uploader.engine.operations import Operation, RemoteFile, Stored
from uploader.local.plan import Dataset, LocalFile, UploadPlan


class Destinations(Protocol):
    """Where a destination puts each file: all that deciding what is extra on the remote needs of it."""

    def destination(self, dataset: Dataset, name: str) -> str:
        """Where a file of `dataset` called `name` goes (an S3 key, a Zenodo file name)."""


class Backend(Protocol):
    """What a destination provides to the runner."""

    # --restart: True empties the remote (a Zenodo draft) before sending; False only re-sends the plan's files.
    restart_empties_remote: bool
    # True: a catalog on the remote is read by the public the moment it is there (S3); False: nothing is public
    # before finish() (a Zenodo draft). A live catalog is withdrawn while files it names are replaced.
    catalogs_go_live: bool
    # True: the remote must end with exactly the planned files (a Zenodo record), so each remote file the plan
    # does not name is deleted before anything is sent; False: other remote files stay (unless --delete).
    holds_only_the_plan: bool

    # What the decisions and the executor need of the backend's own options, read from its settings:

    @property
    def overwrite(self) -> bool:
        """Replace files even when unchanged (upload_zenodo --overwrite)."""

    @property
    def deletes_unnamed(self) -> bool:
        """Remove the remote files a dataset's catalog does not name, once it is published (upload_aws --delete)."""

    @property
    def wanted_options(self) -> Mapping[str, str]:
        """The options given that each unchanged file must be stored with (option -> value; e.g. --acl)."""

    @property
    def stall_seconds(self) -> float | None:
        """Stop a run after this long without progress (None: never)."""

    @property
    def waiting_for(self) -> str:
        """The remote, as messages name it while the run waits for it."""

    def destination(self, dataset: Dataset, name: str) -> str:
        """Where a file of `dataset` called `name` goes (an S3 key, a Zenodo file name)."""

    def digests_to_send(self, file: LocalFile) -> tuple[str, ...]:
        """The local digests the runner must hand in before `file` is sent (e.g. Content-MD5 of each part)."""

    def digests_while_sending(self, file: LocalFile) -> tuple[str, ...]:
        """Of those, the ones this backend computes itself from the bytes it sends when they are not known (a first
        upload of a big file, read once): the runner then hands in only what its cache holds, without a read."""

    def check_access(self, plan: UploadPlan, *, dry_run: bool) -> None:
        """Fail fast (UploaderError) on bad credentials, permissions or destination."""

    def remote_files(self, dataset: Dataset) -> dict[str, RemoteFile]:
        """What is on the remote where `dataset` goes, by destination name."""

    def digests_on_request(self, remote: RemoteFile) -> dict[str, str]:
        """Digests that cost a request to learn (e.g. a HEAD's stored SHA-256), when the listing's do not tell."""

    def stored_options(self, remote: RemoteFile, wanted: Mapping[str, str]) -> dict[str, str]:
        """What the remote holds for each option in `wanted` (e.g. a HEAD's Cache-Control), in the options' terms.

        Asked only for options given on the run; a value equal to the wanted one means nothing to update.
        """

    def published_headers(self, file: LocalFile) -> dict[str, str]:
        """Headers readers depend on that this tool publishes `file` with ("" for none), e.g. no Content-Encoding
        on a PMTiles archive. An unchanged remote copy holding other values is updated in place, asked with
        stored_options on every run (a request each): {} for a file whose headers readers do not depend on."""

    def read(self, remote: RemoteFile) -> bytes:
        """The content of a small remote file (a published catalog)."""

    def now_at(self, name: str) -> RemoteFile | None:
        """What the remote holds at `name` right now (one request), None if nothing; asked only where catalogs go
        live, when a catalog's update was cut short. Raises when the remote does not tell."""

    def check_plan(self, ops: list[Operation]) -> None:
        """Refuse (UploaderError) a plan the remote cannot take (e.g. Zenodo's limits); dry runs too."""

    def begin(self, ops: list[Operation]) -> bool:
        """Called once before the first write (not in a dry run). True: the remote changed, list it again."""

    def start_send(self, op: Operation, digests: Mapping[str, str], progress: Callable[[int], None],
                   stop: threading.Event) -> Future[Stored]:
        """Start sending one file; the Future ends with what the remote stored, or a FileUploadError.

        `digests` holds digests_to_send(op.file). An UPDATE sets `op.changes` on the remote copy without
        sending the bytes again. A backend whose sends block can start them with SendsInThreads.
        """

    def delete(self, op: Operation) -> None:
        """Remove one remote file; raise FileUploadError on failure."""

    def finish(self, ops: list[Operation], *, ok: bool) -> list[str]:
        """Called after every operation ran (e.g. Zenodo's publish); returns lines for the summary."""

    def cancel(self) -> None:
        """Stop in-flight transfers promptly and clean up what they leave."""

    def resume_options(self) -> list[str]:
        """Options a re-run needs to go on where this run stopped (e.g. the id of a Zenodo deposition it made)."""

class SendsInThreads:
    """start_send for a backend whose `send` blocks: each send runs in a thread of the backend's own pool."""

    send_threads = 4

    def send(self, op: Operation, digests: Mapping[str, str], progress: Callable[[int], None],
             stop: threading.Event) -> Stored:
        raise NotImplementedError

    def start_send(self, op: Operation, digests: Mapping[str, str], progress: Callable[[int], None],
                   stop: threading.Event) -> Future[Stored]:
        if getattr(self, "_send_pool", None) is None:
            self._send_pool = ThreadPoolExecutor(self.send_threads, thread_name_prefix="send")
        return self._send_pool.submit(self.send, op, digests, progress, stop)

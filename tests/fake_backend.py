"""An in-memory backend for the runner's tests: a dict of remote objects, with faults on demand.

It keeps the contract of uploader.engine.backend.Backend as the real ones do: it
reports what it holds (size and MD5, and on request the options an object was
stored with) and carries out one operation at a time; it decides nothing.
Every write is recorded in `events`, in order, so tests can check the order
a user relies on (deletions, files, catalog last).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from uploader.engine.backend import SendsInThreads
from uploader.engine.operations import Action, Operation, RemoteFile, Stored
from uploader.errors import FileUploadError
from uploader.local.plan import Dataset, LocalFile, UploadPlan


@dataclass
class Faults:
    """What goes wrong, by destination name."""

    refuse: set[str] = field(default_factory=set)  # a final (non-retryable) failure of every send or delete
    corrupt: dict[str, int] = field(default_factory=dict)  # store wrong bytes this many times
    slow: dict[str, float] = field(default_factory=dict)  # seconds a send takes
    on_send: dict[str, Callable[[], None]] = field(default_factory=dict)  # run just before storing


class InMemoryBackend(SendsInThreads):
    """A remote that is a dict of name -> bytes (see backend.Backend)."""

    def __init__(self, *, restart_empties_remote: bool = False, catalogs_go_live: bool = True,
                 holds_only_the_plan: bool = False, faults: Faults | None = None, sha256_on_request: bool = False,
                 object_options: Mapping[str, str] | None = None) -> None:
        self.restart_empties_remote = restart_empties_remote
        self.catalogs_go_live = catalogs_go_live
        self.holds_only_the_plan = holds_only_the_plan
        # The backend's own options the decisions read (see backend.Backend).
        self.overwrite = False
        self.deletes_unnamed = False
        self.wanted_options: dict[str, str] = {}
        self.stall_seconds: float | None = None
        self.waiting_for = "the remote"
        self.faults = faults or Faults()
        self.sha256_on_request = sha256_on_request
        self.objects: dict[str, bytes] = {}
        self.object_options = dict(object_options or {})  # what every send stores with the object (--acl, ...)
        self.archive_headers: dict[str, str] = {}  # what readers depend on in a .pmtiles (as S3's Content-Encoding)
        self.options: dict[str, dict[str, str]] = {}  # name -> the options it is stored with
        self.requests_for_options = 0
        self.events: list[tuple[str, str]] = []
        self.sends: dict[str, int] = {}
        self.requests_for_digests = 0
        self.cancelled = False
        self._lock = threading.Lock()

    # -- what is there --------------------------------------------------------------------

    def destination(self, dataset: Dataset, name: str) -> str:
        return f"{dataset.subdir}/{name}" if dataset.subdir else name

    def digests_to_send(self, file: LocalFile) -> tuple[str, ...]:
        return ("sha256",)

    def digests_while_sending(self, file: LocalFile) -> tuple[str, ...]:
        return ()

    def check_access(self, plan: UploadPlan, *, dry_run: bool) -> None:
        self.events.append(("check", ""))

    def remote_files(self, dataset: Dataset) -> dict[str, RemoteFile]:
        prefix = f"{dataset.subdir}/" if dataset.subdir else ""
        with self._lock:
            self.events.append(("list", dataset.subdir))
            held = dict(self.objects)
        vouched = "sha256" if self.sha256_on_request else "md5"
        return {name: RemoteFile(name, len(data), {} if vouched == "sha256" else {"md5": _md5(data)})
                for name, data in held.items() if name.startswith(prefix)}

    def digests_on_request(self, remote: RemoteFile) -> dict[str, str]:
        self.requests_for_digests += 1
        return {"sha256": hashlib.sha256(self.objects[remote.name]).hexdigest()} if self.sha256_on_request else {}

    def stored_options(self, remote: RemoteFile, wanted: Mapping[str, str]) -> dict[str, str]:
        with self._lock:
            self.requests_for_options += 1
            held = self.options.get(remote.name, {})
        return {name: held[name] for name in wanted if name in held}

    def published_headers(self, file: LocalFile) -> dict[str, str]:
        return dict(self.archive_headers) if file.name.endswith(".pmtiles") else {}

    def read(self, remote: RemoteFile) -> bytes:
        self.events.append(("read", remote.name))
        return self.objects[remote.name]

    def downloaded_digests(self, remote: RemoteFile, names: Sequence[str]) -> dict[str, str]:
        """The digests of the bytes held (verify's --deep)."""
        self.events.append(("download", remote.name))
        return {name: hashlib.new(name, self.objects[remote.name]).hexdigest() for name in names}
    def now_at(self, name: str) -> RemoteFile | None:
        self.events.append(("now_at", name))
        with self._lock:
            data = self.objects.get(name)
        return None if data is None else RemoteFile(name, len(data), {"md5": _md5(data)})

    def check_plan(self, ops: list[Operation]) -> None:
        """Anything fits."""

    # -- writing --------------------------------------------------------------------------

    def begin(self, ops: list[Operation]) -> bool:
        self.events.append(("begin", ""))
        return False

    def send(self, op: Operation, digests: Mapping[str, str], progress: Callable[[int], None],
             stop: threading.Event) -> Stored:
        name = op.destination
        assert op.file is not None and "sha256" in digests, "the runner hands in what digests_to_send asks for"
        if op.action is Action.UPDATE:  # the options set in place: no bytes sent
            with self._lock:
                self.options.setdefault(name, {}).update(op.changes)
                self.events.append(("update", name))
                data = self.objects[name]
            return Stored(len(data), {"md5": _md5(data)})
        with self._lock:
            self.sends[name] = self.sends.get(name, 0) + 1
        if name in self.faults.refuse:
            raise FileUploadError("refused by the fake remote")
        self._wait(self.faults.slow.get(name, 0.0), stop)
        if name in self.faults.on_send:
            self.faults.on_send[name]()
        data = op.file.path.read_bytes()
        if self.faults.corrupt.get(name, 0) > 0:
            self.faults.corrupt[name] -= 1
            data = bytes([data[0] ^ 1]) + data[1:] if data else b"x"
        with self._lock:
            self.objects[name] = data
            self.options[name] = dict(self.object_options)
            self.events.append(("put", name))
        progress(len(data))
        return Stored(len(data), {"md5": _md5(data)})

    def delete(self, op: Operation) -> None:
        if op.destination in self.faults.refuse:
            raise FileUploadError("refused by the fake remote")
        with self._lock:
            self.objects.pop(op.destination, None)
            self.options.pop(op.destination, None)
            self.events.append(("delete", op.destination))

    def finish(self, ops: list[Operation], *, ok: bool) -> list[str]:
        self.events.append(("finish", "ok" if ok else "failed"))
        return ["finished"]

    def cancel(self) -> None:
        self.cancelled = True

    def resume_options(self) -> list[str]:
        return []

    @staticmethod
    def _wait(seconds: float, stop: threading.Event) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if stop.wait(0.01):
                raise FileUploadError("interrupted")


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()

"""The Zenodo backend: the runner's view of one deposition.

Files are streamed with a PUT to the deposition's bucket and verified against
the MD5 Zenodo returns; a file already in the deposition with the same MD5 is
kept as it is, including the files a new version inherits. Nothing is
created (no deposition, no new version) until every check has passed, and a
dry run creates nothing at all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from uploader.backend import RemoteFile, Stored
from uploader.errors import InputError, NotPublished, UploaderError
from uploader.operations import Action, Operation
from uploader.plan import Dataset, LocalFile, UploadPlan
from uploader.zenodo.client import DepositionFile, ZenodoClient, ZenodoDeposition, ZenodoToken

PRODUCTION_API = "https://zenodo.org/api"
SANDBOX_API = "https://sandbox.zenodo.org/api"
MAX_FILES = 100
MAX_BYTES = 50 * 10**9  # per record and per file
UPLOAD_TYPES = ("dataset", "software", "publication", "poster", "presentation", "image", "video", "lesson",
                "physicalobject", "other")


@dataclass(frozen=True)
class ZenodoSettings:
    api_url: str
    token: ZenodoToken
    deposition_id: int | None
    metadata: dict[str, Any]  # only the fields the user passed
    publish: bool = False
    n_jobs: int = 4


class ZenodoBackend:
    """Publishes an UploadPlan into one Zenodo deposition (see backend.Backend)."""

    restart_empties_remote = True  # --restart deletes every file of the target draft first
    catalogs_go_live = False  # nothing in a draft is public before it is published

    def __init__(self, settings: ZenodoSettings) -> None:
        self.settings = settings
        self.client = ZenodoClient(settings.api_url, settings.token, pool_size=settings.n_jobs + 2)
        self.target: ZenodoDeposition | None = None  # the draft that receives the files
        self.record: ZenodoDeposition | None = None  # a published record that needs a new version
        self.published: ZenodoDeposition | None = None
        self._remote: dict[str, DepositionFile] = {}

    # -- what is there --------------------------------------------------------------------

    def destination(self, dataset: Dataset, name: str) -> str:
        return name  # a record is flat: no folders

    def digests_to_send(self, file: LocalFile) -> tuple[str, ...]:
        return ()  # the MD5 is computed while the file streams

    def check_access(self, plan: UploadPlan, *, dry_run: bool) -> None:
        _refuse_folders(plan)
        if self.settings.deposition_id is None:
            self.client.check_token()
        else:
            self._find_target(self.settings.deposition_id)

    def remote_files(self, dataset: Dataset) -> dict[str, RemoteFile]:
        if self.target is not None:  # the draft that will be published, as it is now
            self._remote = {f.name: f for f in self.client.files(self.target)}
        return {name: RemoteFile(name, f.size, {"md5": f.md5}, handle=f.id) for name, f in self._remote.items()}

    def digests_on_request(self, remote: RemoteFile) -> dict[str, str]:
        return {}  # the listing's MD5 is all Zenodo keeps

    def read(self, remote: RemoteFile) -> bytes:
        raise NotImplementedError("a Zenodo draft's catalog is never live: nothing needs reading")

    def check_plan(self, ops: list[Operation]) -> None:
        """Zenodo's limits, counting the files already there that stay, before anything is created."""
        planned = {op.destination: op.size for op in ops if op.file is not None}
        deleted = {op.destination for op in ops if op.action is Action.DELETE}
        staying = {name: f.size for name, f in self._remote.items() if name not in deleted and name not in planned}
        final = staying | planned
        problems = [f"'{name}' is {size:,d} bytes; Zenodo takes at most {MAX_BYTES:,d} per file"
                    for name, size in planned.items() if size > MAX_BYTES]
        if len(final) > MAX_FILES:
            problems.append(f"the record would hold {len(final)} files ({len(staying)} already there); Zenodo allows"
                            f" {MAX_FILES}: zip small files together, or use --restart to drop old ones")
        if sum(final.values()) > MAX_BYTES:
            problems.append(f"the record would hold {sum(final.values()):,d} bytes; Zenodo allows {MAX_BYTES:,d}"
                            " (ask Zenodo for more, or split the dataset)")
        if problems:
            raise InputError(problems)

    # -- writing --------------------------------------------------------------------------

    def begin(self, ops: list[Operation]) -> bool:
        has_work = any(op.action is not Action.SKIP for op in ops)
        if self.record is not None and not has_work and not self.settings.metadata:
            return False  # the published record already holds these files: no new version for nothing
        if self.target is None and self.record is not None:
            self.target = self.client.new_version(self.record)
        elif self.target is None:
            self.target = self.client.create(self.settings.metadata)
            return False
        if self.settings.metadata:
            self.target = self.client.update_metadata(self.target, self.settings.metadata)
        return False

    def send(self, op: Operation, digests: Mapping[str, str], progress: Callable[[int], None],
             stop: threading.Event) -> Stored:
        assert self.target is not None and op.file is not None
        answer, sent_md5 = self.client.put_file(self.target, op.file, progress, stop)
        stored_md5 = str(answer.get("checksum", "")).removeprefix("md5:")
        return Stored(int(answer.get("size", op.file.size)), {"md5": stored_md5}, sent_digests={"md5": sent_md5})

    def delete(self, op: Operation) -> None:
        assert self.target is not None
        self.client.delete_file(self.target, op.destination)

    def finish(self, ops: list[Operation], *, ok: bool) -> list[str]:
        if self.target is None:
            record = self.record
            return [f"the published record {record.links.get('html', record.id)} already holds these files;"
                    " no new version was opened"] if record else []
        if self.settings.publish and ok:
            return self._publish()
        lines = [f"draft: {self.target.links.get('html')} (review it there, then publish)"]
        if self.settings.publish:
            lines.append("not published: some files failed")
        return lines

    def cancel(self) -> None:
        """In-flight PUTs stop at their next read (the stop event); nothing else to undo."""

    # -- helpers --------------------------------------------------------------------------

    def _find_target(self, deposition_id: int) -> None:
        """The draft to fill: the deposition itself, its concept's open draft, or (later) a new version."""
        found = self.client.deposition(deposition_id)
        if not found.submitted:
            self.target = found
        else:
            drafts = [i for i in self.client.unpublished_versions(found.conceptrecid) if i != found.id]
            if drafts:
                self.target = self.client.deposition(drafts[0])
            else:
                self.record = found
        self._remote = dict((self.target or found).files)

    def _publish(self) -> list[str]:
        assert self.target is not None
        try:
            self.published = self.client.publish(self.target)
        except UploaderError as refused:
            raise NotPublished(f"every file is in the draft {self.target.links.get('html')}, but {refused};"
                               " add what is missing (--title, --creators, --description) and re-run with"
                               " --publish, or publish it on the web page") from None
        links = self.published.links
        return [f"published: {links.get('record_html') or links.get('latest_html') or links.get('html')}",
                f"DOI: {self.published.doi} ({links.get('doi', '')})"]


def _refuse_folders(plan: UploadPlan) -> None:
    problems = [f"'{f.name}': Zenodo has no folders; upload method 'catalog' or 'all' needs plain file names"
                for d in plan.datasets for f in d.all_files if "/" in f.name]
    if problems:
        raise InputError(problems)

"""The Zenodo backend: the runner's view of one deposition.

Which draft receives the files:
- `--zenodo-id` of a draft: that draft. Of a published record: the concept's
  open draft if there is one; else, at the first write, a new version (when
  a file changes: new DOI) or an edit (when only metadata changes: same DOI).
  A new version starts from the LATEST version's files, whatever version's id
  was given, so the runner decides against the latest version's files (a dry
  run predicts from them) and again against the new draft once it is open.
- no id: a deposition provably this dataset's (identity.py), else a new
  deposition, whose id is printed at once.

The record ends with exactly the planned files (upload methods catalog and
all): the backend reports every file the draft holds, with where it came from
("in version 1"), and the engine's decisions remove those the plan does not
name. Files are streamed with a PUT to the deposition's bucket and verified
against the MD5 Zenodo returns; before publishing, one listing must show
exactly the planned names with the local MD5s. Nothing is created or opened
until every check has passed, and a dry run opens nothing at all.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from uploader.engine.backend import SendsInThreads
from uploader.engine.operations import Action, Operation, RemoteFile, Stored
from uploader.errors import FileUploadError, InputError, NotPublished, UploaderError
from uploader.local.plan import Dataset, LocalFile, UploadPlan
from uploader.zenodo import drafts, identity, metadata, outcome
from uploader.zenodo.client import ZenodoClient
from uploader.zenodo.editing import MetadataEditor
from uploader.zenodo.record_outcome import (
    RecordOutcome,
    community_states,
    reserved_doi,
    summary_of,
    wanted_communities,
    without_pending_communities,
)
from uploader.zenodo.records import DepositionFile, ZenodoDeposition
from uploader.zenodo.resume import ResumeRecords
from uploader.zenodo.settings import SANDBOX_API, ZenodoSettings

log = logging.getLogger("uploader.zenodo")


class ZenodoBackend(SendsInThreads):
    """Publishes an UploadPlan into one Zenodo deposition (see backend.Backend)."""

    restart_empties_remote = True  # --restart deletes every file of the target draft first
    catalogs_go_live = False  # nothing in a draft is public before it is published

    # What the decisions need of the options (see backend.Backend): the run never stalls on a count of seconds
    # (Zenodo's timeouts and retries are its client's), and has no object options nor --delete.
    deletes_unnamed = False
    wanted_options: Mapping[str, str] = {}
    stall_seconds = None
    waiting_for = "the remote"

    def __init__(self, settings: ZenodoSettings, n_jobs: int = 4) -> None:
        self.settings = settings
        self.holds_only_the_plan = settings.files.method != "files"  # files: adds, the others stay
        self.send_threads = n_jobs
        self.client = ZenodoClient(settings.api_url, settings.token, pool_size=n_jobs + 2,
                                   timing=settings.timing)
        self.target: ZenodoDeposition | None = None  # the draft (or open edit) that receives the changes
        self.record: ZenodoDeposition | None = None  # the latest published version, while no draft is open
        self.editor = MetadataEditor(self.client, {key: value for key, value in settings.metadata.items()
                                                   if key not in settings.new_only})
        self._remote: dict[str, DepositionFile] = {}  # the target's (or record's) files, as last listed
        self._origin = ""  # where the files there came from, e.g. "in version 1"
        self._decided_against: set[str] = set()
        self._records = ResumeRecords(settings.cache_dir)
        self._resume_key = ""
        self._published: ZenodoDeposition | None = None
        self._communities: dict[str, dict[str, str]] = {}

    @property
    def overwrite(self) -> bool:
        return self.settings.overwrite

    # -- what is there --------------------------------------------------------------------

    def destination(self, dataset: Dataset, name: str) -> str:
        return name  # a record is flat: no folders

    def digests_to_send(self, file: LocalFile) -> tuple[str, ...]:
        return ()  # the MD5 is computed while the file streams

    def digests_while_sending(self, file: LocalFile) -> tuple[str, ...]:
        return ()

    def check_access(self, plan: UploadPlan, *, dry_run: bool) -> None:
        _refuse_folders_and_empty_files(plan)
        if self.settings.deposition_id is not None:
            found: ZenodoDeposition | None = self.client.deposition(self.settings.deposition_id)
        else:
            self._resume_key = identity.resume_key(self.settings.api_url, plan.datasets[0].in_dir)
            title = str(self.settings.metadata.get("title", ""))
            found = identity.made_earlier(self.client, self._records, self._resume_key, plan, title)
        if found is not None:
            self._aim_at(found)

    def remote_files(self, dataset: Dataset) -> dict[str, RemoteFile]:
        if self.target is not None:  # the draft that will be published, as it is now
            self._remote = {f.name: f for f in self.client.files(self.target)}
        return {name: RemoteFile(name, f.size, {"md5": f.md5}, handle=f.id, origin=self._origin)
                for name, f in self._remote.items()}

    def digests_on_request(self, remote: RemoteFile) -> dict[str, str]:
        return {}  # the listing's MD5 is all Zenodo keeps

    def stored_options(self, remote: RemoteFile, wanted: Mapping[str, str]) -> dict[str, str]:
        raise NotImplementedError("upload_zenodo has no object options: nothing is compared")

    def published_headers(self, file: LocalFile) -> dict[str, str]:
        return {}  # Zenodo serves its files with headers of its own

    def read(self, remote: RemoteFile) -> bytes:
        raise NotImplementedError("a Zenodo draft's catalog is never live: nothing needs reading")

    def now_at(self, name: str) -> RemoteFile | None:
        raise NotImplementedError("a Zenodo draft's catalog is never live: an update cut short needs no asking")

    def check_plan(self, ops: list[Operation]) -> None:
        """Zenodo's limits, counting the files already there that stay, before anything is created."""
        self._decided_against = set(self._remote)
        problems = outcome.limit_problems(self._remote, ops, self.settings.max_record_bytes)
        changes_files = any(op.action is not Action.SKIP for op in ops)
        if self._edit_open() and changes_files:
            problems.append(_edit_holds_files_back(self.target))
        if problems:
            raise InputError(problems)
        where = self.target or self.record
        if where is not None:
            self.editor.check(where, new_version=self.target is None and changes_files)

    # -- writing --------------------------------------------------------------------------

    def begin(self, ops: list[Operation]) -> bool:
        if self.target is None and self.record is None:
            self._create()
            return False
        if self.target is None:
            assert self.record is not None
            record = self.record
            if all(op.action is Action.SKIP for op in ops):
                wanted = without_pending_communities(self.client, record, self.editor.wanted)
                if not metadata.changes(record.metadata, wanted):
                    return False  # the record already holds these files and this metadata: touch nothing
                self._edit(record)  # metadata alone: same DOI
                return False
            else:
                self.target = self.client.new_version(record, lambda: drafts.open_draft(self.client, record,
                                                                                        wait=True))
                _tell_reserved_doi(f"the new version draft {self.target.id}", self.target)
                self.target = self.editor.update(self.target)
                return True  # the new draft holds the latest version's files: decide against those
        self.target = self.editor.update(self.target)
        return False

    def send(self, op: Operation, digests: Mapping[str, str], progress: Callable[[int], None],
             stop: threading.Event) -> Stored:
        assert self.target is not None and op.file is not None
        answer, sent_md5 = self.client.put_file(self.target, op.file, progress, stop)
        return _stored(answer, op.destination, op.file.size, sent_md5)

    def delete(self, op: Operation) -> None:
        assert self.target is not None and op.remote is not None
        self.client.delete_file(self.target, op.remote.handle, op.destination)

    def finish(self, ops: list[Operation], *, ok: bool) -> list[str]:
        if self.target is None:
            record = self.record
            return [f"the published record {record.page} already holds these files and this metadata; nothing was"
                    " changed (no new version, no edit)"] if record else []
        lines = outcome.removal_lines(ops)
        if ok and any(op.action is not Action.SKIP for op in ops):
            outcome.check_holds_the_plan(self.client, self.target, ops, self._decided_against)
        if self.settings.publish and ok:
            return lines + self._publish()
        lines.append(outcome.draft_line(self.target))
        if self.settings.publish:
            lines.append("not published: some files failed")
        return lines

    def cancel(self) -> None:
        """In-flight PUTs stop at their next read (the stop event), waits at once."""
        self.client.stop.set()

    def resume_options(self) -> list[str]:
        """A deposition this run found or made without --zenodo-id: re-runs name it."""
        if self.settings.deposition_id is not None:
            return []
        found = self.target or self.record
        return ["--zenodo-id", str(found.id)] if found else []

    def record_summary(self, *, dry_run: bool) -> RecordOutcome:
        """The record's license, reserved DOI and communities (and, in a dry run, the metadata to send)."""
        held = self._published or self.target or self.record
        wanted = self.editor.wanted if held else self.settings.metadata  # a new deposition's defaults, or the change
        return summary_of(wanted, held, self._published, self._communities, dry_run=dry_run)

    # -- which deposition ------------------------------------------------------------------

    def _aim_at(self, found: ZenodoDeposition) -> None:
        """Set the draft to fill, or the published record to version or edit, from the deposition found."""
        if not found.submitted or found.state == "inprogress":
            self.target = found
        else:
            latest = self.client.latest_version(found)
            if latest.state == "inprogress":
                self.target = latest
            else:
                self.target = drafts.open_draft(self.client, latest, wait=False)
                self.record = None if self.target else latest
        self._remote = dict((self.target or self.record or found).files)
        self._origin = identity.origin_of(self.client, self.target or self.record or found)

    def _edit(self, record: ZenodoDeposition) -> None:
        """Open an edit of the record's metadata and change it; an edit that failed is closed again."""
        self.target = self.client.edit(record)
        try:
            self.target = self.editor.update(self.target)
        except UploaderError:
            with contextlib.suppress(UploaderError):  # the first error is the one to tell
                self.client.discard_edit(self.target)
            self.target = None
            raise

    def _edit_open(self) -> bool:
        return self.target is not None and self.target.submitted

    def _create(self) -> None:
        self.target = _created(self.client, self.settings.metadata)
        title = str(self.settings.metadata.get("title", ""))
        self._records.remember(self._resume_key, self.target.id, title=title, api_url=self.settings.api_url)

    # -- finishing ------------------------------------------------------------------------

    def _publish(self) -> list[str]:
        assert self.target is not None
        self._published = published = _published(self.client, self.target)
        self._communities = community_states(self.client, published, wanted_communities(self.settings.metadata))
        return outcome.published_lines(published, self.target)


def _edit_holds_files_back(record: ZenodoDeposition | None) -> str:
    assert record is not None
    return (f"record {record.id} has an unpublished metadata edit open, and files can only change in a new version:"
            f" publish or discard the edit on {record.page}, then re-run")


def _stored(answer: dict[str, Any], name: str, size: int, sent_md5: str) -> Stored:
    """What Zenodo says it stored for a file sent as `name`: under that name, or the send failed."""
    stored_as = str(answer.get("key", name))
    if stored_as != name:
        raise FileUploadError(f"Zenodo stored it as '{stored_as}', not '{name}'")
    stored_md5 = str(answer.get("checksum", "")).removeprefix("md5:")
    return Stored(int(answer.get("size", size)), {"md5": stored_md5}, sent_digests={"md5": sent_md5})


def _created(client: ZenodoClient, metadata: dict[str, Any]) -> ZenodoDeposition:
    """A new deposition, told with its id (for a resume) and its reserved DOI; a lost answer is looked for, never
    sent twice."""
    sent_at = datetime.now(timezone.utc)
    title = str(metadata.get("title", ""))
    made = client.create(metadata, lambda: drafts.made_by_a_lost_create(client, title, sent_at, metadata))
    log.warning(f"created deposition {made.id} ({made.page}); if this run stops, resume with --zenodo-id {made.id}")
    _tell_reserved_doi(f"deposition {made.id}", made)
    return made


def _published(client: ZenodoClient, draft: ZenodoDeposition) -> ZenodoDeposition:
    """The draft published; Zenodo's refusal told with the way on (this draft, named: no second one made)."""
    try:
        return client.publish(draft)
    except UploaderError as refused:
        raise NotPublished(f"every file is in the draft {draft.page}, but {refused}; correct what Zenodo"
                           " names (--title, --creators, --description, --metadata FILE ...) and re-run with"
                           f" --publish --zenodo-id {draft.id} (this draft is published, no second one made),"
                           " or publish it on the web page") from None


def is_sandbox(api_url: str) -> bool:
    """Whether the API is Zenodo's sandbox (its uploads are trials: no markers for cartloader's pipeline)."""
    return urlsplit(api_url).hostname == urlsplit(SANDBOX_API).hostname


def _tell_reserved_doi(what: str, draft: ZenodoDeposition) -> None:
    doi = reserved_doi(draft)
    if doi:
        log.warning(f"{what} will be published under the DOI {doi} (reserved now: cite it, or write it into"
                    " the catalog, before publishing)")


def without_empty_files(dataset: Dataset) -> tuple[Dataset, list[str]]:
    """The dataset without its 0-byte files (--upload-method all: Zenodo refuses them), and their names."""
    empty = [file.name for file in dataset.files if file.size == 0]
    kept = tuple(file for file in dataset.files if file.size > 0)
    return replace(dataset, files=kept), empty


def _refuse_folders_and_empty_files(plan: UploadPlan) -> None:
    files: list[LocalFile] = [f for d in plan.datasets for f in d.all_files]
    problems = [f"'{f.name}': Zenodo has no folders; upload method 'catalog' or 'all' needs plain file names"
                for f in files if "/" in f.name]
    problems += [f"'{f.name}' is empty (0 bytes): Zenodo refuses empty files, and the record would lack it; give it"
                 " content, or leave it out of the catalog / --files" for f in files if f.size == 0]
    if problems:
        raise InputError(problems)

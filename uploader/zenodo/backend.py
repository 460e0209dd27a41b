"""The Zenodo backend: the runner's view of one deposition.

Which draft receives the files:
- `--zenodo-id` of a draft: that draft. Of a published record: the concept's
  open draft if there is one; else, at the first write, a new version (when
  a file changes: new DOI) or an edit (when only metadata changes: same DOI).
  A new version starts from the LATEST version's files, whatever version's id
  was given, so the runner decides against the latest version's files (a dry
  run predicts from them) and again against the new draft once it is open.
- no id: the deposition an earlier run of the same command made (kept in the
  cache directory), else your one unpublished draft with the same title,
  else a new deposition, whose id is printed at once.

Files are streamed with a PUT to the deposition's bucket and verified against
the MD5 Zenodo returns; before publishing, one listing must show exactly the
planned names with the local MD5s. Nothing is created or opened until every
check has passed, and a dry run opens nothing at all.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from uploader.engine.backend import SendsInThreads
from uploader.engine.operations import Action, Operation, RemoteFile, Stored
from uploader.errors import FileUploadError, InputError, NotPublished, RemoteError, UploaderError, UsageError
from uploader.local.plan import Dataset, LocalFile, UploadPlan
from uploader.zenodo import drafts, metadata
from uploader.zenodo.client import ZenodoClient
from uploader.zenodo.records import DepositionFile, ZenodoDeposition
from uploader.zenodo.resume import ResumeRecords
from uploader.zenodo.settings import MAX_BYTES, ZenodoSettings

MAX_FILES = 100

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
        self.send_threads = n_jobs
        self.client = ZenodoClient(settings.api_url, settings.token, pool_size=n_jobs + 2,
                                   timing=settings.timing)
        self.target: ZenodoDeposition | None = None  # the draft (or open edit) that receives the changes
        self.record: ZenodoDeposition | None = None  # the latest published version, while no draft is open
        self._remote: dict[str, DepositionFile] = {}  # the target's (or record's) files, as last listed
        self._decided_against: dict[str, DepositionFile] = {}
        self._records = ResumeRecords(settings.cache_dir)
        self._resume_key = ""

    @property
    def overwrite(self) -> bool:
        return self.settings.overwrite

    # -- what is there --------------------------------------------------------------------

    def destination(self, dataset: Dataset, name: str) -> str:
        return name  # a record is flat: no folders

    def digests_to_send(self, file: LocalFile) -> tuple[str, ...]:
        return ()  # the MD5 is computed while the file streams

    def check_access(self, plan: UploadPlan, *, dry_run: bool) -> None:
        _refuse_folders_and_empty_files(plan)
        if self.settings.deposition_id is not None:
            found: ZenodoDeposition | None = self.client.deposition(self.settings.deposition_id)
        else:
            found = self._made_earlier(plan.datasets[0].in_dir)
        if found is not None:
            self._aim_at(found)

    def remote_files(self, dataset: Dataset) -> dict[str, RemoteFile]:
        if self.target is not None:  # the draft that will be published, as it is now
            self._remote = {f.name: f for f in self.client.files(self.target)}
        return {name: RemoteFile(name, f.size, {"md5": f.md5}, handle=f.id) for name, f in self._remote.items()}

    def digests_on_request(self, remote: RemoteFile) -> dict[str, str]:
        return {}  # the listing's MD5 is all Zenodo keeps

    def stored_options(self, remote: RemoteFile, wanted: Mapping[str, str]) -> dict[str, str]:
        raise NotImplementedError("upload_zenodo has no object options: nothing is compared")

    def read(self, remote: RemoteFile) -> bytes:
        raise NotImplementedError("a Zenodo draft's catalog is never live: nothing needs reading")

    def now_at(self, name: str) -> RemoteFile | None:
        raise NotImplementedError("a Zenodo draft's catalog is never live: an update cut short needs no asking")

    def check_plan(self, ops: list[Operation]) -> None:
        """Zenodo's limits, counting the files already there that stay, before anything is created."""
        self._decided_against = dict(self._remote)
        planned = {op.destination: op.size for op in ops if op.file is not None}
        deleted = {op.destination for op in ops if op.action is Action.DELETE}
        staying = {name: f.size for name, f in self._remote.items() if name not in deleted and name not in planned}
        final = staying | planned
        limit = self.settings.max_record_bytes
        problems = [f"'{name}' is {size:,d} bytes; Zenodo takes at most {MAX_BYTES:,d} per file"
                    for name, size in planned.items() if size > MAX_BYTES]
        if len(final) > MAX_FILES:
            problems.append(f"the record would hold {len(final)} files ({len(staying)} already there); Zenodo allows"
                            f" {MAX_FILES}: zip small files together, or use --restart to drop old ones")
        if sum(final.values()) > limit:
            problems.append(f"the record would hold {sum(final.values()):,d} bytes; Zenodo allows {limit:,d} (ask"
                            " Zenodo for more and pass the new limit with --max-record-bytes, or split the dataset)")
        if self._edit_open() and any(op.action is not Action.SKIP for op in ops):
            assert self.target is not None
            problems.append(f"record {self.target.id} has an unpublished metadata edit open, and files can only"
                            f" change in a new version: publish or discard the edit on {self.target.page}, then"
                            " re-run")
        if problems:
            raise InputError(problems)

    # -- writing --------------------------------------------------------------------------

    def begin(self, ops: list[Operation]) -> bool:
        if self.target is None and self.record is None:
            self._create()
            return False
        if self.target is None:
            assert self.record is not None
            record = self.record
            if all(op.action is Action.SKIP for op in ops):
                if not metadata.changes(record.metadata, self.settings.metadata):
                    return False  # the record already holds these files and this metadata: touch nothing
                self.target = self.client.edit(record)  # metadata alone: same DOI
            else:
                self.target = self.client.new_version(record, lambda: drafts.open_draft(self.client, record,
                                                                                        wait=True))
                self._update_metadata()
                return True  # the new draft holds the latest version's files: decide against those
        self._update_metadata()
        return False

    def send(self, op: Operation, digests: Mapping[str, str], progress: Callable[[int], None],
             stop: threading.Event) -> Stored:
        assert self.target is not None and op.file is not None
        answer, sent_md5 = self.client.put_file(self.target, op.file, progress, stop)
        stored_as = str(answer.get("key", op.destination))
        if stored_as != op.destination:
            raise FileUploadError(f"Zenodo stored it as '{stored_as}', not '{op.destination}'")
        stored_md5 = str(answer.get("checksum", "")).removeprefix("md5:")
        return Stored(int(answer.get("size", op.file.size)), {"md5": stored_md5}, sent_digests={"md5": sent_md5})

    def delete(self, op: Operation) -> None:
        assert self.target is not None and op.remote is not None
        self.client.delete_file(self.target, op.remote.handle, op.destination)

    def finish(self, ops: list[Operation], *, ok: bool) -> list[str]:
        if self.target is None:
            record = self.record
            return [f"the published record {record.page} already holds these files and this metadata; nothing was"
                    " changed (no new version, no edit)"] if record else []
        if ok and any(op.action is not Action.SKIP for op in ops):
            self._check_draft_holds_the_plan(ops)
        if self.settings.publish and ok:
            return self._publish()
        lines = [self._draft_line()]
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

    # -- which deposition ------------------------------------------------------------------

    def _made_earlier(self, in_dir: Path) -> ZenodoDeposition | None:
        """The deposition an earlier run of this command made: remembered, else your one draft with this title."""
        title = str(self.settings.metadata.get("title", ""))
        self._resume_key = ResumeRecords.key(self.settings.api_url, in_dir, title)
        remembered = self._records.lookup(self._resume_key)
        if remembered is not None:
            try:
                found = self.client.deposition(remembered)
            except UsageError:  # deleted since: start afresh
                self._records.forget(self._resume_key)
            else:
                log.warning(f"going on with deposition {found.id} ({found.page}), made by an earlier run of this"
                            " command (pass --zenodo-id to choose another)")
                return found
        same_title = self.client.drafts_titled(title)
        if len(same_title) > 1:
            ids = ", ".join(str(d.id) for d in same_title)
            raise UsageError(f"you have {len(same_title)} unpublished depositions titled '{title}' ({ids}): pass the"
                             " one to upload into with --zenodo-id (and delete the others on the web page)")
        if not same_title:
            return None
        found = self.client.deposition(same_title[0].id)
        log.warning(f"going on with your unpublished deposition {found.id} ({found.page}) titled '{title}', made"
                    f" {found.created[:16].replace('T', ' ')} by an earlier run (pass --zenodo-id to choose another)")
        return found

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

    def _edit_open(self) -> bool:
        return self.target is not None and self.target.submitted

    def _create(self) -> None:
        sent_at = datetime.now(timezone.utc)
        title = str(self.settings.metadata.get("title", ""))
        self.target = self.client.create(self.settings.metadata,
                                         lambda: drafts.made_by_a_lost_create(self.client, title, sent_at))
        self._records.remember(self._resume_key, self.target.id, title=title, api_url=self.settings.api_url)
        log.warning(f"created deposition {self.target.id} ({self.target.page}); if this run stops, resume with"
                    f" --zenodo-id {self.target.id}")

    def _update_metadata(self) -> None:
        """PUT the options' changes merged into the whole metadata, and check that Zenodo kept all of it."""
        assert self.target is not None
        current = self.target.metadata
        changed = metadata.changes(current, self.settings.metadata)
        if not changed:
            return
        sent = metadata.merged(current, changed)
        answer = self.client.update_metadata(self.target, sent)
        lost = metadata.not_kept(sent, answer.metadata, changed)
        if lost:
            raise RemoteError(f"Zenodo did not keep {', '.join(lost)} of the metadata of {answer.page} after the"
                              " update; nothing was uploaded or published: check them on that page, then re-run")
        self.target = replace(answer, links=answer.links or self.target.links)

    # -- finishing ------------------------------------------------------------------------

    def _check_draft_holds_the_plan(self, ops: list[Operation]) -> None:
        """One listing: exactly the planned names (plus the files that stay), each with the local MD5."""
        assert self.target is not None
        listing = {f.name: f for f in self.client.files(self.target)}
        planned = {op.destination: op for op in ops if op.file is not None}
        deleted = {op.destination for op in ops if op.action is Action.DELETE}
        staying = set(self._decided_against) - deleted - set(planned)
        problems = [f"'{name}' is missing" for name in planned if name not in listing]
        problems += [f"'{name}' holds other bytes" for name, op in planned.items()
                     if name in listing and op.digests.get("md5") not in (None, listing[name].md5)]
        problems += [f"'{name}' should not be there" for name in sorted(set(listing) - set(planned) - staying)]
        if problems:
            raise NotPublished(f"the draft {self.target.page} does not hold exactly the planned files"
                               f" ({'; '.join(problems[:5])}); nothing was published: re-run to repair it")

    def _publish(self) -> list[str]:
        assert self.target is not None
        target = self.target
        try:
            published = self.client.publish(target)
        except UploaderError as refused:
            raise NotPublished(f"every file is in the draft {target.page}, but {refused}; add what is missing"
                               " (--title, --creators, --description) and re-run with --publish, or publish it on"
                               " the web page") from None
        page = published.links.get("record_html") or published.links.get("latest_html") or published.page
        doi = f"DOI: {published.doi} ({published.links.get('doi', '')})"
        if target.submitted:
            return [f"published the metadata edit of {page}: same DOI {published.doi}, no file changed", doi]
        if target.conceptdoi:
            return [f"published a new version: {page} (a new DOI; the earlier versions keep theirs)", doi]
        return [f"published: {page}", doi]

    def _draft_line(self) -> str:
        assert self.target is not None
        if self.target.submitted:
            return (f"metadata edit open: {self.target.page} (review it there, then publish; the DOI stays"
                    f" {self.target.doi})")
        if self.target.conceptdoi:
            return f"new version draft: {self.target.page} (review it there, then publish; it gets a new DOI)"
        return f"draft: {self.target.page} (review it there, then publish)"


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

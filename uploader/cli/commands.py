"""The upload commands: build the plan, choose the backend, run, report.

Each command returns an exit status; UploaderErrors raised anywhere below are
turned into one-line messages by the entrypoint (cli.main).
"""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from uploader.engine.backend import Backend
from uploader.engine.operations import Status
from uploader.engine.progress import progress_factory
from uploader.engine.readiness import ReaderCheck, Readiness
from uploader.engine.report import failure_lines, print_plan, report_document, share_line, summary, write_report
from uploader.engine.runner import RunResult, run
from uploader.engine.settings import RunSettings
from uploader.engine.settle import UNKNOWN
from uploader.errors import ExitStatus
from uploader.local.catalog import Group, load_catalog
from uploader.local.hash_cache import HashCache
from uploader.local.markers import marker_paths, write_markers
from uploader.local.plan import (
    CATALOG_NAME,
    Dataset,
    UploadPlan,
    plan_collection,
    plan_from_catalog,
    plan_from_names,
    regular_files_in,
)
from uploader.local.shards import take_share

if TYPE_CHECKING:
    from uploader.s3.settings import S3Settings
    from uploader.zenodo.settings import FilesToUpload, ZenodoSettings


def upload_aws(run: RunSettings, settings: S3Settings, resume_command: str) -> ExitStatus:
    """Publish one dataset, or a collection, under an S3 prefix."""
    from uploader.s3.backend import S3Backend
    from uploader.s3.viewer import ViewerCheck

    plan = aws_plan(run, settings.in_list, settings.groups)
    if settings.shard is not None:
        plan = take_share(plan, settings.shard)
    backend = S3Backend(settings, run.n_jobs)
    viewer = ViewerCheck(backend.client, settings.s3_dir, settings.viewer, settings.profile,
                         outage_seconds=settings.stall_seconds)
    return execute(plan, backend, run, resume_command, settings.s3_dir.uri(), notes=settings.notes,
                   markers="aws", readers=viewer)


def upload_zenodo(run: RunSettings, settings: ZenodoSettings, resume_command: str) -> ExitStatus:
    """Publish a dataset (its catalog's files, a whole directory, or named files) into a Zenodo deposition."""
    from uploader.zenodo.backend import ZenodoBackend, is_sandbox

    dataset = zenodo_dataset(run, settings.files)
    backend = ZenodoBackend(settings, run.n_jobs)
    where = f"{settings.api_url} deposition {settings.deposition_id or '(new)'}"
    notes = settings.notes
    # cartloader marks only its catalog method's uploads (its pipeline's), and so do we; never for the sandbox:
    # a trial there must not make the pipeline skip the real upload.
    catalog_method = settings.files.method == "catalog"
    markers = "zenodo" if catalog_method and not is_sandbox(settings.api_url) else ""
    if catalog_method and not markers and not run.no_markers:
        notes += ("no cartload.zenodo.done markers written: this is Zenodo's sandbox, and cartloader's pipeline"
                  " would read them as a finished upload to zenodo.org",)
    return execute(UploadPlan((dataset,)), backend, run, resume_command, where, notes=notes, markers=markers,
                   record=backend.record_summary)


class RecordOutcome(Protocol):
    def lines(self) -> list[str]: ...
    def report(self) -> dict[str, Any]: ...


class RecordSummary(Protocol):
    def __call__(self, *, dry_run: bool) -> RecordOutcome: ...


def zenodo_dataset(run: RunSettings, files: FilesToUpload) -> Dataset:
    """The files upload_zenodo sends (and verify_zenodo checks): the catalog's, every regular file of --in-dir
    (all), or those named.

    A catalog.yaml among them must be valid whatever the method: it is refused before anything is sent.
    """
    from uploader.zenodo.backend import without_empty_files

    method = files.method
    if method == "catalog":
        return plan_from_catalog(run.in_dir, run.catalog_path)
    names = regular_files_in(run.in_dir) if method == "all" else list(files.names)
    dataset = plan_from_names(run.in_dir, names, f"--in-dir {run.in_dir}" if method == "all" else "--files")
    for file in dataset.files:
        if file.name == CATALOG_NAME:
            load_catalog(file.path)
    if method == "all":
        dataset, empty = without_empty_files(dataset)
        folders = sorted(entry.name for entry in run.in_dir.iterdir() if entry.is_dir())
        if empty and not run.quiet:
            say(f"note: leaving out {len(empty)} empty file(s), which Zenodo refuses: {_few(empty)}")
        if folders and not run.quiet:
            say(f"note: leaving out {len(folders)} sub-directory(ies): Zenodo has no folders, and"
                f" --upload-method all sends the files directly in --in-dir: {_few(folders)}")
    return dataset


def _few(names: list[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def aws_plan(run: RunSettings, in_list: Path | None, groups: frozenset[Group]) -> UploadPlan:
    """The datasets upload_aws publishes (and verify_aws checks): one catalog's, or a collection's."""
    if in_list:
        return plan_collection(run.in_dir, in_list, groups)
    return UploadPlan((plan_from_catalog(run.in_dir, run.catalog_path, groups),))


def execute(plan: UploadPlan, backend: Backend, common: RunSettings, resume_command: str, destination: str, *,
            notes: tuple[str, ...] = (), markers: str = "", readers: ReaderCheck | None = None,
            record: RecordSummary | None = None) -> ExitStatus:
    """Run a plan against a backend and tell the user what happened; the shared tail of every command.

    `notes` are told with the summary; `markers` names cartloader's marker files to write after
    a success ('aws', 'zenodo', or '' for none); `readers` checks, after a successful run, that the
    readers of what was published can use it (e.g. the web viewer): its verdict is reported apart;
    `record` tells about the record itself (a Zenodo record's license, DOI, communities): its lines are told
    with the summary and its facts are the report's `record`.
    """
    warnings = [warning for dataset in plan.datasets for warning in dataset.warnings]
    if common.quiet:  # only errors: the backends' notes and warnings are in the report
        logging.getLogger("uploader").setLevel(logging.ERROR)
    else:
        for warning in warnings:
            say(f"warning: {warning}")
    result = run_with_hash_cache(plan, backend, common)
    if more := backend.resume_options():  # e.g. the id of a deposition the run made
        resume_command = f"{resume_command} {shlex.join(more)}"
    result.notes[:0] = [f"note: {note}" for note in notes]
    outcome = record(dry_run=result.dry_run) if record else None
    if outcome is not None:
        result.notes += outcome.lines()
    if plan.share is not None and not result.dry_run:  # a dry run prints it atop the plan
        result.notes.insert(0, share_line(plan.share))
    if markers and result.ok and not result.dry_run and not common.no_markers:
        mark_done(plan, result, markers)
    readiness = check_readers(readers, result)
    if common.report:
        write_report(common.report, report_document(result, resume_command, destination, warnings, readiness,
                                                    share=plan.share, record=outcome.report() if outcome else None))
    if result.dry_run:
        print_plan(result.ops, share=plan.share)
        if not common.quiet:
            for line in result.notes:
                say(line)
    else:
        tell_outcome(result, common.quiet, resume_command, readiness)
    return result.final_status(readiness)


def run_with_hash_cache(plan: UploadPlan, backend: Backend, common: RunSettings) -> RunResult:
    """The run, with the user's hash cache open around it (and its notice told)."""
    cache = HashCache.default()
    if cache.notice and not common.quiet:
        say(f"note: {cache.notice}")
    cache.preload(file for dataset in plan.datasets for file in (*dataset.all_files, *dataset.checked_only))
    try:
        return run(plan, backend, common, cache, progress_factory(common.quiet, common.no_progress))
    finally:
        cache.close()


def mark_done(plan: UploadPlan, result: RunResult, markers: str) -> None:
    """cartloader's marker files of each published dataset, where its pipeline looks for them."""
    published = frozenset(op.dataset.subdir for op in result.ops if op.is_catalog and op.file is not None
                          and op.status in (Status.UPLOADED, Status.SKIPPED))
    notice = write_markers(marker_paths(plan, markers, published))
    if notice:
        result.notes.append(notice)


def check_readers(readers: ReaderCheck | None, result: RunResult) -> Readiness | None:
    """The readers' verdict on a successful upload (not after a dry run, a failure or an interruption)."""
    if readers is None or result.dry_run or not result.ok:
        return None
    try:
        return readers(result.ops)
    except KeyboardInterrupt:  # the upload is complete: only the check was cut short
        return Readiness(None, ["interrupted during the check of what readers can use; the upload is complete"])


def tell_outcome(result: RunResult, quiet: bool, resume_command: str, readiness: Readiness | None = None) -> None:
    """Failures, notes, the summary line, what readers can use, and what to do next, on stderr."""
    for line in failure_lines(result):
        say(line)
    waiting = [op for op in result.ops if op.status is Status.WAITING]
    withdrawn = set(result.withdrawn)
    for op in waiting[:WAITING_SHOWN]:
        offline = " (this run withdrew the live one first: offline until then)" if op.destination in withdrawn else ""
        say(f"waiting: {op.destination}: {op.error}{offline}")
    if len(waiting) > WAITING_SHOWN:
        say(f"waiting: {len(waiting) - WAITING_SHOWN} more catalog(s) likewise (--report FILE lists them)")
    if not quiet:
        for line in result.notes:
            say(line)
        for line in updated_lines(result):
            say(line)
        say(summary(result))
    tell_catalogs_in_doubt(result)
    if result.interrupted:
        say(f"interrupted: finished files are kept; resume with: {resume_command}")
    elif result.stalled:
        say(f"stopped: {result.stalled}; finished files are kept; resume with: {resume_command}")
    elif result.not_published:
        say(f"error: {result.not_published}")
    elif not result.ok:
        published = "the catalog is published" if result.catalogs_published else "the catalog was not published"
        say(f"some files failed and {published}; resume with: {resume_command}")
    elif readiness is not None and not (quiet and not readiness.required):
        # With --quiet, only an enforced check's failure is an error (told with its fixes); the report has them all.
        for line in readiness.fixes if quiet else readiness.lines + readiness.fixes:
            say(line)
        if readiness.ready is False:  # the last line: the data is safe, but not yet usable
            say(f"uploaded, but {readiness.problem}")


def tell_catalogs_in_doubt(result: RunResult) -> None:
    """What the store holds for each catalog whose update was cut short, and each dataset left offline."""
    said = {op.destination: op.store_says for op in result.ops if op.is_catalog and op.store_says}
    for catalog, word in said.items():
        say(f"catalog: {catalog}: {word} (the store's answer: this run's update of it was cut short)")
    for catalog in result.offline:
        if said.get(catalog, "").startswith(UNKNOWN):
            say(f"offline?: {catalog} was withdrawn before files it names were replaced, and the store did not say"
                " whether the new one is there: the dataset may not open until a re-run completes")
        else:
            say(f"offline: {catalog} was withdrawn before files it names were replaced, and the new catalog is not"
                " published: the dataset cannot be opened until a re-run completes")


def updated_lines(result: RunResult) -> list[str]:
    """What was set in place on objects already there (e.g. a Content-Encoding another tool stored, removed)."""
    updated = [op for op in result.ops if op.status is Status.UPDATED]
    lines = [f"updated in place: {op.destination}: {op.reason.removeprefix('update in place: ')}"
             for op in updated[:UPDATED_SHOWN]]
    if len(updated) > UPDATED_SHOWN:
        lines.append(f"updated in place: {len(updated) - UPDATED_SHOWN} more likewise (--report FILE lists them)")
    return lines


UPDATED_SHOWN = 10
WAITING_SHOWN = 10  # a worker that finishes first may leave hundreds of a collection's catalogs to the others


def say(message: str) -> None:
    """A message for the user, on stderr (stdout is for data)."""
    print(message, file=sys.stderr, flush=True)

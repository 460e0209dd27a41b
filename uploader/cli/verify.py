"""The verify commands: is what is published exactly the local dataset? Read-only, for a lab's CI.

Each builds the plan upload_* would make, audits it against the remote
(engine/audit.py), says each difference on one line, and exits 0 (the same)
or 1 (something differs); verify_aws then runs upload_aws's viewer check.
Nothing is written to the remote; local digests are read from (and added
to) the local hash cache, which only ever holds digests of local files.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from uploader import __version__
from uploader.cli.commands import aws_plan, say, zenodo_dataset
from uploader.engine.audit import AuditSettings, FileAudit, PublishedRemote, Verdict, audit
from uploader.engine.operations import Action, Operation, Status
from uploader.engine.readiness import Readiness
from uploader.engine.report import write_report
from uploader.engine.settings import RunSettings
from uploader.errors import ExitStatus
from uploader.local.hash_cache import HashCache
from uploader.local.plan import ALL_GROUPS, UploadPlan

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

    from uploader.s3.settings import S3ReadSettings, S3Settings
    from uploader.zenodo.settings import PublishedRecordSettings


def verify_aws(run: RunSettings, audited: AuditSettings, settings: S3Settings, reads: S3ReadSettings) -> ExitStatus:
    """Audit a dataset (or collection) under an S3 prefix, then check what the viewer can read."""
    from uploader.s3.access import check_bucket
    from uploader.s3.client import make_client
    from uploader.s3.reader import S3Reader

    plan = aws_plan(run, settings.in_list, ALL_GROUPS)
    client = make_client(settings, run.n_jobs, sign_requests=not reads.no_sign_request)
    with ThreadPoolExecutor(1, thread_name_prefix="bucket") as pool:
        # Some stores list a missing bucket as empty; anonymous requests may not look at the bucket itself.
        bucket = None if reads.no_sign_request else pool.submit(check_bucket, client, settings.s3_dir.bucket, settings)
        entries = run_audit(plan, S3Reader(client, settings.s3_dir, settings), run, deep=audited.deep)
        if bucket is not None:
            bucket.result()
    readiness = _viewer_readiness(settings, client, entries)
    return conclude(entries, run, "verify_aws", settings.s3_dir.uri(), readiness,
                    ["deep: every object was downloaded and hashed" if audited.deep else ""])


def verify_zenodo(run: RunSettings, audited: AuditSettings, settings: PublishedRecordSettings) -> ExitStatus:
    """Audit a published Zenodo record against the local files (its MD5s, or its bytes with --deep)."""
    from uploader.zenodo.published import PublishedRecord

    plan = UploadPlan((zenodo_dataset(run, settings.files),))
    record = PublishedRecord(settings.api_url, settings.record_id, settings.token, settings.timing, run.n_jobs)
    record.load(latest=settings.latest)
    entries = run_audit(plan, record, run, deep=audited.deep, deep_digest="md5")
    notes = [f"record: {record.page}" + (f" (DOI {record.doi})" if record.doi else "")]
    if newer := record.newer_version():
        notes.append(f"note: record {record.id} is not the latest version of its concept ({newer});"
                     " --latest verifies that one")
    return conclude(entries, run, "verify_zenodo", record.page, None, notes)


def run_audit(plan: UploadPlan, remote: PublishedRemote, common: RunSettings, *, deep: bool,
              deep_digest: str = "sha256") -> list[FileAudit]:
    """The audit, with the local hash cache open around it (local digests only: nothing remote is kept)."""
    cache = HashCache.default()
    if cache.notice and not common.quiet:
        say(f"note: {cache.notice}")
    cache.preload(file for dataset in plan.datasets for file in (*dataset.all_files, *dataset.checked_only))
    try:
        return audit(plan, remote, cache, deep=deep, workers=common.n_jobs, deep_digest=deep_digest)
    finally:
        cache.close()


def _viewer_readiness(settings: S3Settings, client: S3Client, entries: list[FileAudit]) -> Readiness | None:
    """upload_aws's viewer check, on every dataset whose catalog is on the store."""
    from uploader.s3.viewer import ViewerCheck

    if not settings.viewer.check:
        return None
    published = [Operation(Action.SKIP, entry.dataset, entry.file, entry.destination, entry.reason, is_catalog=True,
                           status=Status.SKIPPED)
                 for entry in entries if entry.is_catalog and entry.verdict is not Verdict.MISSING]
    return ViewerCheck(client, settings.s3_dir, settings.viewer, settings.profile)(published)


def conclude(entries: list[FileAudit], common: RunSettings, command: str, where: str,
             readiness: Readiness | None, notes: list[str]) -> ExitStatus:
    """Each difference on a line of its own, the summary, the report, and the exit status."""
    differing = [entry for entry in entries if entry.verdict is not Verdict.SAME]
    for entry in differing:
        say(difference_line(entry))
    if not common.quiet:
        for line in [note for note in notes if note] + (readiness.lines if readiness else []):
            say(line)
    for line in readiness.fixes if readiness else []:
        say(line)
    counts = Counter(entry.verdict.value for entry in entries)
    shown = ", ".join(f"{counts[v.value]} {v.value}" for v in Verdict if counts[v.value])
    if differing:
        say(f"differs: {where} is not the local dataset ({shown})")
    elif not common.quiet:
        say(f"verified: {where} holds exactly the local dataset ({shown or 'no files'})")
    if readiness is not None and readiness.ready is False:
        say(f"{'verified' if not differing else 'also'}, but {readiness.problem}")
    status = ExitStatus.FILES_FAILED if differing else ExitStatus.OK
    if status is ExitStatus.OK and readiness is not None and readiness.required and readiness.ready is False:
        status = ExitStatus.NOT_USABLE
    if common.report:
        write_report(common.report, _document(entries, command, where, status, readiness, counts))
    return status


def difference_line(entry: FileAudit) -> str:
    """One line: the verdict, the remote name, and why (the catalog named as the live catalog)."""
    what = f"{entry.destination} (the live catalog)" if entry.is_catalog else entry.destination
    return f"{entry.verdict.value}: {what}: {entry.reason}"


def _document(entries: list[FileAudit], command: str, where: str, status: ExitStatus, readiness: Readiness | None,
              counts: Counter[str]) -> dict[str, Any]:
    return {
        "tool": f"cartload-uploader {__version__}",
        "command": command,
        "destination": where,
        "ok": status is ExitStatus.OK,
        "exit_status": int(status),
        "same": all(entry.verdict is Verdict.SAME for entry in entries),
        "counts": {verdict.value: counts[verdict.value] for verdict in Verdict},
        "files": [entry.as_report() for entry in entries],
        "viewer_ready": readiness.ready if readiness else None,
        "viewer": readiness.report if readiness else None,
    }

"""The upload commands: build the plan, choose the backend, run, report.

Each command returns an exit status; UploaderErrors raised anywhere below are
turned into one-line messages by the entrypoint (cli.main).
"""

from __future__ import annotations

import shlex
import sys

from uploader.backend import Backend
from uploader.errors import ExitStatus
from uploader.hashing import HashCache
from uploader.plan import UploadPlan, plan_collection, plan_from_catalog, plan_from_names, regular_files_in
from uploader.progress import progress_factory
from uploader.report import failure_lines, print_plan, report_document, summary, write_report
from uploader.runner import RunOptions, RunResult, run
from uploader.settings import AwsSettings, CommonSettings, ZenodoCommandSettings


def upload_aws(settings: AwsSettings, resume_command: str) -> ExitStatus:
    """Publish one dataset, or a collection, under an S3 prefix."""
    from uploader.s3.backend import S3Backend
    from uploader.s3.client import S3Settings
    from uploader.s3.destination import S3Destination

    common = settings.common
    destination = S3Destination.parse(settings.s3_dir)
    if settings.in_list:
        plan = plan_collection(common.in_dir, settings.in_list, settings.groups)
    else:
        plan = UploadPlan((plan_from_catalog(common.in_dir, common.catalog_path, settings.groups),))
    if settings.aws_cli and not common.quiet:
        say(f"note: --aws {settings.aws_cli} is not needed: uploads go through boto3, no AWS CLI is used")
    backend = S3Backend(destination, S3Settings(settings.profile, settings.endpoint_url, common.n_jobs))
    return execute(plan, backend, common, RunOptions(common.n_jobs, common.dry_run, common.restart),
                   resume_command, destination.uri())


def upload_zenodo(settings: ZenodoCommandSettings, resume_command: str) -> ExitStatus:
    """Publish a dataset (its catalog's files, a whole directory, or named files) into a Zenodo deposition."""
    from uploader.hashing import default_cache_dir
    from uploader.zenodo.backend import ZenodoBackend, ZenodoSettings, without_empty_files
    from uploader.zenodo.client import ZenodoToken

    common = settings.common
    if settings.upload_method == "catalog":
        dataset = plan_from_catalog(common.in_dir, common.catalog_path)
    elif settings.upload_method == "all":
        dataset = plan_from_names(common.in_dir, regular_files_in(common.in_dir), f"--in-dir {common.in_dir}")
        dataset, empty = without_empty_files(dataset)
        if empty and not common.quiet:
            say(f"note: leaving out {len(empty)} empty file(s), which Zenodo refuses: {', '.join(empty[:5])}"
                + (", ..." if len(empty) > 5 else ""))
    else:
        dataset = plan_from_names(common.in_dir, settings.files, "--files")
    backend = ZenodoBackend(ZenodoSettings(
        api_url=settings.api_url, token=ZenodoToken(settings.token), deposition_id=settings.deposition_id,
        metadata=settings.metadata, publish=settings.publish, n_jobs=common.n_jobs,
        max_record_bytes=settings.max_record_bytes, timing=settings.timing, cache_dir=default_cache_dir(),
    ))
    options = RunOptions(common.n_jobs, common.dry_run, common.restart, overwrite=settings.overwrite)
    where = f"{settings.api_url} deposition {settings.deposition_id or '(new)'}"
    return execute(UploadPlan((dataset,)), backend, common, options, resume_command, where)


def execute(plan: UploadPlan, backend: Backend, common: CommonSettings, options: RunOptions, resume_command: str,
            destination: str) -> ExitStatus:
    """Run a plan against a backend and tell the user what happened; the shared tail of every command."""
    cache = HashCache.default()
    if cache.notice and not common.quiet:
        say(f"note: {cache.notice}")
    cache.preload(file for dataset in plan.datasets for file in dataset.all_files)
    try:
        result = run(plan, backend, options, cache, progress_factory(common.quiet, common.no_progress))
    finally:
        cache.close()
    if more := backend.resume_options():  # e.g. the id of a deposition the run made
        resume_command = f"{resume_command} {shlex.join(more)}"
    if common.report:
        write_report(common.report, report_document(result, resume_command, destination))
    if result.dry_run:
        print_plan(result.ops)
    else:
        tell_outcome(result, common.quiet, resume_command)
    return result.exit_status


def tell_outcome(result: RunResult, quiet: bool, resume_command: str) -> None:
    """Failures, notes, the summary line, and what to do next, on stderr."""
    for line in failure_lines(result):
        say(line)
    if not quiet:
        for line in result.notes:
            say(line)
        say(summary(result))
    if result.interrupted:
        say(f"interrupted: finished files are kept; resume with: {resume_command}")
    elif result.not_published:
        say(f"error: {result.not_published}")
    elif not result.ok:
        say(f"some files failed and the catalog was not published; resume with: {resume_command}")


def say(message: str) -> None:
    """A message for the user, on stderr (stdout is for data)."""
    print(message, file=sys.stderr, flush=True)

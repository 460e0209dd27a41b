"""The upload commands: build the plan, choose the backend, run, report.

Each command returns an exit status; UploaderErrors raised anywhere below are
turned into one-line messages by the entrypoint (cli.main).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from uploader.backend import Backend
from uploader.errors import ExitStatus, InputError, first_applicable
from uploader.hashing import HashCache
from uploader.plan import UploadPlan, plan_collection, plan_from_catalog, plan_from_names, regular_files_in
from uploader.progress import progress_factory
from uploader.readiness import ReaderCheck, Readiness
from uploader.report import failure_lines, print_plan, refusal_document, report_document, summary, write_report
from uploader.runner import RunOptions, RunResult, run
from uploader.settings import AwsSettings, CommonSettings, ZenodoCommandSettings


def upload_aws(settings: AwsSettings, resume_command: str) -> ExitStatus:
    """Publish one dataset, or a collection, under an S3 prefix."""
    with refusal_reported(settings.common, resume_command, settings.s3_dir):
        return _upload_aws(settings, resume_command)


def upload_zenodo(settings: ZenodoCommandSettings, resume_command: str) -> ExitStatus:
    """Publish a dataset (its catalog's files, a whole directory, or named files) into a Zenodo deposition."""
    with refusal_reported(settings.common, resume_command, settings.api_url):
        return _upload_zenodo(settings, resume_command)


@contextmanager
def refusal_reported(common: CommonSettings, resume_command: str, destination: str) -> Iterator[None]:
    """Input refused before anything was sent still leaves a --report, with every problem (the message shows 20)."""
    try:
        yield
    except InputError as refused:
        if common.report:
            write_report(common.report, refusal_document(refused.problems, resume_command, destination))
        raise


def _upload_aws(settings: AwsSettings, resume_command: str) -> ExitStatus:
    from uploader.s3.backend import S3Backend
    from uploader.s3.client import S3Settings
    from uploader.s3.destination import S3Destination
    from uploader.s3.viewer import ViewerCheck

    common = settings.common
    destination = S3Destination.parse(settings.s3_dir)
    if settings.in_list:
        plan = plan_collection(common.in_dir, settings.in_list, settings.groups)
    else:
        plan = UploadPlan((plan_from_catalog(common.in_dir, common.catalog_path, settings.groups),))
    if settings.aws_cli and not common.quiet:
        say(f"note: --aws {settings.aws_cli} is not needed: uploads go through boto3, no AWS CLI is used")
    backend = S3Backend(destination, S3Settings(settings.profile, settings.endpoint_url, common.n_jobs,
                                                settings.addressing_style))
    viewer = ViewerCheck(backend.client, destination, settings.viewer, settings.profile)
    return execute(plan, backend, common, RunOptions(common.n_jobs, common.dry_run, common.restart),
                   resume_command, destination.uri(), readers=viewer)


def _upload_zenodo(settings: ZenodoCommandSettings, resume_command: str) -> ExitStatus:
    from uploader.zenodo.backend import ZenodoBackend, ZenodoSettings
    from uploader.zenodo.client import ZenodoToken

    common = settings.common
    if settings.upload_method == "catalog":
        dataset = plan_from_catalog(common.in_dir, common.catalog_path)
    elif settings.upload_method == "all":
        dataset = plan_from_names(common.in_dir, regular_files_in(common.in_dir), f"--in-dir {common.in_dir}")
    else:
        dataset = plan_from_names(common.in_dir, settings.files, "--files")
    backend = ZenodoBackend(ZenodoSettings(
        api_url=settings.api_url, token=ZenodoToken(settings.token), deposition_id=settings.deposition_id,
        metadata=settings.metadata, publish=settings.publish, n_jobs=common.n_jobs,
    ))
    options = RunOptions(common.n_jobs, common.dry_run, common.restart, overwrite=settings.overwrite)
    where = f"{settings.api_url} deposition {settings.deposition_id or '(new)'}"
    return execute(UploadPlan((dataset,)), backend, common, options, resume_command, where)


def execute(plan: UploadPlan, backend: Backend, common: CommonSettings, options: RunOptions, resume_command: str,
            destination: str, readers: ReaderCheck | None = None) -> ExitStatus:
    """Run a plan against a backend and tell the user what happened; the shared tail of every command.

    `readers` checks, after a successful run, that the readers of what was
    published can use it (e.g. the web viewer); its verdict is reported apart.
    """
    warnings = [warning for dataset in plan.datasets for warning in dataset.warnings]
    if not common.quiet:
        for warning in warnings:
            say(f"warning: {warning}")
    cache = HashCache.default()
    if cache.notice and not common.quiet:
        say(f"note: {cache.notice}")
    cache.preload(file for dataset in plan.datasets for file in dataset.all_files)
    try:
        result = run(plan, backend, options, cache, progress_factory(common.quiet, common.no_progress))
    finally:
        cache.close()
    readiness = check_readers(readers, result)
    if common.report:
        write_report(common.report, report_document(result, resume_command, destination, warnings, readiness))
    if result.dry_run:
        print_plan(result.ops)
    else:
        tell_outcome(result, common.quiet, resume_command, readiness)
    if readiness is not None and readiness.ready is False and readiness.required:
        return first_applicable({result.exit_status, ExitStatus.NOT_USABLE})
    return result.exit_status


def check_readers(readers: ReaderCheck | None, result: RunResult) -> Readiness | None:
    """The readers' verdict on a successful upload (not after a dry run, a failure or an interruption)."""
    if readers is None or result.dry_run or not result.ok:
        return None
    try:
        return readers(result)
    except KeyboardInterrupt:  # the upload is complete: only the check was cut short
        return Readiness(None, ["interrupted during the check of what readers can use; the upload is complete"])


def tell_outcome(result: RunResult, quiet: bool, resume_command: str, readiness: Readiness | None = None) -> None:
    """Failures, notes, the summary line, what readers can use, and what to do next, on stderr."""
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
    elif readiness is not None:
        if not quiet:
            for line in readiness.lines:
                say(line)
        if readiness.ready is False:  # the last line: the data is safe, but not yet usable
            say(f"uploaded, but {readiness.problem}")


def say(message: str) -> None:
    """A message for the user, on stderr (stdout is for data)."""
    print(message, file=sys.stderr, flush=True)

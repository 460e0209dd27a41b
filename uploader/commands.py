"""The upload commands: build the plan, choose the backend, run, report.

Each command returns an exit code; UploaderErrors raised anywhere below are
turned into one-line messages by the entrypoint (cli.main).
"""

from __future__ import annotations

import sys

from uploader.errors import ExitCode
from uploader.hashing import HashCache
from uploader.plan import UploadPlan, plan_collection, plan_from_catalog, plan_from_names, regular_files_in
from uploader.progress import progress_factory
from uploader.report import failure_lines, print_plan, report_document, summary, write_report
from uploader.runner import Backend, RunOptions, run
from uploader.settings import AwsSettings, CommonSettings, ZenodoCommandSettings


def upload_aws(settings: AwsSettings) -> int:
    """Publish one dataset, or a collection, under an S3 prefix."""
    from uploader.s3 import S3Backend, S3Destination, S3Settings

    common = settings.common
    destination = S3Destination.parse(settings.s3_dir)
    if settings.in_list:
        plan = plan_collection(common.in_dir, settings.in_list, settings.groups)
    else:
        plan = UploadPlan((plan_from_catalog(common.in_dir, common.catalog_yaml, settings.groups),))
    if settings.aws_cli and not common.quiet:
        say(f"note: --aws {settings.aws_cli} is not needed: uploads go through boto3, no AWS CLI is used")
    cache = HashCache.default()
    backend = S3Backend(destination, S3Settings(settings.profile, settings.endpoint_url, common.n_jobs), cache)
    return execute(plan, backend, common, cache, destination.uri())


def upload_zenodo(settings: ZenodoCommandSettings) -> int:
    """Publish a dataset (its catalog's files, a whole directory, or named files) into a Zenodo deposition."""
    from uploader.zenodo import ZenodoBackend, ZenodoSettings, ZenodoToken

    common = settings.common
    if settings.upload_method == "catalog":
        dataset = plan_from_catalog(common.in_dir, common.catalog_yaml)
    elif settings.upload_method == "all":
        dataset = plan_from_names(common.in_dir, regular_files_in(common.in_dir), f"--in-dir {common.in_dir}")
    else:
        dataset = plan_from_names(common.in_dir, settings.files, "--files")
    cache = HashCache.default()
    backend = ZenodoBackend(ZenodoSettings(
        api_url=settings.api_url, token=ZenodoToken(settings.token), deposition_id=settings.deposition_id,
        metadata=settings.metadata, publish=settings.publish, overwrite=settings.overwrite, n_jobs=common.n_jobs,
    ), cache)
    where = f"{settings.api_url} deposition {settings.deposition_id or '(new)'}"
    return execute(UploadPlan((dataset,)), backend, common, cache, where)


def execute(plan: UploadPlan, backend: Backend, common: CommonSettings, cache: HashCache,
            destination: str) -> int:
    """Run a plan against a backend and tell the user what happened; the shared tail of every command."""
    if cache.notice and not common.quiet:
        say(f"note: {cache.notice}")
    options = RunOptions(n_jobs=common.n_jobs, dry_run=common.dry_run, restart=common.restart)
    cache.preload(file for dataset in plan.datasets for file in dataset.all_files)
    try:
        result = run(plan, backend, options, progress_factory(common.quiet, common.no_progress))
    finally:
        cache.close()
    if common.report:
        write_report(common.report, report_document(result, common.resume_command, destination))
    if result.dry_run:
        print_plan(result.ops)
        return ExitCode.OK
    for line in failure_lines(result):
        say(line)
    if not common.quiet:
        for line in result.notes:
            say(line)
        say(summary(result))
    if result.interrupted:
        say(f"interrupted: finished files are kept; resume with: {common.resume_command}")
        return ExitCode.INTERRUPTED
    if result.not_published:
        say(f"error: {result.not_published}")
        return ExitCode.FILES_FAILED
    if not result.ok:
        say(f"some files failed and the catalog was not published; resume with: {common.resume_command}")
        return ExitCode.FILES_FAILED
    return ExitCode.OK


def say(message: str) -> None:
    """A message for the user, on stderr (stdout is for data)."""
    print(message, file=sys.stderr, flush=True)

"""The command line: docopt usage texts, dispatch, and the one place errors become exit codes.

docopt parses and the usage texts are the specification; command_line.py
reads each command line against its usage text first, so that a mistake is
told as one line naming the option and what is wrong, then where the help
is, with exit status 2.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import shlex
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from uploader import __version__
from uploader.cli.command_line import CommandSpec, asks_for_help, is_option_word, read_command_line
from uploader.errors import ExitStatus, UploaderError, UsageError, exit_status
from uploader.redact import redact

if TYPE_CHECKING:
    from uploader.engine.audit import AuditSettings
    from uploader.engine.settings import RunSettings
    from uploader.s3.settings import S3ReadSettings, S3Settings
    from uploader.zenodo.settings import PublishedRecordSettings, ZenodoSettings

PROGRAM = "cartload-uploader"
READER_GONE = 128 + signal.SIGPIPE  # 141: what a shell shows for a writer whose reader went away

MAIN_USAGE = """cartload-uploader: publish a cartload output directory to S3 or Zenodo.

Usage:
  cartload-uploader <command> [<args>...]
  cartload-uploader (-h | --help)
  cartload-uploader --version

Commands:
  upload_aws      upload to Amazon S3 or any S3-compatible store
  upload_zenodo   upload to a Zenodo deposition
  verify_aws      check, reading only, that an S3 prefix holds exactly the local dataset
  verify_zenodo   check, reading only, that a published Zenodo record holds exactly the local files

Run 'cartload-uploader <command> --help' for the options of a command.

Exit codes:
  0    success: every file is uploaded and verified (or was already there)
  1    some files failed: the others are uploaded, the catalog is not published
  2    usage or input error: nothing was uploaded
  3    authentication or permission error
  4    the remote service could not be reached, or kept failing before any upload
  5    uploaded, but readers cannot use it (only when that check is enforced)
  6    a failed update left a previously published dataset offline until a re-run completes
  130  interrupted (Ctrl-C, SIGTERM): finished files are kept; re-run to resume

When the reader of the output goes away ('--dry-run | head -1'), the run ends quietly with 141, as any
Unix tool in a pipe does.

Environment:
  CARTLOAD_UPLOADER_CACHE_DIR   where file hashes (and the deposition a Zenodo command made) are kept
                                (default ~/.cache/cartload-uploader)
  CARTLOAD_UPLOADER_DEBUG=1     show tracebacks for errors too
  CARTLOAD_UPLOADER_VIEWER_TIMEOUT  seconds each request of the viewer check may take (default 10)
  CARTLOAD_UPLOADER_FIRST_CONTACT_SECONDS  how long an S3 store that has not answered once is waited for
                                (default 10; once it answered, outages are ridden through for --stall-timeout)
  CARTLOAD_UPLOADER_CATALOG_ASK_SECONDS  how long the store is asked what it holds of a catalog whose
                                update was cut short (default 5)
  SLURM_ARRAY_TASK_*, JOB_COMPLETION_INDEX  which share upload_aws --shard auto takes
  AWS_*                         the usual AWS settings: profile, keys, endpoint, CA bundle, retries
  ZENODO_TOKEN                  the Zenodo token, when --zenodo-token FILE is not given
  CARTLOAD_UPLOADER_ZENODO_TIMEOUT=60           seconds to wait for Zenodo to answer a metadata call
  CARTLOAD_UPLOADER_ZENODO_UPLOAD_TIMEOUT=1800  ... to answer a file upload, after its last byte
  CARTLOAD_UPLOADER_ZENODO_PUBLISH_TIMEOUT=600  ... to answer a publish, then as long to show it published
  CARTLOAD_UPLOADER_ZENODO_RETRIES=30           retries a run may spend in all (earned back as calls succeed)
  CARTLOAD_UPLOADER_ZENODO_BACKOFF=1            seconds before a first retry, doubled each time
  CARTLOAD_UPLOADER_ZENODO_MAX_WAIT=300         the longest Retry-After honoured
  CARTLOAD_UPLOADER_ZENODO_RATE=100/60,5000/3600  at most this many requests per seconds (+1 s)
  CARTLOAD_UPLOADER_ZENODO_SEARCH_RATE=30/60    ... and searches
  CARTLOAD_UPLOADER_ZENODO_SEARCH_WAIT=60       seconds to keep looking for a draft Zenodo's search lags behind
  CARTLOAD_UPLOADER_ZENODO_URL  the Zenodo API root, when neither --zenodo-url nor --sandbox is given

Also installed as the commands upload_aws, upload_zenodo, verify_aws and verify_zenodo
(the same as 'cartload-uploader upload_aws' and so on).
"""

# The options both commands share: one line here and one field in engine.settings.RunSettings.
COMMON_OPTIONS = """Common options:
  --in-dir DIR            The cartload output directory (upload_aws --in-list: the parent of the samples).
  --catalog-yaml FILE     The catalog (default: <in-dir>/catalog.yaml).
  --dry-run               Print what would be uploaded, replaced, skipped or deleted; change nothing.
  --restart               Upload every file again, even those already there.
  --report FILE           Write a JSON report of every file's outcome ('-' for stdout); written
                          by every run, also one that stops before any upload (ok: false).
  --quiet                 Print only errors.
  --no-progress           No progress bar or progress lines.
  --no-markers            Write no marker files (cartload.aws.done, <file>.zenodo.done, ...) in
                          --in-dir. By default they are written after a successful upload, where
                          cartloader writes them, so that its pipeline skips a finished upload.
  -h --help               Show this help.
"""

AWS_USAGE = """Upload a cartload output directory to Amazon S3 or an S3-compatible store.

The catalog (catalog.yaml) is uploaded last, only after every file it names is
uploaded and verified. Files already there with the same content are skipped,
so re-running the same command resumes an interrupted upload.

Usage:
  cartload-uploader upload_aws --in-dir DIR --s3-dir S3URI [options]
  cartload-uploader upload_aws (-h | --help)

Options:
  --s3-dir S3URI          Destination, s3://BUCKET[/PREFIX].
  --in-list TSV           Collection mode: a header-less TSV whose first column lists sample
                          sub-directories; each goes to <s3-dir>/<catalog id>/. The collection's root
                          (cartloader's multi-catalog.yaml in the parent directory, and the files it
                          names) goes to <s3-dir>/, after every sample.
  --upload-basics-only    Upload only the basic files and the catalog.
  --upload-optional-only  Upload only the optional files (UMAP, alias).
  --upload-basemap-only   Upload only the extra basemaps (histology, ...).
  --shard SPEC            Upload one share of the files, one of several workers running the same command:
                          I/N (the I-th of N, e.g. 2/4), auto (a Slurm array task: from SLURM_ARRAY_TASK_*)
                          or auto/N (a Kubernetes indexed Job of N completions: JOB_COMPLETION_INDEX). Each
                          catalog is published by the worker that finds all its files in place.
  --n-jobs N              Requests in flight at once, 1 to 256 (default: 256; the bodies in flight stay
                          within 64 MiB whatever this is, so memory stays bounded).
  --profile NAME          AWS profile (default: AWS_PROFILE, else the default chain).
  --endpoint-url URL      S3-compatible endpoint (default: AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL).
  --addressing-style STYLE  auto, path or virtual: the bucket in the URL path or as a sub-domain (default
                          auto: the AWS config's s3 addressing_style, else sub-domains on AWS, paths elsewhere).
  --stall-timeout SECONDS Stop after this long without progress, with the command that resumes (default: 120;
                          shorter outages are ridden through).
  --take-over             Resume unfinished uploads even while another run's lease on them is fresh (that
                          run is gone: e.g. its node died less than 10 minutes ago).
  --abort-incomplete-uploads  Abort every unfinished multipart upload under the prefix that no live run holds
                          (by default, only those no run holds and older than 7 days).
  --aws PATH              Accepted for cartloader compatibility and ignored: no AWS CLI is needed.
  --makefn FILE           Accepted for cartloader compatibility and ignored: no Makefile is written.
  --viewer-url URL        Base of the printed viewer link, for other viewer deployments
                          (default: https://v3o-main.carto-scope.org/dataset?uri=).
  --no-viewer-check       Do not check that the viewer can read the upload (a private bucket on purpose).
  --require-viewer-ready  Exit 5 when the upload succeeded but the viewer cannot read it (for CI).
  --setup-viewer-access   Add the CORS rule and the public read of the dataset prefix that the viewer needs,
                          merged into the bucket's CORS rules and policy (never replacing them).
  --acl ACL               Canned ACL of every object: private, public-read, public-read-write,
                          authenticated-read, bucket-owner-read or bucket-owner-full-control.
  --cache-control VALUE   Cache-Control of every object (default: no-cache for catalog.yaml, so that a
                          re-published catalog is not served stale; the store's default for the rest).
  --storage-class CLASS   STANDARD, REDUCED_REDUNDANCY, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING or
                          GLACIER_IR (default: the store's, STANDARD on AWS).
  --sse ALGORITHM         Server-side encryption: AES256, aws:kms or aws:kms:dsse (default: the bucket's).
  --sse-kms-key-id KEY    The KMS key (id, ARN or alias) of --sse aws:kms (default: the aws/s3 key).
  --request-payer WHO     requester: pay for the requests to a Requester Pays bucket.
                          An object option given on a re-run is compared with the unchanged objects there
                          (a request each) and set on those that differ, without sending their bytes again.
  --delete                Once the catalog is published, delete the objects under the dataset's prefix that
                          its catalog does not name; never outside that prefix (not with --upload-*-only).

""" + COMMON_OPTIONS

ZENODO_USAGE = """Upload a cartload output directory to a Zenodo deposition.

Files already in the deposition with the same MD5 are kept; changed ones are
replaced; with --upload-method catalog or all, files the dataset does not have
are removed; catalog.yaml comes last. Nothing is published unless --publish is
given and every file succeeded. Without --zenodo-id, a run goes on with the
deposition this command made before (or a draft holding only this dataset's
files), else makes a new one: never another dataset's draft of the same title.

Usage:
  cartload-uploader upload_zenodo --in-dir DIR [options] [--creators NAME]... [--files NAME]... [--in-list NAME]...
                                  [--contributors NAME]... [--keywords WORD]... [--related-identifier REL]...
                                  [--community ID]... [--grant ID]...
  cartload-uploader upload_zenodo (-h | --help)

Several values may follow one --creators, --contributors, --keywords or --files, as
cartloader takes them (--creators 'Doe, Jane' 'Roe, Rick'), and each may be repeated.
Every record option is checked before anything is sent (docs/zenodo.md has a complete example).

Options:
  --zenodo-token FILE           A file holding the Zenodo token, on one line (default: $ZENODO_TOKEN).
  --token-file FILE             Deprecated: the same as --zenodo-token.
  --zenodo-id ID                Upload into this deposition: a draft is used as it is; a published
                                record gets a new version from its latest one when files change (or
                                its open new-version draft), an edit when only metadata changes.
  --zenodo-deposition-id ID     The same as --zenodo-id.
  --upload-method METHOD        catalog: the catalog's files and catalog.yaml; all: every regular file
                                in --in-dir; files: the names given with --files (default: catalog,
                                which never sweeps logs and Makefiles into a public record;
                                cartloader's default is all). user_list: deprecated, as files.
  --files NAME                  With --upload-method files: a file directly inside --in-dir, by its
                                name or its absolute path.
  --in-list NAME                Deprecated: with --upload-method user_list, the same as --files.
  --title TEXT                  Title (needed for a new deposition).
  --creators NAME               "Family, Given", one comma (or several separated with ;).
                                Each may add [orcid:0000-0002-1825-0097] and [affiliation:Univ. X].
  --description TEXT            Description (HTML allowed). A new deposition without one gets
                                cartloader's "No description provided." so that it can be published.
  --upload-type TYPE            dataset, software, publication, poster, presentation, image, video,
                                lesson, physicalobject or other (default for a new deposition: dataset).
  --license ID                  Zenodo's license id, such as cc-by-4.0, cc0-1.0 or mit.
                                Default for a new record: Zenodo's, cc0-1.0 for a dataset, else cc-by-4.0.
  --access-right RIGHT          open, embargoed, restricted or closed (default: open).
  --embargo-date DATE           With --access-right embargoed: when the files open, YYYY-MM-DD.
  --version TEXT                The record's version label, such as v2 (a new version does not inherit it).
  --contributors NAME           As --creators, with its role: "Family, Given [type:DataCurator]".
  --keywords WORD               Keywords (several may follow one --keywords).
  --related-identifier REL      A related work as RELATION:IDENTIFIER (isSupplementTo:10.1234/abc).
                                RELATION as Zenodo spells it; IDENTIFIER a DOI, URL, arXiv id, PMID, ...
  --viewer-link URL             The CartoScope link upload_aws printed for this dataset.
                                Recorded as isVariantFormOf:URL: the DOI page leads to the interactive view.
  --community ID                Submit the record to this community (its zenodo.org/communities/ID).
  --grant ID                    FUNDER_DOI::AWARD, such as 10.13039/100000002::R01HG011031.
  --notes TEXT                  Additional notes.
  --publication-date DATE       YYYY-MM-DD (default: the day it is published).
  --metadata FILE               A .zenodo.json, Zenodo's deposit metadata.
                                The options above override its fields, each override told.
  --publish                     Publish once every file succeeded (default: leave a draft to review).
  --overwrite                   Replace files of the same name even when unchanged.
  --zenodo-url URL              API root (default: $CARTLOAD_UPLOADER_ZENODO_URL, else
                                https://zenodo.org/api).
  --sandbox                     Use Zenodo's sandbox (https://sandbox.zenodo.org/api).
  --n-jobs N                    Files uploaded at once, 1 to 256 (default: 4).
  --max-record-bytes BYTES      The record's quota, when Zenodo raised it for you (default: 50000000000).

""" + COMMON_OPTIONS


VERIFY_EXIT = """Exit codes:
  0    the remote holds exactly the local dataset
  1    something differs: each difference is named on a line of its own
  2    usage or input error (options, catalog, local files, a record or bucket that does not exist)
  3    authentication or permission error
  4    the remote could not be reached, or kept failing
"""

VERIFY_AWS_USAGE = """Check that an S3 prefix holds exactly the local dataset, reading only: nothing is written.

Every file the local catalog names (the plan upload_aws makes) is compared with
its object: missing, different (size, ETag, stored SHA-256) and extra objects
under the dataset's prefix, and the live catalog; then the viewer check of
upload_aws. With --deep every object is downloaded and hashed instead.

Usage:
  cartload-uploader verify_aws --in-dir DIR --s3-dir S3URI [options]
  cartload-uploader verify_aws (-h | --help)

Options:
  --in-dir DIR            The cartload output directory (--in-list: the parent of the samples).
  --s3-dir S3URI          Where it is published, s3://BUCKET[/PREFIX].
  --catalog-yaml FILE     The catalog (default: <in-dir>/catalog.yaml).
  --in-list TSV           A collection, as upload_aws --in-list publishes it: each sample under
                          <s3-dir>/<catalog id>/, the collection's root under <s3-dir>/.
  --deep                  Download and hash every object instead of trusting the store's ETags
                          (reads the whole dataset; side by side, in bounded memory).
  --no-sign-request       Anonymous requests, for a public bucket: no credentials are looked for.
  --profile NAME          AWS profile (default: AWS_PROFILE, else the default chain).
  --endpoint-url URL      S3-compatible endpoint (default: AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL).
  --addressing-style STYLE  auto, path or virtual (as upload_aws).
  --n-jobs N              Requests in flight at once, 1 to 256 (default: 8).
  --viewer-url URL        Base of the viewer link (default: https://v3o-main.carto-scope.org/dataset?uri=).
  --no-viewer-check       Do not check that the viewer can read the dataset.
  --require-viewer-ready  Exit 5 when everything matches but the viewer cannot read it.
  --report FILE           Write a JSON report of every file's verdict ('-' for stdout).
  --quiet                 Print only the differences and errors.
  -h --help               Show this help.

""" + VERIFY_EXIT + """  5    everything matches, but the viewer cannot read it (with --require-viewer-ready)
"""

VERIFY_ZENODO_USAGE = """Check that a published Zenodo record holds exactly the local files, reading only.

Every file of the local dataset (the plan upload_zenodo makes) is compared with
the record's: missing, different (size, MD5) and extra files, and the catalog.
A published record is public: no token is needed. With --deep every file is
downloaded and hashed instead of trusting the record's MD5s.

Usage:
  cartload-uploader verify_zenodo --in-dir DIR --zenodo-id ID [options] [--files NAME]...
  cartload-uploader verify_zenodo (-h | --help)

Options:
  --in-dir DIR            The cartload output directory.
  --zenodo-id ID          The published record (the version whose DOI is to be checked).
  --latest                Check the latest version of that record's concept instead (e.g. the version
                          upload_zenodo --zenodo-id ID --publish just made).
  --zenodo-token FILE     A file holding a token, for a record whose files are restricted
                          (default: $ZENODO_TOKEN when set; a public record needs none).
  --catalog-yaml FILE     The catalog (default: <in-dir>/catalog.yaml).
  --upload-method METHOD  What the upload sent: catalog (the catalog's files and catalog.yaml), all
                          (every regular file in --in-dir) or files (--files) (default: catalog).
  --files NAME            With --upload-method files: a file directly inside --in-dir.
  --zenodo-url URL        API root (default: $CARTLOAD_UPLOADER_ZENODO_URL, else https://zenodo.org/api).
  --sandbox               Use Zenodo's sandbox (https://sandbox.zenodo.org/api).
  --deep                  Download and hash every file instead of trusting the record's MD5s.
  --n-jobs N              Files read at once with --deep, 1 to 256 (default: 4).
  --report FILE           Write a JSON report of every file's verdict ('-' for stdout).
  --quiet                 Print only the differences and errors.
  -h --help               Show this help.

""" + VERIFY_EXIT


def aws_settings(args: dict[str, Any]) -> tuple[RunSettings, S3Settings]:
    """upload_aws's parsed usage as the run's settings and the S3 backend's."""
    from uploader.engine.settings import Given, RunSettings, read_settings
    from uploader.s3.settings import DEFAULT_JOBS, S3Settings

    given = Given(args, defaults={"--n-jobs": DEFAULT_JOBS})
    return read_settings(RunSettings, given), read_settings(S3Settings, given)


def zenodo_settings(args: dict[str, Any]) -> tuple[RunSettings, ZenodoSettings]:
    """upload_zenodo's parsed usage as the run's settings and the Zenodo backend's."""
    from uploader.engine.settings import Given, RunSettings, read_settings
    from uploader.zenodo.settings import DEFAULT_JOBS, ZenodoSettings

    given = Given(args, defaults={"--n-jobs": DEFAULT_JOBS})
    return read_settings(RunSettings, given), read_settings(ZenodoSettings, given)


def _upload_aws(args: dict[str, Any], resume: str) -> int:
    from uploader.cli.commands import upload_aws

    return upload_aws(*aws_settings(args), resume)


def _upload_zenodo(args: dict[str, Any], resume: str) -> int:
    from uploader.cli.commands import upload_zenodo

    return upload_zenodo(*zenodo_settings(args), resume)


def verify_aws_settings(args: dict[str, Any]) -> tuple[RunSettings, AuditSettings, S3Settings, S3ReadSettings]:
    """verify_aws's parsed usage: the shared options, the audit's, and upload_aws's S3 ones with its own."""
    from uploader.engine.audit import AuditSettings
    from uploader.engine.settings import Given, RunSettings, read_settings
    from uploader.s3.settings import S3ReadSettings, S3Settings

    given = Given(args, defaults={"--n-jobs": VERIFY_JOBS})
    return (read_settings(RunSettings, given), read_settings(AuditSettings, given), read_settings(S3Settings, given),
            read_settings(S3ReadSettings, given))


def verify_zenodo_settings(args: dict[str, Any]) -> tuple[RunSettings, AuditSettings, PublishedRecordSettings]:
    """verify_zenodo's parsed usage: the shared options, the audit's, and the published record's."""
    from uploader.engine.audit import AuditSettings
    from uploader.engine.settings import Given, RunSettings, read_settings
    from uploader.zenodo.settings import DEFAULT_JOBS, PublishedRecordSettings

    given = Given(args, defaults={"--n-jobs": DEFAULT_JOBS})
    return read_settings(RunSettings, given), read_settings(AuditSettings, given), \
        read_settings(PublishedRecordSettings, given)


VERIFY_JOBS = 8


def _verify_aws(args: dict[str, Any], resume: str) -> int:
    from uploader.cli.verify import verify_aws

    return verify_aws(*verify_aws_settings(args))


def _verify_zenodo(args: dict[str, Any], resume: str) -> int:
    from uploader.cli.verify import verify_zenodo

    return verify_zenodo(*verify_zenodo_settings(args))


SPECS: dict[str, CommandSpec] = {
    "upload_aws": CommandSpec.from_usage("upload_aws", AWS_USAGE),
    # cartloader's upload_zenodo declares these with nargs='+' (--in-list in its older versions).
    "upload_zenodo": CommandSpec.from_usage("upload_zenodo", ZENODO_USAGE,
                                            multi_value=frozenset({"--creators", "--files", "--in-list",
                                                                        "--contributors", "--keywords"})),
    "verify_aws": CommandSpec.from_usage("verify_aws", VERIFY_AWS_USAGE),
    "verify_zenodo": CommandSpec.from_usage("verify_zenodo", VERIFY_ZENODO_USAGE, multi_value=frozenset({"--files"})),
}

COMMANDS: dict[str, Callable[[dict[str, Any], str], int]] = {
    "upload_aws": _upload_aws,
    "upload_zenodo": _upload_zenodo,
    "verify_aws": _verify_aws,
    "verify_zenodo": _verify_zenodo,
}


# -- the entrypoint -------------------------------------------------------------------------------


def main(argv: list[str] | None = None, invoked_as: str | None = None) -> int:
    """Parse the command line, run the command, and map its outcome to an exit code.

    `invoked_as` is what the user typed up to and including the command's name (e.g.
    `upload_aws` for that console script); by default `cartload-uploader <command>`.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    _show_warnings_on_stderr()
    command = argv[0] if argv and argv[0] in COMMANDS else None
    words = argv[1:]
    help_hint = f"Run '{invoked_as or (f'{PROGRAM} {command}' if command else PROGRAM)} --help'"
    resume = resume_command(command, words, invoked_as) if command else ""
    args: dict[str, Any] = {}  # once the command line is read: --report is written whatever happens next
    try:
        if command is None:
            return _top_level(argv)
        if asks_for_help(words):
            print(SPECS[command].usage.strip("\n"))
            return ExitStatus.OK
        if words == ["--version"]:
            print(f"{PROGRAM} {__version__}")
            return ExitStatus.OK
        args = read_command_line(SPECS[command], words, list(SPECS.values()))
        return COMMANDS[command](args, resume)
    except BrokenPipeError:
        return _reader_gone()
    except UploaderError as exc:
        _print_error(exc)
        if isinstance(exc, UsageError):
            print(help_hint, file=sys.stderr)
        status = exit_status(error=exc)
        _report_failure(args, resume, status, exc.message, problems=getattr(exc, "problems", None))
        return status
    except KeyboardInterrupt:
        message = "interrupted before any upload started; nothing was changed"
        print(message, file=sys.stderr)
        status = exit_status(interrupted=True)
        _report_failure(args, resume, status, message, interrupted=True)
        return status


def _report_failure(args: dict[str, Any], resume: str, status: int, message: str, *, interrupted: bool = False,
                    problems: list[str] | None = None) -> None:
    """--report FILE for a run that stopped early: ok false, the exit status and the error, for CI to read."""
    if not args.get("--report"):
        return
    from pathlib import Path

    from uploader.engine.report import failure_document, write_report

    document = failure_document(resume, status, message, dry_run=bool(args.get("--dry-run")),
                                interrupted=interrupted, problems=problems)
    try:
        write_report(Path(args["--report"]), document)
    except UsageError as exc:
        if not message.startswith("--report"):  # else the user was just told
            print(f"error: {exc}", file=sys.stderr)


def _top_level(argv: list[str]) -> int:
    """`cartload-uploader` without a command: help, version, or a usage error naming the mistake."""
    if not argv:
        raise UsageError(f"no command given: use {', '.join(COMMANDS)}")
    first = argv[0]
    if first in ("-h", "--help") and len(argv) == 1:
        print(MAIN_USAGE.strip("\n"))
        return ExitStatus.OK
    if first == "--version" and len(argv) == 1:
        print(f"{PROGRAM} {__version__}")
        return ExitStatus.OK
    if first in ("-h", "--help", "--version"):
        raise UsageError(f"{first} takes nothing after it (got '{' '.join(argv[1:])}')")
    if is_option_word(first):
        found = [name for name, spec in SPECS.items() if first.partition("=")[0] in spec.options]
        where = f": options go after the command ({found[0]} {first} ...)" if found else ""
        raise UsageError(f"unknown option {first} before the command{where}")
    close = difflib.get_close_matches(first, list(COMMANDS), n=1, cutoff=0.6)
    suggestion = f" (did you mean {close[0]}?)" if close else f": use {', '.join(COMMANDS)}"
    raise UsageError(f"unknown command '{first}'{suggestion}")


def _reader_gone() -> int:
    """The reader of our output went away (`... --dry-run | head -1`): end quietly, as `cat` does.

    The status is the one a shell shows for a program ended by SIGPIPE (141), as for every Unix tool in that
    pipe; nothing more is written (the interpreter's own flush at exit would fail again).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, stream.fileno())
    return READER_GONE


def _print_error(exc: UploaderError) -> None:
    if os.environ.get("CARTLOAD_UPLOADER_DEBUG"):
        traceback.print_exc()
    print(f"error: {exc}", file=sys.stderr)


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt()


def _show_warnings_on_stderr() -> None:
    """Backends log warnings that must reach the user (never data: stdout is for reports)."""
    logger = logging.getLogger("uploader")
    if any(getattr(handler, "_uploader_stderr", False) for handler in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._uploader_stderr = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False


def resume_command(command: str, words: list[str], invoked_as: str | None = None) -> str:
    """The command line that resumes this run: the same one, without --restart."""
    if invoked_as:
        head = shlex.split(invoked_as)
    else:
        program = sys.argv[0] if sys.argv and sys.argv[0] else PROGRAM
        if program.endswith("__main__.py"):
            head = ["python", "-m", "uploader", command]
        elif program.endswith(".py"):
            head = ["python", program, command]
        else:
            head = [os.path.basename(program), command]
    # Printed and written to reports: a secret in an --endpoint-url's user-info part is masked.
    return redact(shlex.join(head + [word for word in words if word != "--restart"]))


def upload_aws_main() -> int:
    """The `upload_aws` command: `cartload-uploader upload_aws` under cartloader's name."""
    return exit_promptly(main(["upload_aws", *sys.argv[1:]], invoked_as="upload_aws"))


def upload_zenodo_main() -> int:
    """The `upload_zenodo` command: `cartload-uploader upload_zenodo` under cartloader's name."""
    return exit_promptly(main(["upload_zenodo", *sys.argv[1:]], invoked_as="upload_zenodo"))


def verify_aws_main() -> int:
    """The `verify_aws` command: `cartload-uploader verify_aws`."""
    return exit_promptly(main(["verify_aws", *sys.argv[1:]], invoked_as="verify_aws"))


def verify_zenodo_main() -> int:
    """The `verify_zenodo` command: `cartload-uploader verify_zenodo`."""
    return exit_promptly(main(["verify_zenodo", *sys.argv[1:]], invoked_as="verify_zenodo"))


def console_main() -> int:
    """The `cartload-uploader` command (and entrypoint.py)."""
    return exit_promptly(main())


def exit_promptly(status: int) -> int:
    """End the process with `status` now, even when a request is stuck on a dead endpoint.

    Everything worth keeping is written by then (report, hash cache, messages); after an interrupt or a stall
    a worker may still sit in a network read that only its timeout would end, and Python's exit waits for it.
    """
    stuck = [thread for thread in threading.enumerate()
             if thread is not threading.main_thread() and thread.is_alive() and not thread.daemon]
    if stuck and status in (ExitStatus.INTERRUPTED, ExitStatus.REMOTE, ExitStatus.FILES_FAILED):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status

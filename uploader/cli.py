"""The command line: docopt usage texts, dispatch, and the one place errors become exit codes."""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from docopt import DocoptExit, docopt

from uploader import __version__
from uploader.errors import ExitStatus, UploaderError

MAIN_USAGE = """cartload-uploader: publish a cartload output directory to S3 or Zenodo.

Usage:
  cartload-uploader <command> [<args>...]
  cartload-uploader (-h | --help)
  cartload-uploader --version

Commands:
  upload_aws      upload to Amazon S3 or any S3-compatible store
  upload_zenodo   upload to a Zenodo deposition

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

Environment:
  CARTLOAD_UPLOADER_CACHE_DIR   where file hashes (and the deposition a Zenodo command made) are kept
                                (default ~/.cache/cartload-uploader)
  CARTLOAD_UPLOADER_DEBUG=1     show tracebacks for errors too
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
"""

# The options both commands share: one line here and one field in settings.CommonSettings.
COMMON_OPTIONS = """Common options:
  --in-dir DIR            The cartload output directory (upload_aws --in-list: the parent of the samples).
  --catalog-yaml FILE     The catalog (default: <in-dir>/catalog.yaml).
  --dry-run               Print what would be uploaded, replaced, skipped or deleted; change nothing.
  --restart               Upload every file again, even those already there.
  --report FILE           Write a JSON report of every file's outcome ('-' for stdout).
  --quiet                 Print only errors.
  --no-progress           No progress bar or progress lines.
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
                          sub-directories; each goes to <s3-dir>/<catalog id>/.
  --upload-basics-only    Upload only the basic files and the catalog.
  --upload-optional-only  Upload only the optional files (UMAP, alias).
  --upload-basemap-only   Upload only the extra basemaps (histology, ...).
  --n-jobs N              Requests in flight at once (default: 8).
  --profile NAME          AWS profile (default: AWS_PROFILE, else the default chain).
  --endpoint-url URL      S3-compatible endpoint (default: AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL).
  --aws PATH              Accepted for cartloader compatibility and ignored: no AWS CLI is needed.

""" + COMMON_OPTIONS

ZENODO_USAGE = """Upload a cartload output directory to a Zenodo deposition.

Files already in the deposition with the same MD5 are kept; changed ones are
replaced; catalog.yaml comes last. Nothing is published unless --publish is
given and every file succeeded.

Usage:
  cartload-uploader upload_zenodo --in-dir DIR [options] [--creators NAME]... [--files <name>...]
  cartload-uploader upload_zenodo (-h | --help)

Options:
  --zenodo-token FILE           A file holding the Zenodo token (default: $ZENODO_TOKEN).
  --zenodo-id ID                Upload into this deposition: a draft is used as it is; a published
                                record gets a new version from its latest one when files change (or
                                its open new-version draft), an edit when only metadata changes.
  --zenodo-deposition-id ID     The same as --zenodo-id.
  --upload-method METHOD        catalog: the catalog's files and catalog.yaml; all: every regular file
                                in --in-dir; files: the names after --files (default: catalog).
  --files                       Followed by the file names, with --upload-method files.
  --title TEXT                  Title (needed for a new deposition).
  --creators NAME               "Family, Given"; repeat it (or separate with ;) for several.
  --description TEXT            Description (HTML allowed; needed to publish).
  --upload-type TYPE            dataset, software, publication, poster, presentation, image, video,
                                lesson, physicalobject or other (default for a new deposition: dataset).
  --publish                     Publish once every file succeeded (default: leave a draft to review).
  --overwrite                   Replace files of the same name even when unchanged.
  --zenodo-url URL              API root (default: https://zenodo.org/api).
  --sandbox                     Use Zenodo's sandbox (https://sandbox.zenodo.org/api).
  --n-jobs N                    Files uploaded at once (default: 4).
  --max-record-bytes BYTES      The record's quota, when Zenodo raised it for you (default: 50000000000).

""" + COMMON_OPTIONS


def _upload_aws(args: dict[str, Any], argv: list[str]) -> int:
    from uploader.commands import upload_aws
    from uploader.settings import aws_settings

    return upload_aws(aws_settings(args), resume_command(argv))


def _upload_zenodo(args: dict[str, Any], argv: list[str]) -> int:
    from uploader.commands import upload_zenodo
    from uploader.settings import zenodo_settings

    return upload_zenodo(zenodo_settings(args), resume_command(argv))


COMMANDS: dict[str, tuple[str, Callable[[dict[str, Any], list[str]], int]]] = {
    "upload_aws": (AWS_USAGE, _upload_aws),
    "upload_zenodo": (ZENODO_USAGE, _upload_zenodo),
}


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the command, and map its outcome to an exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    _show_warnings_on_stderr()
    try:
        top = _parse(MAIN_USAGE, argv, options_first=True)
        if top["--version"]:
            print(f"cartload-uploader {__version__}")
            return ExitStatus.OK
        command = top["<command>"]
        if command not in COMMANDS:
            _usage_error(MAIN_USAGE, f"unknown command '{command}': use upload_aws or upload_zenodo")
        usage, handler = COMMANDS[command]
        args = _parse(usage, argv)
        return handler(args, argv)
    except UploaderError as exc:
        if os.environ.get("CARTLOAD_UPLOADER_DEBUG"):
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("interrupted before any upload started; nothing was changed", file=sys.stderr)
        return ExitStatus.INTERRUPTED


def _parse(usage: str, argv: list[str], options_first: bool = False) -> dict[str, Any]:
    try:
        return dict(docopt(usage, argv=argv, options_first=options_first, default_help=True))
    except DocoptExit as exc:
        # docopt's own exit code is 1, which here means "files failed": usage errors are 2.
        _usage_error(usage, str(exc).splitlines()[0] if str(exc).strip() else "")


def _usage_error(usage: str, message: str) -> NoReturn:
    section = usage[usage.index("Usage:"):].split("\n\n", 1)[0]
    text = f"error: {message}\n{section}" if message and not message.startswith("Usage:") else section
    print(text, file=sys.stderr)
    sys.exit(ExitStatus.USAGE)


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt()


def _show_warnings_on_stderr() -> None:
    """Backends log warnings that must reach the user (never data: stdout is for reports)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("uploader")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False


def resume_command(argv: list[str]) -> str:
    """The command line that resumes this run: the same one, without --restart."""
    program = sys.argv[0] if sys.argv and sys.argv[0] else "cartload-uploader"
    if program.endswith("__main__.py"):
        head = ["python", "-m", "uploader"]
    elif program.endswith(".py"):
        head = ["python", program]
    else:
        head = [os.path.basename(program)]
    return shlex.join(head + [arg for arg in argv if arg != "--restart"])

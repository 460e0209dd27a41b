"""The uploader's exit statuses and its exception family.

Every error a user can cause or fix is an `UploaderError`. Each subclass
carries the exit status shell scripts can test for; the message is one line
that names the file or option at fault and ends with what to do. The
entrypoint catches this family once and prints the message; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """The documented exit statuses (README.md and --help list them; the table is fixed).

    When several apply, the first of PRECEDENCE wins.
    """

    OK = 0  # every file uploaded and verified, or already there
    FILES_FAILED = 1  # some files failed, or the run stopped after uploading some; the new catalog is not published
    USAGE = 2  # usage or input error: nothing uploaded
    AUTH = 3  # credentials missing or rejected, or permission denied
    REMOTE = 4  # the remote could not be reached, stopped answering, or kept failing before any upload
    NOT_USABLE = 5  # uploaded and verified, but readers cannot use it (only when that check is enforced)
    OFFLINE = 6  # a failed update left a previously published dataset offline until a re-run completes
    INTERRUPTED = 130  # Ctrl-C or SIGTERM: finished files are kept


PRECEDENCE = (ExitStatus.INTERRUPTED, ExitStatus.USAGE, ExitStatus.AUTH, ExitStatus.OFFLINE, ExitStatus.REMOTE,
              ExitStatus.FILES_FAILED, ExitStatus.NOT_USABLE, ExitStatus.OK)


def first_applicable(statuses: set[ExitStatus]) -> ExitStatus:
    """The status that wins when several apply (conventions.md: 130, 2, 3, 6, 4, 1, 5, 0)."""
    return next((status for status in PRECEDENCE if status in statuses), ExitStatus.OK)


class UploaderError(Exception):
    """Base of every error the user can act on."""

    exit_status = ExitStatus.USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(UploaderError):
    """A bad option value or a bad combination of options."""


class InputError(UploaderError):
    """The input directory, catalog or file list cannot be uploaded as it is.

    The message shows the first SHOWN problems and a count of the rest (a
    catalog naming 100,000 missing files must not print 16 MB); `problems`
    keeps them all for the report.
    """

    SHOWN = 20

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = problems[:self.SHOWN]
        if len(problems) > self.SHOWN:
            lines.append(f"... and {len(problems) - self.SHOWN:,d} more ({len(problems):,d} problems in all;"
                         " --report FILE lists every one)")
        super().__init__("\n".join(lines))


class RemoteRefused(UploaderError):
    """The remote refused values it was sent, by its own rules (e.g. Zenodo's validation): change them, re-run.

    Exit 2 like an input error, but told as the remote's refusal (with its field errors), not as a usage error.
    """


class AuthError(UploaderError):
    """Credentials are missing or rejected, or an action is not permitted."""

    exit_status = ExitStatus.AUTH


class RemoteError(UploaderError):
    """The remote service is unreachable or failing before anything was uploaded."""

    exit_status = ExitStatus.REMOTE


class NotPublished(UploaderError):
    """Every file is uploaded, but the final publish step was refused."""

    exit_status = ExitStatus.FILES_FAILED


class FileUploadError(Exception):
    """One file could not be uploaded or verified; the run continues with the others.

    `retryable`: the bytes arrived wrong (a few more attempts). `transient`: the
    remote did not take them this time (connection refused or reset, 5xx, 429,
    a cut body): tried again after a pause, for as long as the run makes progress.
    """

    def __init__(self, reason: str, *, retryable: bool = False, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.transient = transient


class CatalogWaits(FileUploadError):
    """A catalog is not published yet: files it names that another run sends (another upload group, another
    --shard worker, another run's samples) are not in place."""


class CatalogInPlace(FileUploadError):
    """A catalog to publish is on the remote already, as it is here (another --shard worker published it)."""


def exit_status(*, error: UploaderError | None = None, interrupted: bool = False, stalled: bool = False,
                changed_something: bool = False, failed: bool = False, offline: bool = False,
                not_usable: bool = False) -> ExitStatus:
    """The one place an exit status is computed: the fixed table, applied to what happened (first applicable).

    `error`: what stopped the command (its own status); `interrupted`: Ctrl-C or SIGTERM; `stalled`: the remote
    stopped answering (4 when nothing was changed yet, as it could not be used at all; else 1); `failed`: a file
    failed or the backend's finish (e.g. Zenodo's publish) was refused; `offline`: a catalog this run withdrew
    is not published again; `not_usable`: readers cannot use the upload, and that check is enforced.
    """
    statuses = {ExitStatus.OK}
    if error is not None:
        statuses.add(error.exit_status)
    if interrupted:
        statuses.add(ExitStatus.INTERRUPTED)
    if stalled:
        statuses.add(ExitStatus.FILES_FAILED if changed_something else ExitStatus.REMOTE)
    if failed:
        statuses.add(ExitStatus.FILES_FAILED)
    if offline:
        statuses.add(ExitStatus.OFFLINE)
    if not_usable:
        statuses.add(ExitStatus.NOT_USABLE)
    return first_applicable(statuses)

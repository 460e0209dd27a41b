"""The uploader's exception family and its exit codes.

Every error a user can cause or fix is an `UploaderError`. Each subclass
carries the exit code shell scripts can test for; the message is one line
that names the file or option at fault and ends with what to do. The
entrypoint catches this family once and prints the message; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Documented exit codes (also listed in README.md and --help)."""

    OK = 0
    FILES_FAILED = 1  # some files failed (the rest was uploaded, catalog withheld), or publishing was refused
    USAGE = 2  # bad option or bad input; nothing was uploaded
    AUTH = 3  # credentials missing or rejected, or permission denied
    REMOTE = 4  # the remote service could not be reached or kept failing before any upload
    INTERRUPTED = 130  # Ctrl-C or SIGTERM


class UploaderError(Exception):
    """Base of every error the user can act on."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(UploaderError):
    """A bad option value or a bad combination of options."""


class InputError(UploaderError):
    """The input directory, catalog or file list cannot be uploaded as it is."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class AuthError(UploaderError):
    """Credentials are missing or rejected, or an action is not permitted."""

    exit_code = ExitCode.AUTH


class RemoteError(UploaderError):
    """The remote service is unreachable or failing before anything was uploaded."""

    exit_code = ExitCode.REMOTE


class NotPublished(UploaderError):
    """Every file is uploaded, but the final publish step was refused."""

    exit_code = ExitCode.FILES_FAILED


class FileUploadError(Exception):
    """One file could not be uploaded or verified; the run continues with the others."""

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


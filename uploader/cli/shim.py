"""A `cartloader` that runs our upload_aws and upload_zenodo, and the real cartloader for the rest.

cartloader's pipeline (run_xenium, run_visiumhd, stepinator) runs `cartloader upload_aws ...`
and `cartloader upload_zenodo ...` through the shell. Linked under the name `cartloader` in a
directory that comes first on PATH, this command answers those two itself, with the exact
command lines the pipeline generates, and hands every other subcommand to the real cartloader
untouched: the same arguments, environment, standard streams and process (exec), so its exit
status and signals are the real cartloader's. cartloader's own code stays as it is.

The real cartloader is $CARTLOADER_REAL if set, else the next `cartloader` on PATH that is
not this command.
"""

from __future__ import annotations

import os
import sys

OURS = ("upload_aws", "upload_zenodo")
REAL_ENV = "CARTLOADER_REAL"


def main() -> int:
    arguments = sys.argv[1:]
    if arguments and arguments[0] in OURS:
        from uploader.cli.main import exit_promptly
        from uploader.cli.main import main as uploader_main

        return exit_promptly(uploader_main(arguments, invoked_as=f"cartloader {arguments[0]}"))
    real = find_real_cartloader(sys.argv[0])
    if real is None:
        print(f"error: 'cartloader {' '.join(arguments[:1])}' is cartloader's own, and no cartloader is installed"
              f" besides this stand-in (it runs only {' and '.join(OURS)}); install cartloader, or set"
              f" {REAL_ENV} to its path", file=sys.stderr)
        return 127  # the shell's "command not found"
    os.execv(real, [real, *arguments])  # replaces this process: nothing of ours runs after this


def find_real_cartloader(this: str) -> str | None:
    """$CARTLOADER_REAL, else the first executable `cartloader` on PATH that is not this command."""
    if os.environ.get(REAL_ENV):
        return os.environ[REAL_ENV]
    myself = os.path.realpath(this)
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory or ".", "cartloader")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK) and os.path.realpath(candidate) != myself:
            return candidate
    return None

#!/usr/bin/env python3
"""The command: `entrypoint.py upload_aws ...` or `entrypoint.py upload_zenodo ...`.

In the image this file is the `cartload-uploader` command itself (the ENTRYPOINT, and on PATH for
`apptainer exec`), run by the image's Python in isolated mode (`python -I`, see the Dockerfile): a
host's PYTHONPATH, PYTHONHOME, PYTHONUSERBASE or virtualenv, which Apptainer passes in, cannot
change which code runs. AWS_* and ZENODO_TOKEN still pass through: only PYTHON* is ignored.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

IMAGE_HOME = Path("/home/uploader")  # the image user's home (Dockerfile: useradd --home-dir)


def home_for_any_uid(environ: Mapping[str, str], image_home: Path = IMAGE_HOME) -> str | None:
    """The HOME to set, or None to keep the one given.

    `docker run --user UID` gives HOME=/ and some schedulers give none: then a `~/.aws` or
    `~/.cache` mounted under the image's home would never be found. A real HOME (Apptainer
    binds the host's, with its ~/.aws) is kept. Outside the image there is no image home.
    """
    if environ.get("HOME", "") in ("", "/") and image_home.is_dir():
        return str(image_home)
    return None


if __name__ == "__main__":
    home = home_for_any_uid(os.environ)
    if home is not None:
        os.environ["HOME"] = home

    from uploader.cli.main import console_main

    sys.exit(console_main())

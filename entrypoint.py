#!/usr/bin/env python3
"""The container's entrypoint: `entrypoint.py upload_aws ...` or `entrypoint.py upload_zenodo ...`."""

import sys

from uploader.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""`python -m uploader` runs the same command line as entrypoint.py."""

import sys

from uploader.cli.main import console_main

sys.exit(console_main())

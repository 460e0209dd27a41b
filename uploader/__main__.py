"""`python -m uploader` runs the same command line as entrypoint.py."""

import sys

from uploader.cli import main

sys.exit(main())

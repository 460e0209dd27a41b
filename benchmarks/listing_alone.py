#!/usr/bin/env python3
"""The least a no-op re-run must do, in our stack: start, build the botocore client, and list the prefix once.

The no-op workloads run it as the 'listing alone' reference row: the same
Python, client set-up and listing (key ranges side by side) as
`upload_aws`, without the plan, the hash cache, the comparison, the write
check or the viewer check. What ours takes beyond it is that work; what it
takes beyond s5cmd's sync is the floor of a Python tool on botocore.

    python benchmarks/listing_alone.py DIRECTORY BUCKET PREFIX   (AWS_ENDPOINT_URL_S3 and keys in the environment)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uploader.s3.client import make_client
from uploader.s3.destination import S3Destination
from uploader.s3.settings import DEFAULT_JOBS, S3Settings
from uploader.s3.verify import listed_files


def main() -> int:
    source, bucket, prefix = Path(sys.argv[1]), sys.argv[2], sys.argv[3].strip("/")
    client = make_client(S3Settings(s3_dir=S3Destination("bucket", "")), DEFAULT_JOBS)
    names = [entry.name for entry in os.scandir(source) if entry.is_file() and not entry.name.startswith(".")]
    found = listed_files(client, bucket, prefix + "/", [f"{prefix}/{name}" for name in names])
    missing = [name for name in names if f"{prefix}/{name}" not in found]
    if missing:
        print(f"listing alone: {len(missing)} file(s) not listed, e.g. {missing[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

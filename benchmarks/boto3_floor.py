#!/usr/bin/env python3
"""The floor of any boto3-based uploader: one put_object per file, nothing else.

The `small` workload runs this beside the real tools. It uses our own S3
client (same configuration, same 8 threads) but no plan, no hashes, no cache,
no verification and no report: what is left is what boto3 itself costs per
request. Ours can only approach it; if it is already over a target, no
change to our code alone can meet that target.

    python benchmarks/boto3_floor.py DIRECTORY s3://BUCKET/PREFIX   (endpoint from AWS_ENDPOINT_URL_S3)
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uploader.s3.client import S3Settings, _build_client
from uploader.s3.destination import S3Destination
from uploader.s3.writer import _no_continue_for_small_bodies


def main() -> int:
    source, destination = Path(sys.argv[1]), S3Destination.parse(sys.argv[2])
    client = _build_client(S3Settings(n_jobs=8))
    client.meta.events.register_last("before-call.s3", _no_continue_for_small_bodies)  # as ours does
    names = sorted(entry.name for entry in os.scandir(source) if entry.is_file() and entry.name[0] != ".")

    def put(name: str) -> None:
        body = (source / name).read_bytes()
        client.put_object(Bucket=destination.bucket, Key=f"{destination.prefix}/{name}", Body=body)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, names))
    return 0


if __name__ == "__main__":
    sys.exit(main())

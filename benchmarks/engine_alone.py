#!/usr/bin/env python3
"""Our transfer engine on its own: one PutObject with its Content-MD5 per file, nothing else.

The small-file workloads run it as the 'engine alone' reference row: the
same awscrt client, connection count and boto3 client set-up as `upload_aws`
(start-up included), without planning, hashing with a cache, comparing,
progress, verification or the report. What ours takes beyond it is the cost
of that work; what it takes beyond s5cmd is the floor of a Python tool on
this engine.

    python benchmarks/engine_alone.py DIRECTORY BUCKET PREFIX   (AWS_ENDPOINT_URL_S3 and keys in the environment)
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import threading
from concurrent.futures import Future, wait
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uploader.local.content_types import content_type
from uploader.s3.client import make_client
from uploader.s3.destination import S3Destination
from uploader.s3.settings import DEFAULT_JOBS, S3Settings
from uploader.s3.transport import Body, CrtTransport, Sent


def main() -> int:
    source, bucket, prefix = Path(sys.argv[1]), sys.argv[2], sys.argv[3].strip("/")
    n_jobs = DEFAULT_JOBS
    client = make_client(S3Settings(s3_dir=S3Destination("bucket", "")), n_jobs)
    transport = CrtTransport(client, bucket, n_jobs)
    sending: list[Future[Sent]] = []
    in_flight = threading.BoundedSemaphore(n_jobs)  # as upload_aws: n_jobs requests (and open files) at once
    for entry in os.scandir(source):
        if not entry.is_file() or entry.name.startswith("."):
            continue
        md5 = base64.b64encode(hashlib.md5(Path(entry.path).read_bytes()).digest()).decode("ascii")
        body = Body(Path(entry.path), 0, entry.stat().st_size)
        in_flight.acquire()
        future = transport.put_object(f"{prefix}/{entry.name}", body, md5, {"ContentType": content_type(entry.name)},
                                      lambda _: None)
        future.add_done_callback(lambda _: in_flight.release())
        sending.append(future)
    wait(sending)
    failed = [future.exception() for future in sending if future.exception() is not None]
    for error in failed[:3]:
        print(f"engine alone: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

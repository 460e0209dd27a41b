#!/usr/bin/env python3
"""Our own per-file work on its own: upload_aws's run with every data request answered at once, locally.

The small-file workloads run it as the 'bookkeeping alone' reference row,
beside 'engine alone' (the data requests and nothing else): the same
planning, hash cache, hashing, comparing, executor, verification and start-up
checks as `upload_aws`, against the same server, but each PutObject is
answered at once with the ETag its bytes would get (nothing is sent) and the
HEAD of the first object of each type from the local digests. The catalog is
not published (its listing would find nothing). Ours takes about the sum of
the two rows: what is left beyond the engine is this work.

    python benchmarks/bookkeeping_alone.py DIRECTORY BUCKET PREFIX   (AWS_ENDPOINT_URL_S3, keys, and
    CARTLOAD_UPLOADER_CACHE_DIR in the environment)
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uploader.engine.runner
from uploader.engine.operations import Status, Stored
from uploader.engine.progress import progress_factory
from uploader.engine.runner import run
from uploader.engine.settings import RunSettings
from uploader.local.digests import digests, multipart_etag_name
from uploader.local.hash_cache import HashCache
from uploader.local.plan import LocalFile, UploadPlan, plan_from_catalog
from uploader.s3.backend import S3Backend
from uploader.s3.destination import S3Destination
from uploader.s3.settings import DEFAULT_JOBS, S3Settings
from uploader.s3.transport import Body, CrtTransport, Sent
from uploader.s3.writer import part_size


def answered_at_once(self: CrtTransport, key: str, body: Body, md5_b64: str, params: Mapping[str, Any],
                     progress: Callable[[int], None]) -> Future[Sent]:
    """A PutObject as the store answers it when the bytes arrive intact: its ETag is their MD5."""
    progress(body.length)
    answer: Future[Sent] = Future()
    answer.set_result(Sent(base64.b64decode(md5_b64).hex()))
    return answer


def main() -> int:
    source, bucket, prefix = Path(sys.argv[1]), sys.argv[2], sys.argv[3].strip("/")
    cache = HashCache.default()

    def headed_locally(self: S3Backend, key: str, file: LocalFile) -> Stored:
        name = multipart_etag_name(part_size(file.size))
        return Stored(file.size, digests(file, [name], cache))

    CrtTransport.put_object = answered_at_once  # type: ignore[method-assign]
    S3Backend._stored_as_headed = headed_locally  # type: ignore[method-assign]
    uploader.engine.runner.catalogs_ready_to_publish = lambda ops, roots: []  # type: ignore[assignment, misc]
    n_jobs = DEFAULT_JOBS
    plan = UploadPlan((plan_from_catalog(source, source / "catalog.yaml"),))
    cache.preload(file for dataset in plan.datasets for file in dataset.all_files)
    backend = S3Backend(S3Settings(s3_dir=S3Destination(bucket, prefix)), n_jobs)
    result = run(plan, backend, RunSettings(n_jobs=n_jobs), cache, progress_factory(quiet=True, no_progress=True))
    cache.close()
    content = [op for op in result.ops if not op.is_catalog]
    failed = [op for op in content if op.status is not Status.UPLOADED]
    for op in failed[:3]:
        print(f"bookkeeping alone: {op.destination}: {op.status.value} {op.error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

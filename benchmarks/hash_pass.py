#!/usr/bin/env python3
"""Our first-upload hash pass on its own: the digests `upload_aws` computes for every file.

The `large` workload runs it beside s5cmd ('s5cmd + hash pass'): s5cmd's
speed plus the integrity work we do and s5cmd does not, on the same cores.

    python benchmarks/hash_pass.py DIRECTORY
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uploader.local.catalog import Group
from uploader.local.digests import digests, part_md5_name
from uploader.local.hash_cache import HashCache
from uploader.local.plan import LocalFile, resolve_local_file
from uploader.s3.writer import part_size


def main() -> int:
    source = Path(sys.argv[1])
    names = [entry.name for entry in os.scandir(source) if entry.is_file() and entry.name[0] != "."]
    files = [file for name in names if (file := resolve_local_file(source, name, Group.BASICS, "hash pass", []))]
    cache = HashCache(None)

    def hash_one(file: LocalFile) -> None:
        digests(file, ("sha256", part_md5_name(part_size(file.size))), cache)

    with ThreadPoolExecutor(8) as pool:  # as upload_aws's 8 jobs do
        list(pool.map(hash_one, files))
    return 0


if __name__ == "__main__":
    sys.exit(main())

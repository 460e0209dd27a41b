"""Where an upload_aws run publishes: a bucket, a key prefix, and the key of every file."""

from __future__ import annotations

from dataclasses import dataclass

from uploader.errors import InputError, UsageError
from uploader.local.plan import Dataset, UploadPlan
from uploader.s3.own_keys import OWN_KEY_MARK, is_tool_key

MAX_KEY_BYTES = 1024  # S3's limit on a key, in UTF-8 bytes


@dataclass(frozen=True)
class S3Destination:
    """A bucket and a key prefix (no leading or trailing slash)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> S3Destination:
        """Parse `s3://bucket[/prefix]`; raise UsageError naming --s3-dir otherwise."""
        if not uri.startswith("s3://"):
            raise UsageError(f"--s3-dir {uri}: must look like s3://BUCKET/PREFIX")
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        if not (3 <= len(bucket) <= 63) or not all(c.isalnum() or c in ".-_" for c in bucket) \
                or not bucket[0].isalnum():
            raise UsageError(f"--s3-dir {uri}: '{bucket}' is not a valid bucket name")
        if bucket.endswith("--x-s3"):
            raise UsageError(f"--s3-dir {uri}: '{bucket}' is an S3 Express One Zone directory bucket, which the viewer"
                             " cannot read (public access is always blocked there) and which takes no Content-MD5"
                             " and gives no MD5 ETags, by which every upload is verified; use a general purpose"
                             " bucket")
        prefix = "/".join(part for part in prefix.split("/") if part)
        if any(part in (".", "..") for part in prefix.split("/")):
            raise UsageError(f"--s3-dir {uri}: the prefix must not contain '.' or '..' parts")
        return cls(bucket, prefix)

    def key(self, dataset: Dataset, name: str) -> str:
        """The object key of a file: exactly <prefix>/<dataset subdir>/<catalog file name>."""
        return "/".join(part for part in (self.prefix, dataset.subdir, name) if part)

    def check_keys(self, plan: UploadPlan) -> None:
        """Every key the plan writes fits S3 and is not one of the tool's own; InputError before anything is sent."""
        problems = []
        for dataset in plan.datasets:
            for file in dataset.all_files:
                key = self.key(dataset, file.name)
                where = f"{dataset.in_dir / file.name}"
                if (size := len(key.encode("utf-8"))) > MAX_KEY_BYTES:
                    problems.append(f"{where}: its S3 key is {size:,d} bytes, over S3's limit of {MAX_KEY_BYTES:,d};"
                                    " shorten the file name (and the catalog's entry) or the --s3-dir prefix")
                elif is_tool_key(key, self.prefix):
                    problems.append(f"{where}: names beginning with '{OWN_KEY_MARK}' are kept for this tool's own"
                                    " bookkeeping on the bucket; rename the file (and the catalog's entry)")
        if problems:
            raise InputError(problems)

    def dataset_prefix(self, dataset: Dataset) -> str:
        base = "/".join(part for part in (self.prefix, dataset.subdir) if part)
        return f"{base}/" if base else ""

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key or self.prefix}"

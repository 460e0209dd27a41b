"""The keys the tool keeps for itself under a destination prefix: one rule, used everywhere.

Leases (`<prefix>/.cartload-uploader/runs/<run>.json`), the write check's
key (`<prefix>/.cartload-uploader-write-check`) and anything else under
`<prefix>/.cartload-uploader/`: every path part below the prefix that begins
with OWN_KEY_MARK. Such a key is never a dataset's file: the listing leaves it
out (so it is never compared, verified or removed by --delete), the plan may
not name one, and the viewer check never reads one.
"""

from __future__ import annotations

OWN_KEY_MARK = ".cartload-uploader"
LEASES_DIR = f"{OWN_KEY_MARK}/runs"  # a run's lease: <prefix>/.cartload-uploader/runs/<run>.json
WRITE_CHECK_NAME = f"{OWN_KEY_MARK}-write-check"  # the write check's multipart upload: <prefix>/<this>


def is_tool_key(key: str, prefix: str) -> bool:
    """Whether `key` is one the tool keeps under `prefix` (a path part below it begins with OWN_KEY_MARK).

    `prefix` is the destination's (or a dataset's) prefix, with or without a trailing '/': only the part of
    the key below it counts, so a user's prefix that itself holds the mark does not hide the dataset.
    """
    base = prefix.rstrip("/")
    below = key[len(base):] if base and key.startswith(base + "/") else key
    return any(part.startswith(OWN_KEY_MARK) for part in below.split("/"))

"""What a Zenodo run checks before and after sending, and the lines it ends with.

Before anything is created: Zenodo's limits, counting the files that stay.
After the files: one listing must show exactly the planned names with the
local MD5s, else nothing is published. Then the lines the user reads: the
published record and its DOI (and the concept DOI every version shares), or
the draft to review.
"""

from __future__ import annotations

from uploader.engine.operations import Action, Operation
from uploader.errors import NotPublished
from uploader.zenodo.client import ZenodoClient
from uploader.zenodo.records import DepositionFile, ZenodoDeposition
from uploader.zenodo.settings import MAX_BYTES

MAX_FILES = 100


def limit_problems(remote: dict[str, DepositionFile], ops: list[Operation], max_record_bytes: int) -> list[str]:
    """Zenodo's limits on the record as it will be: the planned files and those already there that stay."""
    planned = {op.destination: op.size for op in ops if op.file is not None}
    deleted = {op.destination for op in ops if op.action is Action.DELETE}
    staying = {name: f.size for name, f in remote.items() if name not in deleted and name not in planned}
    final = staying | planned
    problems = [f"'{name}' is {size:,d} bytes; Zenodo takes at most {MAX_BYTES:,d} per file"
                for name, size in planned.items() if size > MAX_BYTES]
    if len(final) > MAX_FILES:
        problems.append(f"the record would hold {len(final)} files ({len(staying)} already there); Zenodo allows"
                        f" {MAX_FILES}: zip small files together, or use --restart to drop old ones")
    if sum(final.values()) > max_record_bytes:
        problems.append(f"the record would hold {sum(final.values()):,d} bytes; Zenodo allows {max_record_bytes:,d}"
                        " (ask Zenodo for more and pass the new limit with --max-record-bytes, or split the dataset)")
    return problems


def check_holds_the_plan(client: ZenodoClient, target: ZenodoDeposition, ops: list[Operation],
                         decided_against: set[str]) -> None:
    """One listing: exactly the planned names (plus the files that stay), each with the local MD5."""
    listing = {f.name: f for f in client.files(target)}
    planned = {op.destination: op for op in ops if op.file is not None}
    deleted = {op.destination for op in ops if op.action is Action.DELETE}
    staying = decided_against - deleted - set(planned)
    problems = [f"'{name}' is missing" for name in planned if name not in listing]
    problems += [f"'{name}' holds other bytes" for name, op in planned.items()
                 if name in listing and op.digests.get("md5") not in (None, listing[name].md5)]
    problems += [f"'{name}' should not be there" for name in sorted(set(listing) - set(planned) - staying)]
    if problems:
        raise NotPublished(f"the draft {target.page} does not hold exactly the planned files"
                           f" ({'; '.join(problems[:5])}); nothing was published: re-run to repair it")


def published_lines(published: ZenodoDeposition, target: ZenodoDeposition) -> list[str]:
    """What a publish made: the record's page, and its DOI with the concept DOI (every version's) when there is one."""
    page = published.links.get("record_html") or published.links.get("latest_html") or published.page
    concept = f" (all versions: {published.conceptdoi})" if published.conceptdoi else ""
    doi = f"DOI: {published.doi}{concept}"
    if target.submitted:
        return [f"published the metadata edit of {page}: same DOI {published.doi}, no file changed", doi]
    if target.conceptdoi:
        return [f"published a new version: {page} (a new DOI; the earlier versions keep theirs)", doi]
    return [f"published: {page}", doi]


def draft_line(target: ZenodoDeposition) -> str:
    """Where the unpublished changes are, to review and publish."""
    if target.submitted:
        return f"metadata edit open: {target.page} (review it there, then publish; the DOI stays {target.doi})"
    if target.conceptdoi:
        return f"new version draft: {target.page} (review it there, then publish; it gets a new DOI)"
    return f"draft: {target.page} (review it there, then publish)"


def removal_lines(ops: list[Operation]) -> list[str]:
    """Each file this run removed from the record because the dataset does not have it (named, as asked)."""
    return [f"removed {op.destination} ({op.reason})" for op in ops
            if op.action is Action.DELETE and op.file is None and op.status.value == "deleted"
            and op.reason.endswith("not in this dataset")]

"""What a run tells the user: the dry-run plan, the summary, and the JSON report.

The plan table and the JSON report are data (stdout or a file); the summary
is a message (stderr).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from uploader import __version__
from uploader.engine.operations import Action, Operation, Status
from uploader.engine.progress import human_bytes
from uploader.engine.readiness import Readiness
from uploader.engine.runner import RunResult
from uploader.errors import UsageError
from uploader.redact import redact

if TYPE_CHECKING:
    from uploader.local.plan import Share


def print_plan(ops: list[Operation], stream: TextIO = sys.stdout, share: Share | None = None) -> None:
    """The dry-run listing: this worker's share (with --shard), one line per operation, then totals."""
    if share is not None:
        print(share_line(share), file=stream)
    for op in ops:
        print(f"{op.action.value:<8} {_size_shown(op):>14,d}  {op.destination}  ({op.reason})", file=stream)
    sending = [op for op in ops if op.transfers_bytes]
    updating = sum(op.action is Action.UPDATE for op in ops)
    deleting = [op for op in ops if op.action is Action.DELETE and not op.is_catalog]
    withdrawn = sum(op.action is Action.DELETE and op.is_catalog for op in ops)  # published again afterwards
    print(f"dry run: {len(sending)} file(s) to upload ({human_bytes(sum(op.size for op in sending))}), "
          + (f"{updating} to update in place, " if updating else "")
          + f"{sum(op.action is Action.SKIP for op in ops)} unchanged, "
          f"{len(deleting)} to delete ({human_bytes(sum(_size_shown(op) for op in deleting))})"
          + (f", {withdrawn} live catalog(s) withdrawn first and published again" if withdrawn else "")
          + "; nothing was changed", file=stream)


def _size_shown(op: Operation) -> int:
    """The file's size; for a deletion, the size of the object it removes."""
    return op.remote.size if op.file is None and op.remote is not None else op.size


def share_line(share: Share) -> str:
    """What one --shard worker sends, of the whole plan, and the plan's fingerprint (the same on every worker)."""
    parts = []
    if share.whole:
        parts.append(f"whole: {_names(share.whole)}")
    if share.partial:
        parts.append(f"part of: {_names(share.partial)}")
    held = f" ({'; '.join(parts)})" if parts else ""
    origin = f", {share.shard.origin}" if share.shard.origin not in ("", "--shard") else ""
    return (f"shard {share.shard}{origin}: {share.files} of {share.plan_files} file(s),"
            f" {human_bytes(share.bytes)} of {human_bytes(share.plan_bytes)}{held}; plan {share.fingerprint}"
            " (every worker must show the same)")


def _names(subdirs: tuple[str, ...], shown: int = 5) -> str:
    """The first few datasets, by sub-directory."""
    return ", ".join(subdirs[:shown]) + (f" and {len(subdirs) - shown} more" if len(subdirs) > shown else "")


def summary(result: RunResult) -> str:
    """One line: counts, bytes, time and rate."""
    sent = result.bytes_uploaded - result.bytes_resumed
    rate = sent / result.elapsed if result.elapsed > 0 else 0.0
    resumed = f", {human_bytes(result.bytes_resumed)} of it resumed" if result.bytes_resumed else ""
    parts = [f"{result.count(Status.UPLOADED)} uploaded ({human_bytes(result.bytes_uploaded)}{resumed})"]
    if result.count(Status.UPDATED):
        parts.append(f"{result.count(Status.UPDATED)} updated in place")
    parts.append(f"{result.count(Status.SKIPPED)} unchanged")
    if result.count(Status.DELETED):
        parts.append(f"{result.count(Status.DELETED)} deleted")
    parts.append(f"{result.count(Status.FAILED)} failed")
    if result.count(Status.NOT_RUN):
        parts.append(f"{result.count(Status.NOT_RUN)} not started")
    if result.count(Status.WAITING):
        parts.append(f"{result.count(Status.WAITING)} catalog(s) waiting for files other runs send")
    return f"{', '.join(parts)} in {result.elapsed:.1f} s ({human_bytes(rate)}/s)"


def failure_lines(result: RunResult) -> list[str]:
    """One line per failed file, with its reason."""
    return [f"failed: {op.destination}: {op.error}" for op in result.ops if op.status is Status.FAILED]


def report_document(result: RunResult, command: str, destination: str, warnings: list[str] | None = None,
                    readiness: Readiness | None = None, share: Share | None = None,
                    record: dict[str, Any] | None = None) -> dict[str, Any]:
    """The --report JSON: per file, totals, elapsed time and overall outcome."""
    files = [_file_entry(op) for op in result.ops]
    return {
        "tool": f"cartload-uploader {__version__}",
        "command": redact(command),
        "destination": redact(destination),
        "dry_run": result.dry_run,
        "ok": result.ok,
        "exit_status": int(result.final_status(readiness)),
        "error": _error(result),
        "interrupted": result.interrupted,
        "not_published": result.not_published,
        "offline": result.offline,
        "stalled": result.stalled,
        # Whether the readers (the web viewer) can use what was published: null when not checked.
        "viewer_ready": readiness.ready if readiness else None,
        "viewer": readiness.report if readiness else None,
        "elapsed_seconds": round(result.elapsed, 3),
        # With --shard: this worker's share (what it sends, of the whole plan); null otherwise.
        "shard": share.as_report() if share else None,
        # upload_zenodo: the record's license, reserved DOI, DOI and communities; null for upload_aws.
        "record": record,
        "totals": {
            "files": len(files),
            "bytes": sum(op.size for op in result.ops),
            "bytes_uploaded": result.bytes_uploaded,
            "bytes_resumed": result.bytes_resumed,
            **{status.value: result.count(status) for status in Status if status is not Status.PENDING},
        },
        "notes": result.notes,
        "warnings": warnings or [],
        "files": files,
    }


def _file_entry(op: Operation) -> dict[str, Any]:
    return {
        "name": op.file.name if op.file else op.destination,
        "size": op.size,
        "destination": op.destination,
        "action": op.action.value,
        "status": op.status.value,
        "reason": op.error or op.reason,
        "checksum": op.checksum,
        "resumed_bytes": op.resumed,
        "catalog": op.is_catalog,
        **({"store_says": op.store_says} if op.store_says else {}),  # a catalog update cut short (settle.py)
    }


def _error(result: RunResult) -> str:
    """The report's one-line error: "" for a run that succeeded."""
    failed = result.count(Status.FAILED)
    return result.not_published or ("interrupted" if result.interrupted else "") \
        or (f"{failed} file(s) failed; the catalog "
            + ("is published" if result.catalogs_published else "was not published") if failed else "")


def failure_document(command: str, exit_status: int, message: str, *, dry_run: bool = False,
                     interrupted: bool = False, problems: list[str] | None = None) -> dict[str, Any]:
    """The --report JSON of a run that stopped before any file was sent (bad input, credentials, remote).

    Shaped like report_document's, so that a CI step reads `ok`, `exit_status` and `error` either way.
    `problems` is every problem found, when the message shows only the first ones.
    """
    problems = problems or message.splitlines() or [""]
    more = f" (and {len(problems) - 1} more problem(s): see 'problems')" if len(problems) > 1 else ""
    return {
        "tool": f"cartload-uploader {__version__}",
        "command": command,
        "destination": "",
        "dry_run": dry_run,
        "ok": False,
        "exit_status": exit_status,
        "error": problems[0] + more,
        "problems": problems,
        "interrupted": interrupted,
        "not_published": "",
        "elapsed_seconds": 0.0,
        "totals": {"files": 0, "bytes": 0, "bytes_uploaded": 0,
                   **{status.value: 0 for status in Status if status is not Status.PENDING}},
        "notes": [],
        "files": [],
    }


def write_report(path: Path, document: dict[str, Any]) -> None:
    """Write the report atomically ('-' means stdout)."""
    text = json.dumps(document, indent=2) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
        return
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        raise UsageError(f"--report {path}: cannot write it ({exc.strerror}); choose a writable path") from None

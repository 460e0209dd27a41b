"""Auditing a published dataset against the local one, read-only: verify_aws and verify_zenodo.

The dataset is the plan upload_* makes (plan.py); what is published is the
remote's listing of each dataset (the backend's `remote_files`). Each
planned file gets a verdict:
- same: the same size, and equal content by the engine's one rule
  (decide.py's: the remote vouches for a digest, and every digest it vouches
  for agrees with the local file's). The listing's digests come
  first (S3's ETag, Zenodo's MD5); when they tell nothing, one request more
  (S3's stored SHA-256); a catalog they leave unproven is read. With `deep`,
  every remote file is downloaded and hashed instead, and only those bytes
  are trusted.
- missing, different (size or content), or unproven (the same size, but the
  remote vouches for no digest this tool can compute: --deep settles it);
- and every remote file under a dataset's prefix its catalog does not name
  is extra (the files --delete would remove; never the tool's own keys).

Nothing is written to the remote. Local digests come from the local hash
cache, as a re-run of upload_* finds them, and new ones are kept there.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from uploader.engine.decide import disagreeing_digest, extra_remote_files, vouched
from uploader.engine.operations import RemoteFile
from uploader.engine.settings import flag, option
from uploader.local.digests import digest_files
from uploader.local.hash_cache import HashCache
from uploader.local.plan import Dataset, LocalFile, UploadPlan


@dataclass(frozen=True, kw_only=True)
class AuditSettings:
    """The option both verify commands add to the shared ones (engine.settings.RunSettings)."""

    deep: bool = option(flag("--deep"), "--deep", default=False)  # read every remote byte, trust no listing


class PublishedRemote(Protocol):
    """What an audit needs of a destination: names, listings, digests and bytes; it never writes."""

    def destination(self, dataset: Dataset, name: str) -> str:
        """Where a file of `dataset` called `name` is published (an S3 key, a Zenodo file name)."""

    def remote_files(self, dataset: Dataset) -> dict[str, RemoteFile]:
        """What is on the remote where `dataset` is published, by destination name."""

    def digests_on_request(self, remote: RemoteFile) -> dict[str, str]:
        """Digests that cost a request to learn, when the listing's do not tell."""

    def downloaded_digests(self, remote: RemoteFile, names: Sequence[str]) -> dict[str, str]:
        """The digests `names` of the remote file's bytes, read whole (in bounded memory)."""


class Verdict(enum.Enum):
    SAME = "same"
    MISSING = "missing"
    DIFFERENT = "different"
    UNPROVEN = "unproven"
    EXTRA = "extra"


@dataclass
class FileAudit:
    """One file's verdict: a planned file against its remote copy, or a remote file no catalog names."""

    destination: str
    verdict: Verdict
    reason: str
    file: LocalFile | None  # None for an extra remote file
    remote: RemoteFile | None  # None for a missing one
    dataset: Dataset
    is_catalog: bool = False

    def as_report(self) -> dict[str, object]:
        return {"destination": self.destination, "verdict": self.verdict.value, "reason": self.reason,
                "local": self.file.name if self.file else None, "size": self.file.size if self.file else None,
                "remote_size": self.remote.size if self.remote else None, "catalog": self.is_catalog}


DEEP_DIGEST = "sha256"  # --deep: the digest of the downloaded bytes, compared with the local file's


def audit(plan: UploadPlan, remote: PublishedRemote, cache: HashCache, *, deep: bool, workers: int,
          deep_digest: str = DEEP_DIGEST) -> list[FileAudit]:
    """Every planned file's verdict (in the plan's order), then the extra remote files."""
    listings = _listings(plan, remote, workers)
    planned = _planned(plan, remote, listings)
    same_size = [entry for entry in planned if entry.verdict is Verdict.SAME]
    if deep:
        _settle_by_download(same_size, remote, cache, workers, deep_digest)
    else:
        _settle_by_digests(same_size, remote, cache, workers)
        # A catalog is small, and whether the live one is this one matters most: read it rather than not know.
        unproven = [entry for entry in same_size if entry.is_catalog and entry.verdict is Verdict.UNPROVEN]
        _settle_by_download(unproven, remote, cache, workers, deep_digest)
    return planned + _extras(plan, remote, listings, {entry.destination for entry in planned})


def _listings(plan: UploadPlan, remote: PublishedRemote, workers: int) -> dict[str, dict[str, RemoteFile]]:
    """Each dataset's remote files by its subdir; a collection's samples listed side by side."""
    with ThreadPoolExecutor(max(1, min(workers, len(plan.datasets))), thread_name_prefix="list") as pool:
        found = list(pool.map(remote.remote_files, plan.datasets))
    return {dataset.subdir: listing for dataset, listing in zip(plan.datasets, found, strict=True)}


def _planned(plan: UploadPlan, remote: PublishedRemote,
             listings: dict[str, dict[str, RemoteFile]]) -> list[FileAudit]:
    """A verdict by name and size for every file a catalog names (each destination once); SAME is provisional."""
    entries: list[FileAudit] = []
    seen: set[str] = set()
    for dataset in plan.datasets:
        for file in (*dataset.all_files, *dataset.checked_only):
            destination = remote.destination(dataset, file.name)
            if destination in seen:  # a collection's root names its samples' files
                continue
            seen.add(destination)
            found = listings[dataset.subdir].get(destination)
            entry = FileAudit(destination, Verdict.SAME, "", file, found, dataset, file is dataset.catalog)
            if found is None:
                entry.verdict, entry.reason = Verdict.MISSING, "not on the remote"
            elif found.size != file.size:
                entry.verdict = Verdict.DIFFERENT
                entry.reason = f"size differs (remote {found.size:,d} bytes, local {file.size:,d})"
            entries.append(entry)
    return entries


def _settle_by_digests(entries: list[FileAudit], remote: PublishedRemote, cache: HashCache, workers: int) -> None:
    """Same size: the listing's digests decide; a request more where they vouch for none."""
    jobs = [(_local(entry), list(vouched(_remote(entry).digests))) for entry in entries]
    for entry, local in zip(entries, digest_files(jobs, cache, workers), strict=True):
        remote_digests = vouched(_remote(entry).digests)
        if not remote_digests:
            remote_digests = vouched(remote.digests_on_request(_remote(entry)))
            local = digest_files([(_local(entry), list(remote_digests))], cache, 1)[0] if remote_digests else {}
        _judge(entry, remote_digests, local)


def _settle_by_download(entries: list[FileAudit], remote: PublishedRemote, cache: HashCache, workers: int,
                        digest: str) -> None:
    """--deep: every remote file read whole and hashed; its bytes alone are trusted."""
    if not entries:
        return
    for entry in entries:
        entry.verdict = Verdict.SAME  # judged again, by the bytes
    locals_ = digest_files([(_local(entry), [digest]) for entry in entries], cache, workers)
    with ThreadPoolExecutor(max(1, min(workers, len(entries))), thread_name_prefix="download") as pool:
        read = list(pool.map(lambda entry: remote.downloaded_digests(_remote(entry), [digest]), entries))
    for entry, local, remote_digests in zip(entries, locals_, read, strict=True):
        _judge(entry, remote_digests, local, downloaded=True)


def _judge(entry: FileAudit, remote_digests: dict[str, str], local: dict[str, str], *,
           downloaded: bool = False) -> None:
    """The engine's one rule (decide.py): a digest vouched for, and none that disagrees."""
    how = "downloaded and hashed" if downloaded else "the remote's"
    if not remote_digests:
        entry.verdict = Verdict.UNPROVEN
        entry.reason = "same size, but the remote vouches for no digest this tool can compute; --deep reads it"
    elif disagreeing_digest(remote_digests, local) is not None:
        entry.verdict, entry.reason = Verdict.DIFFERENT, f"content differs (same size; {how} digest disagrees)"
    else:
        entry.reason = f"same size and {next(iter(remote_digests)).split(':')[0]} ({how})"


def _extras(plan: UploadPlan, remote: PublishedRemote, listings: dict[str, dict[str, RemoteFile]],
            planned: set[str]) -> list[FileAudit]:
    found: dict[str, FileAudit] = {}
    for dataset in plan.datasets:
        for extra in extra_remote_files(dataset, listings[dataset.subdir], remote, plan):
            if extra.name not in planned and extra.name not in found:
                found[extra.name] = FileAudit(extra.name, Verdict.EXTRA, "on the remote, but no catalog names it",
                                              None, extra, dataset)
    return [found[name] for name in sorted(found)]


def _local(entry: FileAudit) -> LocalFile:
    assert entry.file is not None
    return entry.file


def _remote(entry: FileAudit) -> RemoteFile:
    assert entry.remote is not None
    return entry.remote

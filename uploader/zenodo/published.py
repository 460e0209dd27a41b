"""A published Zenodo record, read through the public records API: what verify_zenodo compares with.

`GET /api/records/<id>` answers anyone for a published, open record (no
token): zenodo-rdm's ZenodoJSONSerializer lists its files with their key,
size, "md5:<hex>" checksum and a link to their content. A token, when given,
is sent too (a record whose files are restricted). Nothing here writes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from uploader.engine.operations import RemoteFile
from uploader.errors import RemoteError, UsageError
from uploader.local.plan import Dataset
from uploader.zenodo.pacing import ZenodoTiming
from uploader.zenodo.records import ZenodoToken
from uploader.zenodo.transport import ZenodoTransport

READ_BLOCK = 1024 * 1024
ANY = {"Accept": "*/*"}  # a file's content, whatever its type (the session asks for JSON)
# The record as Zenodo's own JSON, whose `files` list their MD5s (zenodo-rdm site/zenodo_rdm/resources.py
# answers it, and application/json, with ZenodoJSONSerializer).
ZENODO_JSON = {"Accept": "application/vnd.zenodo.v1+json"}


class PublishedRecord:
    """One published record's files (see engine.audit.PublishedRemote)."""

    def __init__(self, api_url: str, record_id: int, token: ZenodoToken, timing: ZenodoTiming,
                 connections: int = 4) -> None:
        self.http = ZenodoTransport(api_url, token, connections + 2, timing)
        self.record_id = record_id
        self.record: dict[str, Any] = {}

    def load(self, *, latest: bool = False) -> None:
        """Read the record (`latest`: its concept's latest version instead); an id that is no published record
        is bad input (exit 2), said with what to check."""
        self.record = self._get(f"/records/{self.record_id}")
        if latest and (link := self.newer_version()):
            self.record = self._get(link)  # Zenodo answers with a redirect to the latest version

    def _get(self, path: str) -> dict[str, Any]:
        what = f"record {self.record_id}"
        try:
            return dict(self.http.call("GET", path, what=what, headers=ZENODO_JSON).json())
        except UsageError as exc:
            raise UsageError(f"--zenodo-id {self.record_id}: {exc}; a draft has no public record until it is"
                             " published") from None
        except ValueError:
            raise RemoteError(f"{what}: Zenodo's answer is not JSON; check --zenodo-url") from None

    @property
    def id(self) -> str:
        return str(self.record.get("id", self.record_id))

    @property
    def page(self) -> str:
        return str(self.record.get("links", {}).get("html") or f"{self.http.host}/records/{self.record_id}")

    @property
    def doi(self) -> str:
        return str(self.record.get("doi") or "")

    def newer_version(self) -> str:
        """The latest version's API link when this record is not the latest version of its concept, else ""."""
        versions = (self.record.get("metadata", {}).get("relations", {}) or {}).get("version") or [{}]
        if versions[0].get("is_last", True):
            return ""
        return str(self.record.get("links", {}).get("latest", ""))

    def destination(self, dataset: Dataset, name: str) -> str:
        return name  # a record is flat: no folders

    def remote_files(self, dataset: Dataset) -> dict[str, RemoteFile]:
        found = {}
        for entry in self.record.get("files") or []:
            checksum = str(entry.get("checksum", ""))
            digests = {"md5": checksum.removeprefix("md5:")} if checksum.startswith("md5:") else {}
            found[str(entry["key"])] = RemoteFile(str(entry["key"]), int(entry["size"]), digests,
                                                  handle=str(entry.get("links", {}).get("self", "")))
        return found

    def digests_on_request(self, remote: RemoteFile) -> dict[str, str]:
        return {}  # the record's MD5 is all Zenodo keeps

    def read(self, remote: RemoteFile) -> bytes:
        return bytes(self.http.call("GET", remote.handle, what=f"reading {remote.name}", headers=ANY).content)

    def downloaded_digests(self, remote: RemoteFile, names: Sequence[str]) -> dict[str, str]:
        """The file's content streamed (one block at a time in memory) and hashed."""
        hashers = {name: hashlib.new(name) for name in names}
        response = self.http.call("GET", remote.handle, what=f"reading {remote.name}", stream=True, headers=ANY)
        read = 0
        try:
            for block in response.iter_content(READ_BLOCK):
                read += len(block)
                for hasher in hashers.values():
                    hasher.update(block)
        except self.http.requests.RequestException as exc:
            raise RemoteError(f"reading {remote.name} from Zenodo was cut ({type(exc).__name__}); re-run") from None
        finally:
            response.close()
        if read != remote.size:
            raise RemoteError(f"reading {remote.name} from Zenodo gave {read:,d} of {remote.size:,d} bytes; re-run")
        return {name: hasher.hexdigest() for name, hasher in hashers.items()}

"""What the uploader keeps of Zenodo's answers: a deposition and its files; and the token, never shown."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ZenodoToken:
    """A personal access token; its repr never shows it."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "ZenodoToken(****)"


@dataclass
class DepositionFile:
    name: str
    size: int
    md5: str
    id: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DepositionFile:
        # The file list gives the bare MD5; the bucket's answers prefix it with "md5:".
        return cls(data["filename"], int(data["filesize"]), str(data["checksum"]).removeprefix("md5:"),
                   str(data.get("id", "")))


@dataclass
class ZenodoDeposition:
    """What the uploader knows of one deposition."""

    id: int
    conceptrecid: str
    submitted: bool  # published (also while a published record's metadata edit is open)
    state: str  # "unsubmitted" (a draft), "inprogress" (a published record being edited), "done"
    metadata: dict[str, Any]
    links: dict[str, str]
    files: dict[str, DepositionFile]
    doi: str = ""
    conceptdoi: str = ""  # only once a first version of the concept is published
    created: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ZenodoDeposition:
        files = {f.name: f for f in map(DepositionFile.from_json, data.get("files") or [])}
        submitted = bool(data.get("submitted"))
        return cls(id=int(data["id"]), conceptrecid=str(data.get("conceptrecid", "")), submitted=submitted,
                   state=str(data.get("state") or ("done" if submitted else "unsubmitted")),
                   metadata=dict(data.get("metadata") or {}), links=dict(data.get("links") or {}), files=files,
                   doi=str(data.get("doi") or ""), conceptdoi=str(data.get("conceptdoi") or ""),
                   created=str(data.get("created") or ""))

    @property
    def bucket(self) -> str:
        return self.links["bucket"]

    @property
    def title(self) -> str:
        return str(self.metadata.get("title", ""))

    @property
    def page(self) -> str:
        """The deposition's web page."""
        return self.links.get("html") or self.links.get("record_html") or str(self.id)

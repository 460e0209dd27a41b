"""What a run tells about the record itself: its reserved DOI, its license, its communities.

- The reserved DOI: every deposition's legacy view carries `metadata.prereserve_doi` (zenodo-rdm
  `legacy/serializers/schemas/legacyjson.py` dump_prereserve_doi), the DOI it will be published under; it is
  told as soon as a new draft exists, so that a lab can cite it before publishing.
- Communities: on publish, zenodo-rdm (`legacy/services.py` publish) turns the legacy `communities` field
  into inclusion requests and swallows every error; so after publishing, the record's communities (accepted)
  and its requests (submitted) are read back, and a community in neither failed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from uploader.errors import UploaderError
from uploader.zenodo import metadata, record_metadata
from uploader.zenodo.client import ZenodoClient
from uploader.zenodo.records import ZenodoDeposition

NOT_MADE = ("no request was made: the community does not exist, or takes no records from you"
            " (Zenodo does not say which when publishing)")


def reserved_doi(deposition: ZenodoDeposition) -> str:
    reserved = deposition.metadata.get("prereserve_doi")
    return str(reserved.get("doi", "")) if isinstance(reserved, dict) else ""


@dataclass
class RecordOutcome:
    """The record-level facts of a run, for the summary and the report's `record`."""

    license: str = ""
    reserved_doi: str = ""
    doi: str = ""
    communities: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> {"status": ..., "reason": ...}
    metadata_to_send: dict[str, Any] | None = None  # a dry run: what would be sent

    def lines(self) -> list[str]:
        found = [self.license] if self.license else []
        if self.reserved_doi and not self.doi:
            found.append(f"reserved DOI: {self.reserved_doi} (the record is published under it; cite it now)")
        for identifier, state in self.communities.items():
            reason = f": {state['reason']}" if state.get("reason") else ""
            found.append(f"community {identifier}: {state['status']}{reason}")
        if self.metadata_to_send is not None:
            shown = json.dumps(self.metadata_to_send, indent=2, ensure_ascii=False)
            found.append(f"metadata that would be sent (dry run): {shown}")
        return found

    def report(self) -> dict[str, Any]:
        return {"license": self.license.removeprefix("license: "), "reserved_doi": self.reserved_doi,
                "doi": self.doi, "communities": self.communities, "metadata_to_send": self.metadata_to_send}


def summary_of(wanted: dict[str, Any], held: ZenodoDeposition | None, published: ZenodoDeposition | None,
               communities: dict[str, dict[str, str]], *, dry_run: bool) -> RecordOutcome:
    """The outcome told: `held` is the deposition the run ended on (the published one, the draft, the record)."""
    outcome = RecordOutcome(license=record_metadata.license_line(wanted, held.metadata if held else None),
                            reserved_doi=reserved_doi(held) if held else "",
                            doi=published.doi if published else "", communities=communities)
    if dry_run:
        outcome.metadata_to_send = metadata.changes(held.metadata, wanted) if held else dict(wanted)
    return outcome


def community_states(client: ZenodoClient, published: ZenodoDeposition,
                     wanted: list[str]) -> dict[str, dict[str, str]]:
    """Each wanted community: accepted (the record is in it), submitted (awaiting its curators), or failed."""
    if not wanted:
        return {}
    try:
        accepted = {_slug(c) for c in client.records.record_communities(published.id)}
        submitted = _submitted(client, published)
    except UploaderError as exc:
        return {c: {"status": "unknown", "reason": f"could not read the record's requests ({exc})"} for c in wanted}
    return {c: {"status": "accepted"} if c in accepted else {"status": "submitted", "reason": "awaiting the"
            " community's curators"} if c in submitted else {"status": "failed", "reason": NOT_MADE}
            for c in wanted}


def without_pending_communities(client: ZenodoClient, record: ZenodoDeposition,
                                wanted: dict[str, Any]) -> dict[str, Any]:
    """`wanted` without the communities the published record already asked to join (the deposit API shows only
    those that accepted it): a re-run does not edit the record to ask again."""
    asked = wanted_communities(wanted)
    if not asked or set(asked) <= set(wanted_communities(record.metadata)):
        return wanted
    try:
        pending = _submitted(client, record)
    except UploaderError:
        return wanted  # unknown: asking again is harmless (Zenodo keeps one open request)
    left = [c for c in wanted["communities"] if str(c.get("identifier")) not in pending]
    return {**wanted, "communities": left} if left else {k: v for k, v in wanted.items() if k != "communities"}


def _submitted(client: ZenodoClient, record: ZenodoDeposition) -> set[str]:
    """The communities the record's inclusion requests await."""
    return {_slug(r.get("expanded", {}).get("receiver", {})) for r in client.records.record_requests(record.id)
            if r.get("type") == "community-inclusion" and r.get("status") == "submitted"}


def _slug(community: Mapping[str, Any]) -> str:
    return str(community.get("slug") or community.get("id") or "")


def wanted_communities(metadata: Mapping[str, Any]) -> list[str]:
    return [str(c.get("identifier")) for c in metadata.get("communities") or [] if isinstance(c, dict)]

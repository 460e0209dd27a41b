"""Zenodo's records API (InvenioRDM's own), read where the deposit API's view is too narrow.

The deposit API (`/api/deposit/depositions`) is a compatibility layer whose
metadata view drops what it cannot express (rdm.py). The records API shows a
record's full metadata (`/api/records/{id}`, or `/api/records/{id}/draft` for
a draft or an open edit) and its place among the versions (`versions.index`).
The uploader only reads it.
"""

from __future__ import annotations

from typing import Any

from uploader.errors import UploaderError
from uploader.zenodo.records import ZenodoDeposition
from uploader.zenodo.transport import ZenodoTransport

# On zenodo.org `application/json` is answered by Zenodo's own serializer (zenodo-rdm site/zenodo_rdm/
# resources.py), which has neither the full metadata nor `versions`: InvenioRDM's JSON is asked for by name.
RDM_JSON = {"Accept": "application/vnd.inveniordm.v1+json"}


class RecordsApi:
    """Reads of the records API, through the same transport (pacing, retries, errors) as every call."""

    def __init__(self, http: ZenodoTransport) -> None:
        self.http = http

    def version_index(self, record: ZenodoDeposition) -> int | None:
        """The published record's version number (1 for the first), if the records API says (only for messages)."""
        try:
            response = self.http.call("GET", f"/records/{record.id}", what=f"record {record.id}", headers=RDM_JSON)
        except UploaderError:
            return None
        index = (response.json().get("versions") or {}).get("index")
        return int(index) if isinstance(index, int) else None

    def full_metadata(self, deposition: ZenodoDeposition) -> dict[str, Any]:
        """All the metadata a deposition holds: a published record as published, a draft or an open edit as such."""
        published = deposition.submitted and deposition.state != "inprogress"
        path = f"/records/{deposition.id}" if published else f"/records/{deposition.id}/draft"
        response = self.http.call("GET", path, what=f"the full metadata of deposition {deposition.id}",
                                  headers=RDM_JSON)
        return dict(response.json().get("metadata") or {})

    # A published record's communities: the deposit API shows only those that accepted it.

    def record_communities(self, record_id: int) -> list[dict[str, Any]]:
        """The communities the record is in (invenio-rdm-records resources/config.py record_communities)."""
        answer = self.http.call("GET", f"/records/{record_id}/communities", what="the record's communities").json()
        return list(answer.get("hits", {}).get("hits", []))

    def record_requests(self, record_id: int) -> list[dict[str, Any]]:
        """The requests about the record, their receivers expanded (resources/config.py record_requests)."""
        answer = self.http.call("GET", f"/records/{record_id}/requests", what="the record's requests",
                                params={"expand": "true", "size": 100}).json()
        return list(answer.get("hits", {}).get("hits", []))

"""What a metadata change through the deposit API would lose of a record's full (RDM) metadata.

Zenodo's deposit API shows and takes a narrower view than what a record
holds, and its PUT replaces the whole metadata (invenio-rdm-records
services/components/metadata.py): whatever the view cannot carry is dropped
the first time the uploader changes a field. The view is built by zenodo-rdm
legacy/serializers/schemas/common.py and read back by
legacy/deserializers/metadata.py, which:
- keep a creator's (or contributor's) first affiliation, by name only (ROR
  ids go), and only ORCID and GND identifiers; organisations come back as
  persons (PersonSchema: `type = Constant("personal")`);
- drop subjects from a vocabulary (those with an `id`): `dump_keywords`;
- keep the first license only, and only one with an id: `resolve_license`;
- keep the first language only: `dump_languages`;
- drop funding without an award (or a funder): `_grant`;
- drop additional titles, and every additional description but the first
  notes and the methods: `dump_additional_descriptions`.
The records API (`/api/records/{id}` and `/api/records/{id}/draft`) shows the
full metadata; this module names what of it the deposit API's view would lose.
"""

from __future__ import annotations

from typing import Any

KEPT_PERSON_IDS = {"orcid", "gnd"}


def legacy_losses(metadata: dict[str, Any]) -> list[str]:
    """The fields of a record's full metadata that a change through the deposit API would drop (none: [])."""
    lost = _people_losses(metadata, "creators") + _people_losses(metadata, "contributors")
    if any(isinstance(s, dict) and s.get("id") for s in metadata.get("subjects") or []):
        lost.append("subjects from a vocabulary")
    rights = metadata.get("rights") or []
    if len(rights) > 1:
        lost.append(f"{len(rights) - 1} license(s) after the first")
    elif rights and not rights[0].get("id"):
        lost.append("a license that is not from Zenodo's list")
    if len(metadata.get("languages") or []) > 1:
        lost.append("languages after the first")
    if any(not (f.get("award") or {}).get("number") and not (f.get("award") or {}).get("id")
           for f in metadata.get("funding") or []):
        lost.append("funding without an award")
    if metadata.get("additional_titles"):
        lost.append("additional titles")
    if _descriptions_lost(metadata.get("additional_descriptions") or []):
        lost.append("additional descriptions")
    return lost


def _people_losses(metadata: dict[str, Any], key: str) -> list[str]:
    people = [p for p in metadata.get(key) or [] if isinstance(p, dict)]
    lost = []
    if any((p.get("person_or_org") or {}).get("type") == "organizational" for p in people):
        lost.append(f"organisations among the {key} (they would come back as persons)")
    if any(len(p.get("affiliations") or []) > 1 for p in people):
        lost.append(f"{key}' second and later affiliations")
    if any(a.get("id") for p in people for a in (p.get("affiliations") or [])[:1]):
        lost.append(f"{key}' affiliation ids (ROR)")
    if any(i.get("scheme") not in KEPT_PERSON_IDS for p in people
           for i in (p.get("person_or_org") or {}).get("identifiers") or []):
        lost.append(f"{key}' identifiers other than ORCID and GND")
    return lost


def _descriptions_lost(descriptions: list[dict[str, Any]]) -> bool:
    kinds = [str((d.get("type") or {}).get("id", "")) for d in descriptions]
    return any(kind not in ("notes", "methods") for kind in kinds) or kinds.count("notes") > 1 \
        or kinds.count("methods") > 1

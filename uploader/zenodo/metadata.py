"""Deposition metadata: what the options change, merged into everything else the deposition holds.

Zenodo's PUT replaces the whole metadata, and fills in defaults for what is
missing (a license, today's publication date): a field left out is a field
lost. So the uploader sends back the full metadata as Zenodo gave it, with
only the fields the options name changed, and checks the answer. A creator
named again keeps the affiliation and ORCID curated on the web page.

Values are compared in Zenodo's normal form (normal.py): "Doe,Jane" is the
"Doe, Jane" Zenodo stored, "Genes & cells" the "Genes &amp; cells": no change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from uploader.zenodo import normal


def changes(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `wanted` (from the options) that differ from `current`, as they are to be sent."""
    changed: dict[str, Any] = {}
    for key, value in wanted.items():
        if key in ("creators", "contributors"):
            if _people_differ(current.get(key), value):
                changed[key] = _merge_creators(current.get(key), value)
        elif key == "communities":
            held = _communities(current.get(key))
            if not _communities(value) <= held:  # one more community: those the record is in stay
                changed[key] = [*(current.get(key) or []), *(c for c in value if _communities([c]) - held)]
        elif key == "related_identifiers":
            added = [item for item in value if _related(item) not in map(_related, current.get(key) or [])]
            if added:  # one more related work: those the record has stay
                changed[key] = [*(current.get(key) or []), *added]
        elif _comparable(key, current.get(key)) != _comparable(key, value):
            changed[key] = value
    return changed


def merged(current: Mapping[str, Any], changed: Mapping[str, Any]) -> dict[str, Any]:
    """The whole metadata to PUT: everything there is, with `changed` applied."""
    return {**current, **changed}


def not_kept(sent: Mapping[str, Any], answer: Mapping[str, Any], changed: Mapping[str, Any]) -> list[str]:
    """Fields Zenodo's answer lost: a changed field not as sent, or a field that was there and is gone."""
    lost = [key for key, value in changed.items() if _comparable(key, answer.get(key)) != _comparable(key, value)]
    lost += [key for key, value in sent.items() if key not in changed and value not in (None, "", [], {})
             and answer.get(key) in (None, "", [], {})]
    return sorted(set(lost))


def _people_differ(current: Any, wanted: list[dict[str, Any]]) -> bool:
    """Other names, or an ORCID, affiliation or role given that the record does not hold (a name alone keeps
    what was curated)."""
    held = {normal.creator_name(str(c.get("name", ""))): c for c in current or [] if isinstance(c, dict)}
    if list(held) != [normal.creator_name(str(c.get("name", ""))) for c in wanted]:
        return True
    return any(_normal(key, c.get(key)) != _normal(key, held[normal.creator_name(str(c["name"]))].get(key))
               for c in wanted for key in c if key != "name")


def _merge_creators(current: Any, wanted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The wanted people; one named again keeps what the record holds of them, unless given anew."""
    known = {normal.creator_name(str(c.get("name", ""))): c for c in current or [] if isinstance(c, dict)}
    return [{**known.get(normal.creator_name(str(c["name"])), {}), **c} for c in wanted]


def _communities(items: Any) -> set[str]:
    return {str(c.get("identifier")) for c in items or [] if isinstance(c, dict)}


def _related(item: Any) -> tuple[str, str]:
    return (str(item.get("relation", "")).lower(), str(item.get("identifier", ""))) if isinstance(item, dict) \
        else ("", str(item))


def _comparable(key: str, value: Any) -> Any:
    """A value in the form to compare: Zenodo shows some licenses by their legacy names (cc0-1.0 as cc-zero),
    and communities in any order."""
    if key == "license" and value:
        from uploader.zenodo.vocabularies import license_id

        name = value.get("id", "") if isinstance(value, dict) else str(value)
        return license_id(name) or name.strip().lower()
    if key == "communities":
        return _communities(value)  # a set on Zenodo's side (common.py resolve_communities): any order
    return _normal(key, value)


def _normal(key: str, value: Any) -> Any:
    return normal.field(key, value)

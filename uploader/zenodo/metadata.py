"""Deposition metadata: what the options change, merged into everything else the deposition holds.

Zenodo's PUT replaces the whole metadata, and fills in defaults for what is
missing (a license, today's publication date): a field left out is a field
lost. So the uploader sends back the full metadata as Zenodo gave it, with
only the fields the options name changed, and checks the answer. A creator
named again keeps the affiliation and ORCID curated on the web page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def changes(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `wanted` (from the options) that differ from `current`, as they are to be sent."""
    changed: dict[str, Any] = {}
    for key, value in wanted.items():
        if key == "creators":
            if _names(current.get("creators")) != _names(value):
                changed[key] = _merge_creators(current.get("creators"), value)
        elif _normal(current.get(key)) != _normal(value):
            changed[key] = value
    return changed


def merged(current: Mapping[str, Any], changed: Mapping[str, Any]) -> dict[str, Any]:
    """The whole metadata to PUT: everything there is, with `changed` applied."""
    return {**current, **changed}


def not_kept(sent: Mapping[str, Any], answer: Mapping[str, Any], changed: Mapping[str, Any]) -> list[str]:
    """Fields Zenodo's answer lost: a changed field not as sent, or a field that was there and is gone."""
    lost = [key for key, value in changed.items() if _normal(answer.get(key)) != _normal(value)]
    lost += [key for key, value in sent.items() if key not in changed and value not in (None, "", [], {})
             and answer.get(key) in (None, "", [], {})]
    return sorted(set(lost))


def _names(creators: Any) -> list[str]:
    return [str(c.get("name", "")).strip() for c in creators or [] if isinstance(c, dict)]


def _merge_creators(current: Any, wanted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    known = {str(c.get("name", "")).strip(): c for c in current or [] if isinstance(c, dict)}
    return [known.get(str(c["name"]).strip(), c) for c in wanted]


def _normal(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value

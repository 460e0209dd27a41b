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
        if _normal(key, current.get(key)) == _normal(key, value):
            continue
        changed[key] = _merge_creators(current.get(key), value) if key == "creators" else value
    return changed


def merged(current: Mapping[str, Any], changed: Mapping[str, Any]) -> dict[str, Any]:
    """The whole metadata to PUT: everything there is, with `changed` applied."""
    return {**current, **changed}


def not_kept(sent: Mapping[str, Any], answer: Mapping[str, Any], changed: Mapping[str, Any]) -> list[str]:
    """Fields Zenodo's answer lost: a changed field not as sent, or a field that was there and is gone."""
    lost = [key for key, value in changed.items() if _normal(key, answer.get(key)) != _normal(key, value)]
    lost += [key for key, value in sent.items() if key not in changed and value not in (None, "", [], {})
             and answer.get(key) in (None, "", [], {})]
    return sorted(set(lost))


def _merge_creators(current: Any, wanted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The wanted creators, each keeping what Zenodo holds for the same name (affiliation, ORCID)."""
    known = {normal.creator_name(str(c.get("name", ""))): c for c in current or [] if isinstance(c, dict)}
    return [known.get(normal.creator_name(str(c["name"])), c) for c in wanted]


def _normal(key: str, value: Any) -> Any:
    return normal.field(key, value)

"""`--metadata FILE`: a .zenodo.json (Zenodo's legacy deposit metadata, as its GitHub integration reads it).

The keys are those zenodo-rdm's legacy deserializer reads (site/zenodo_rdm/legacy/deserializers/metadata.py
MetadataSchema and its post_load hooks, schemas.py LegacySchema); it drops any other key without a word, so
here an unknown key is refused by its path (`creators[1].orcd`). The values the options also take are checked
as the options are (record_options.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from uploader.errors import UsageError
from uploader.zenodo import record_options as check

PERSON_KEYS = {"name", "affiliation", "orcid", "gnd"}
LIST_ITEM_KEYS: dict[str, set[str]] = {
    "creators": PERSON_KEYS, "thesis_supervisors": PERSON_KEYS, "contributors": PERSON_KEYS | {"type"},
    "related_identifiers": {"identifier", "relation", "resource_type", "scheme"},
    "alternate_identifiers": {"identifier", "scheme"}, "communities": {"identifier"}, "grants": {"id"},
    "dates": {"start", "end", "type", "description"}, "locations": {"lat", "lon", "place", "description"},
    "subjects": {"term", "identifier", "scheme"},
}
TEXT_KEYS = {
    "upload_type", "publication_type", "image_type", "title", "description", "publication_date", "version",
    "notes", "method", "doi", "language", "access_right", "embargo_date", "thesis_university", "imprint_publisher",
    "imprint_isbn", "imprint_place", "partof_title", "partof_pages", "journal_title", "journal_volume",
    "journal_issue", "journal_pages", "conference_title", "conference_acronym", "conference_dates",
    "conference_place", "conference_url", "conference_session", "conference_session_part",
}
OTHER_KEYS = {"license", "keywords", "references", "custom"}


def read(path: Path) -> dict[str, Any]:
    """The file's metadata, every key known and every value the options also take checked."""
    where = f"--metadata {path}"
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise UsageError(f"{where}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where}: cannot read it ({exc})") from None
    except ValueError as exc:
        raise UsageError(f"{where}: not JSON ({exc})") from None
    if isinstance(data, dict) and set(data) == {"metadata"}:
        data = data["metadata"]  # the deposit API's body, {"metadata": {...}}, is read as well
    if not isinstance(data, dict):
        raise UsageError(f"{where}: must hold a JSON object of Zenodo metadata (as a .zenodo.json does)")
    _check_keys(data, where)
    _check_values(data, where)
    return data


def _check_keys(data: dict[str, Any], where: str) -> None:
    for key, value in data.items():
        if key in TEXT_KEYS:
            if not isinstance(value, str):
                raise UsageError(f"{where}: {key} must be a string")
        elif key in LIST_ITEM_KEYS:
            _check_items(key, value, where)
        elif key not in OTHER_KEYS:
            raise UsageError(f"{where}: unknown key {key}: Zenodo would drop it (see docs/zenodo.md for the keys)")


def _check_items(key: str, value: Any, where: str) -> None:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise UsageError(f"{where}: {key} must be a list of objects")
    for index, item in enumerate(value):
        unknown = sorted(set(item) - LIST_ITEM_KEYS[key])
        if unknown:
            raise UsageError(f"{where}: unknown key {key}[{index}].{unknown[0]}: Zenodo would drop it (it takes"
                             f" {', '.join(sorted(LIST_ITEM_KEYS[key]))})")


def _check_values(data: dict[str, Any], where: str) -> None:
    """The values the options take are checked as the options are: one way to be right."""
    for key in ("title", "description"):
        if key in data:
            check.text(data[key], f"{where}: {key}")
    if "license" in data:
        value = data["license"]
        value = value.get("id") if isinstance(value, dict) else value
        data["license"] = check.license_id(str(value), f"{where}: license")
    data.update(_people(data, where))
    for index, item in enumerate(data.get("related_identifiers", [])):
        data["related_identifiers"][index] = _related(item, f"{where}: related_identifiers[{index}]")
    for index, item in enumerate(data.get("communities", [])):
        check.community(str(item.get("identifier", "")), f"{where}: communities[{index}].identifier")
    for index, item in enumerate(data.get("grants", [])):
        check.grant(str(item.get("id", "")), f"{where}: grants[{index}].id")
    if "keywords" in data and not (isinstance(data["keywords"], list)
                                   and all(isinstance(word, str) for word in data["keywords"])):
        raise UsageError(f"{where}: keywords must be a list of strings")
    if "publication_date" in data:
        check.iso_date(data["publication_date"], f"{where}: publication_date")
    if "access_right" in data or "embargo_date" in data:
        from datetime import date

        data.update(check.access(data.get("access_right"), data.get("embargo_date"), date.today()))


def _people(data: dict[str, Any], where: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for key in ("creators", "contributors", "thesis_supervisors"):
        if key in data:
            found[key] = [_person(item, f"{where}: {key}[{index}]", contributor=key == "contributors")
                          for index, item in enumerate(data[key])]
    return found


def _person(item: dict[str, Any], where: str, *, contributor: bool) -> dict[str, Any]:
    text = str(item.get("name", ""))
    for tag in ("orcid", "affiliation") + (("type",) if contributor else ()):
        if item.get(tag):
            text += f" [{tag}:{item[tag]}]"
    checked = check.person(text, where, contributor=contributor)
    return {**item, **checked}


def _related(item: dict[str, Any], where: str) -> dict[str, str]:
    found = check.related(f"{item.get('relation', '')}:{item.get('identifier', '')}", where)
    if item.get("resource_type"):
        found["resource_type"] = str(item["resource_type"])
    return found

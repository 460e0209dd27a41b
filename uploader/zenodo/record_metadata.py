"""The metadata a run wants the record to hold: `--metadata FILE` under the options, each value checked.

Options win over the file, and each override is told. Only the fields given (in the file or the options)
are wanted: the rest of a deposition's metadata stays as it is (metadata.py merges them).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from uploader.errors import UsageError
from uploader.zenodo import metadata_file
from uploader.zenodo import record_options as check

NO_DESCRIPTION = "No description provided."  # what cartloader gives a new deposition without --description
UPLOAD_TYPES = ("dataset", "software", "publication", "poster", "presentation", "image", "video", "lesson",
                "physicalobject", "other")
# The option that sets each field (for the overrides told).
OPTION_OF = {
    "title": "--title", "creators": "--creators", "description": "--description", "upload_type": "--upload-type",
    "license": "--license", "access_right": "--access-right", "embargo_date": "--embargo-date",
    "version": "--version", "contributors": "--contributors", "keywords": "--keywords",
    "related_identifiers": "--related-identifier", "communities": "--community", "grants": "--grant",
    "notes": "--notes", "publication_date": "--publication-date",
}
RECORD_OPTIONS = (*OPTION_OF.values(), "--metadata", "--viewer-link")  # the options read here


def wanted_metadata(args: Mapping[str, Any], notes: list[str], *, new_deposition: bool,
                    today: date | None = None) -> dict[str, Any]:
    """The fields the options and --metadata FILE give; a new deposition's defaults filled in (and told)."""
    from_file = metadata_file.read(Path(args["--metadata"])) if args.get("--metadata") else {}
    from_options = _main_fields(args) | check.from_options(args, today or date.today())
    notes += [f"{OPTION_OF[key]} replaces {key} of --metadata {args['--metadata']}" for key in from_options
              if key in from_file and from_file[key] != from_options[key]]
    metadata = from_file | from_options
    if args.get("--viewer-link"):
        link = check.viewer_link(args["--viewer-link"])
        metadata["related_identifiers"] = [*metadata.get("related_identifiers", []), link]
    if new_deposition:
        _new_deposition_defaults(metadata, notes)
    return metadata


def _main_fields(args: Mapping[str, Any]) -> dict[str, Any]:
    """--title, --creators, --description and --upload-type."""
    found: dict[str, Any] = {}
    if args.get("--title"):
        found["title"] = check.text(args["--title"], "--title")
    creators = check.split_people(args.get("--creators") or [])
    if creators:
        found["creators"] = [check.person(name, "--creators") for name in creators]
    if args.get("--description"):
        found["description"] = check.text(args["--description"], "--description")
    upload_type = args.get("--upload-type")
    if upload_type:
        if upload_type not in UPLOAD_TYPES:
            raise UsageError(f"--upload-type {upload_type}: choose one of {', '.join(UPLOAD_TYPES)}")
        found["upload_type"] = upload_type
    return found


def _new_deposition_defaults(metadata: dict[str, Any], notes: list[str]) -> None:
    if not metadata.get("description"):
        # As cartloader does, so that --publish works without --description, as it does there.
        metadata["description"] = NO_DESCRIPTION
        notes.append(f"no --description: the new deposition's description is cartloader's \"{NO_DESCRIPTION}\";"
                     " change it with --description or on its web page")
    metadata.setdefault("upload_type", "dataset")
    if not (metadata.get("title") and metadata.get("creators")):
        raise UsageError("a new deposition needs --title and --creators \"Family, Given\""
                         " (or pass --zenodo-id to upload into an existing one)")


def license_line(wanted: dict[str, Any], held: dict[str, Any] | None) -> str:
    """Which license the record has (or gets), and whether it is Zenodo's default rather than a choice."""
    from uploader.zenodo.vocabularies import license_id

    chosen = "" if wanted.get("license") else " (Zenodo's default; choose with --license ID)"
    if held and held.get("license"):
        value = held["license"]
        value = value.get("id", "") if isinstance(value, dict) else str(value)
        return f"license: {license_id(value) or value}{chosen if held.get('upload_type') else ''}"
    if wanted.get("license"):
        return f"license: {wanted['license']}"
    if (held or wanted).get("access_right") in ("restricted", "closed"):
        return "license: none (restricted access)"
    # zenodo-rdm legacy/deserializers/schemas.py load_default_license: CC0 for a dataset, else CC-BY-4.0.
    upload_type = (held or {}).get("upload_type") or wanted.get("upload_type")
    return f"license: {'cc0-1.0' if upload_type == 'dataset' else 'cc-by-4.0'}{chosen}"

"""The record's metadata from the options (and a .zenodo.json), each value checked before anything is sent.

A value Zenodo would refuse, drop or store differently is refused here, by the option's name and the
form it takes, with exit status 2: a run never creates a deposition it then cannot publish. The values
follow Zenodo's legacy deposit metadata (zenodo-rdm `site/zenodo_rdm/legacy/deserializers/metadata.py`),
with the vocabularies of vocabularies.py. metadata_file.py reads `--metadata FILE` into the same fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from uploader.errors import InputError, UsageError
from uploader.zenodo import vocabularies as vocab
from uploader.zenodo.creators import creator_name_problems

VIEWER_RELATION = "isVariantFormOf"  # --viewer-link: the same dataset, in CartoScope
MIN_TEXT = 3  # title and description: invenio-rdm-records services/schemas/metadata.py Length(min=3)
_TAG = re.compile(r"\[\s*(\w+)\s*:\s*([^\]]*?)\s*\]")
_COMMUNITY = re.compile(r"^[a-z0-9][a-z0-9_-]*$")  # invenio-communities: a slug, lowercase
_BETWEEN_PEOPLE = re.compile(r";(?![^\[]*\])")  # a ';' outside [...]: an affiliation may hold one
_GRANT = re.compile(r"^10\.13039/\S+::\S+$")  # legacy load_funding: FUNDER_DOI::AWARD


def person(text: str, option: str, *, contributor: bool = False) -> dict[str, Any]:
    """`Family, Given [orcid:ID] [affiliation:TEXT]` (a contributor also `[type:TYPE]`) as Zenodo's person."""
    tags = dict((key.lower(), value) for key, value in _TAG.findall(text))
    name = _TAG.sub("", text).strip()
    form = f"{option} \"Family, Given [orcid:0000-0002-1825-0097] [affiliation:Univ. X]" + (
        " [type:DataCurator]" if contributor else "") + "\""
    known = {"orcid", "affiliation"} | ({"type"} if contributor else set())
    if "[" in name or "]" in name or set(tags) - known:
        raise UsageError(f"{option} '{text}': the form is {form}")
    if problems := creator_name_problems([name], option):
        raise InputError(problems)
    found: dict[str, Any] = {"name": ", ".join(part.strip() for part in name.split(","))}
    if "orcid" in tags:
        found["orcid"] = orcid(tags["orcid"], f"{option} '{text}'")
    if tags.get("affiliation"):
        found["affiliation"] = tags["affiliation"]
    if contributor:
        found["type"] = contributor_type(tags.get("type", ""), f"{option} '{text}'")
    return found


def orcid(value: str, where: str) -> str:
    if not vocab.is_orcid(value):
        raise UsageError(f"{where}: orcid {value} is not an ORCID iD (16 digits, 0000-0002-1825-0097, whose last"
                         " is a check digit: copy it from orcid.org)")
    return vocab.normal_orcid(value)


def contributor_type(value: str, where: str) -> str:
    found = vocab.spelled(value, vocab.CONTRIBUTOR_TYPES)
    if found is None:
        raise UsageError(f"{where}: a contributor needs [type:TYPE], one of {', '.join(vocab.CONTRIBUTOR_TYPES)}")
    return found


def license_id(value: str, option: str = "--license") -> str:
    """A license's vocabulary id; an old Zenodo name is refused (`cc-by` would be read as CC BY 1.0)."""
    if value.strip().lower() in vocab.LICENSES:
        return value.strip().lower()
    close = vocab.closest_licenses(value)
    legacy = vocab.license_id(value)
    if legacy:
        raise UsageError(f"{option} {value}: an old Zenodo name, which Zenodo reads as {legacy}; give the license"
                         f" id you mean, such as {' or '.join(dict.fromkeys([legacy, *close]))}")
    hint = f"; did you mean {' or '.join(close)}?" if close else " (such as cc-by-4.0, cc0-1.0, mit)"
    raise UsageError(f"{option} {value}: not a Zenodo license id{hint} (the ids are SPDX's, lowercase)")


def access(right: str | None, embargo: str | None, today: date) -> dict[str, str]:
    """--access-right and --embargo-date: an embargo needs its date, in the future, and nothing else does."""
    found: dict[str, str] = {}
    if right is not None:
        spelled = vocab.spelled(right, vocab.ACCESS_RIGHTS)
        if spelled is None:
            raise UsageError(f"--access-right {right}: choose one of {', '.join(vocab.ACCESS_RIGHTS)}")
        found["access_right"] = spelled
    if embargo is not None:
        if found.get("access_right") != "embargoed":
            raise UsageError(f"--embargo-date {embargo}: only with --access-right embargoed")
        if iso_date(embargo, "--embargo-date") <= today:
            raise UsageError(f"--embargo-date {embargo}: must be after today ({today.isoformat()}), YYYY-MM-DD")
        found["embargo_date"] = embargo
    elif found.get("access_right") == "embargoed":
        raise UsageError("--access-right embargoed needs --embargo-date YYYY-MM-DD (when the files open)")
    return found


def iso_date(value: str, option: str) -> date:
    try:
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option} {value}: must be a date, YYYY-MM-DD") from None


def related(value: str, option: str = "--related-identifier") -> dict[str, str]:
    """RELATION:IDENTIFIER (isSupplementTo:10.1234/x, isDocumentedBy:https://...) as Zenodo stores it."""
    relation, _, identifier = value.partition(":")
    spelled = vocab.spelled(relation, vocab.RELATIONS)
    if spelled is None or not identifier.strip():
        raise UsageError(f"{option} {value}: the form is RELATION:IDENTIFIER (e.g. isSupplementTo:10.1234/abc),"
                         f" RELATION one of {', '.join(vocab.RELATIONS)}")
    return related_identifier(spelled, identifier.strip(), f"{option} {value}")


def related_identifier(relation: str, identifier: str, where: str) -> dict[str, str]:
    scheme = vocab.identifier_scheme(identifier)
    if scheme is None:
        raise UsageError(f"{where}: '{identifier}' is not an identifier Zenodo takes (a DOI, a URL, an arXiv id,"
                         " a PMID, an ISBN, ...)")
    return {"relation": relation, "identifier": vocab.normal_identifier(identifier, scheme), "scheme": scheme}


def viewer_link(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise UsageError(f"--viewer-link {url}: must be the https:// link upload_aws printed for this dataset")
    return related_identifier(VIEWER_RELATION, url, f"--viewer-link {url}")


def community(value: str, where: str = "") -> dict[str, str]:
    if not _COMMUNITY.match(value):
        raise UsageError(f"{where or '--community'} {value}: give the community's identifier as in its address,"
                         " zenodo.org/communities/IDENTIFIER (lowercase letters, digits, - and _)")
    return {"identifier": value}


def grant(value: str, where: str = "") -> dict[str, str]:
    if not _GRANT.match(value):
        raise UsageError(f"{where or '--grant'} {value}: the form is FUNDER_DOI::AWARD_NUMBER, e.g."
                         " 10.13039/100000002::R01HG011031 (the funder's Crossref Funder Registry DOI)")
    return {"id": value}


def text(value: str, option: str) -> str:
    if len(value.strip()) < MIN_TEXT:
        raise UsageError(f"{option} '{value}': Zenodo needs at least {MIN_TEXT} characters")
    return value


def from_options(args: Mapping[str, Any], today: date) -> dict[str, Any]:
    """The record fields these options give, each checked (record_metadata.py reads --title ... --upload-type)."""
    found: dict[str, Any] = {}
    if args.get("--license"):
        found["license"] = license_id(args["--license"])
    found |= access(args.get("--access-right"), args.get("--embargo-date"), today)
    if args.get("--version"):
        found["version"] = args["--version"]
    if args.get("--contributors"):
        found["contributors"] = [person(value, "--contributors", contributor=True) for value in
                                 split_people(args["--contributors"])]
    if args.get("--keywords"):
        found["keywords"] = [word for word in args["--keywords"] if word.strip()]
    if args.get("--related-identifier"):
        found["related_identifiers"] = [related(value) for value in args["--related-identifier"]]
    if args.get("--community"):
        found["communities"] = [community(value) for value in args["--community"]]
    if args.get("--grant"):
        found["grants"] = [grant(value) for value in args["--grant"]]
    if args.get("--notes"):
        found["notes"] = args["--notes"]
    if args.get("--publication-date"):
        iso_date(args["--publication-date"], "--publication-date")
        found["publication_date"] = args["--publication-date"]
    return found


def split_people(values: list[str]) -> list[str]:
    """Several people in one value, separated with ';' (and several values, as cartloader passes them)."""
    return [name.strip() for value in values for name in _BETWEEN_PEOPLE.split(value) if name.strip()]

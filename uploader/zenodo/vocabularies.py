"""Zenodo's controlled vocabularies for a record's metadata, as its deposit API takes and shows them.

Each list is read from Zenodo's own code (zenodo/zenodo-rdm 6386403, inveniosoftware/invenio-rdm-records
1f23bb9), so that a value the options let through is one Zenodo keeps, and one it shows back the same way:
- licenses: license_vocabulary.py (its docstring names the files);
- relations: zenodo-rdm `site/zenodo_rdm/legacy/serializers/schemas/common.py` RELATION_TYPE_MAPPING, the
  relations the deposit API shows back (invenio-rdm-records `fixtures/data/vocabularies/relation_types.yaml`
  has three more, istranslationof, hastranslation, other, that the deposit API would drop from its answer);
  `isAlternateIdentifier` is left out: the deserializer moves it to another field;
- contributor types: the same file's ROLE_TYPE_MAPPING (roles.yaml's `translator` has no legacy name);
- identifier schemes: invenio-rdm-records `config.py` RDM_RECORDS_IDENTIFIERS_SCHEMES, detected with idutils
  as marshmallow-utils' IdentifierSchema does for the deposit API's `related_identifiers`;
- access rights: zenodo-rdm `legacy/deserializers/schemas.py` `load_access`.
"""

from __future__ import annotations

import difflib
from typing import Any

from uploader.zenodo.license_vocabulary import LEGACY_NAMES, LICENSES

__all__ = ["LICENSES"]  # the ids, for record_options

RELATIONS = (
    "isCitedBy", "cites", "isSupplementTo", "isSupplementedBy", "isContinuedBy", "continues", "isDescribedBy",
    "describes", "hasMetadata", "isMetadataFor", "hasVersion", "isVersionOf", "isNewVersionOf",
    "isPreviousVersionOf", "isPartOf", "hasPart", "isPublishedIn", "isReferencedBy", "references",
    "isDocumentedBy", "documents", "isCompiledBy", "compiles", "isVariantFormOf", "isOriginalFormOf",
    "isIdenticalTo", "isReviewedBy", "reviews", "isDerivedFrom", "isSourceOf", "isRequiredBy", "requires",
    "isObsoletedBy", "obsoletes",
)
CONTRIBUTOR_TYPES = (
    "ContactPerson", "DataCollector", "DataCurator", "DataManager", "Distributor", "Editor", "HostingInstitution",
    "Producer", "ProjectLeader", "ProjectManager", "ProjectMember", "RegistrationAgency", "RegistrationAuthority",
    "RelatedPerson", "Researcher", "ResearchGroup", "RightsHolder", "Sponsor", "Supervisor", "WorkPackageLeader",
    "Other",
)
IDENTIFIER_SCHEMES = (
    "ark", "arxiv", "ads", "cstr", "doi", "ean13", "eissn", "handle", "isbn", "isni", "issn", "istc", "lissn",
    "lsid", "pmid", "purl", "rrid", "url", "urn",
)
ACCESS_RIGHTS = ("open", "embargoed", "restricted", "closed")
_LEGACY_TO_ID = {legacy: license_id for license_id, legacy in LEGACY_NAMES.items()}


def license_id(name: str) -> str | None:
    """The vocabulary id of a license as given or as the deposit API shows it (`cc-zero` -> `cc0-1.0`)."""
    normal = name.strip().lower()
    if normal in LICENSES:
        return normal
    return _LEGACY_TO_ID.get(normal)


def closest_licenses(name: str, count: int = 3) -> list[str]:
    """The vocabulary ids that look most like `name` (for 'did you mean')."""
    return difflib.get_close_matches(name.strip().lower(), list(LICENSES), n=count, cutoff=0.5)


def spelled(value: str, choices: tuple[str, ...]) -> str | None:
    """`value` as spelled in `choices`, whatever its letter case; None when it is not one of them."""
    return next((choice for choice in choices if choice.lower() == value.strip().lower()), None)


def _idutils() -> Any:
    """idutils, imported when first needed: it takes half a second to import, and most runs never need it."""
    import idutils  # type: ignore[import-untyped]

    return idutils


def identifier_scheme(identifier: str) -> str | None:
    """The scheme Zenodo would give `identifier` (the first one idutils detects that Zenodo allows)."""
    return next((scheme for scheme in _idutils().detect_identifier_schemes(identifier)
                 if scheme in IDENTIFIER_SCHEMES), None)


def normal_identifier(identifier: str, scheme: str) -> str:
    """The identifier as Zenodo stores it (a DOI without its https://doi.org/, ...)."""
    return str(_idutils().normalize_pid(identifier, scheme))


def is_orcid(value: str) -> bool:
    """An ORCID iD with a valid ISO 7064 11-2 check digit (idutils, as Zenodo checks it)."""
    return bool(_idutils().is_orcid(value))


def normal_orcid(value: str) -> str:
    """0000-0002-1825-0097, from that or from https://orcid.org/0000-0002-1825-0097."""
    return str(_idutils().normalize_orcid(value))

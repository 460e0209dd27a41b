"""The mock Zenodo itself behaves as Zenodo's server code does (each behaviour the uploader's tests rely on).

These talk to the mock over HTTP, as a client would, with the tests' own helper.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from tests.conftest import HELPER_AGENT, MockZenodo

pytestmark = pytest.mark.e2e

METADATA = {"upload_type": "dataset", "title": "Mock", "creators": [{"name": "Doe, Jane"}],
            "description": "A description"}


def call(zenodo: MockZenodo, method: str, url: str, **kwargs: Any) -> requests.Response:
    url = url if url.startswith("http") else f"{zenodo.api_url}{url}"
    headers = {"Authorization": f"Bearer {zenodo.token}", "User-Agent": HELPER_AGENT, **kwargs.pop("headers", {})}
    return requests.request(method, url, headers=headers, timeout=30, **kwargs)


def new_draft(zenodo: MockZenodo, files: dict[str, bytes], metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    draft = call(zenodo, "POST", "/deposit/depositions", json={"metadata": metadata or METADATA}).json()
    for name, data in files.items():
        answer = call(zenodo, "PUT", f"{draft['links']['bucket']}/{name}", data=data)
        assert answer.status_code == 201, answer.text
    return draft


def publish(zenodo: MockZenodo, deposition: dict[str, Any]) -> dict[str, Any]:
    answer = call(zenodo, "POST", f"/deposit/depositions/{deposition['id']}/actions/publish")
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def test_newversion_starts_from_the_latest_version_whatever_id_is_given(zenodo):
    v1 = publish(zenodo, new_draft(zenodo, {"a.tsv": b"v1"}))
    v2 = call(zenodo, "POST", f"/deposit/depositions/{v1['id']}/actions/newversion").json()
    call(zenodo, "PUT", f"{v2['links']['bucket']}/a.tsv", data=b"v2")
    publish(zenodo, v2)

    v3 = call(zenodo, "POST", f"/deposit/depositions/{v1['id']}/actions/newversion")

    assert v3.status_code == 201
    assert v3.json()["id"] not in (v1["id"], v2["id"])  # the answer is the new draft itself
    assert zenodo.files(v3.json()["id"]) == zenodo.files(v2["id"]) != zenodo.files(v1["id"])
    assert "version" not in v3.json()["metadata"]


def test_newversion_with_an_open_draft_that_holds_files_is_refused(zenodo):
    v1 = publish(zenodo, new_draft(zenodo, {"a.tsv": b"v1"}))
    draft = call(zenodo, "POST", f"/deposit/depositions/{v1['id']}/actions/newversion").json()

    again = call(zenodo, "POST", f"/deposit/depositions/{v1['id']}/actions/newversion")

    assert again.status_code == 400
    assert again.json()["errors"] == [{"field": "files.enabled", "messages": ["Please remove all files first."]}]
    # Emptied, the same draft is answered and refilled from the latest version.
    for file in zenodo.api("GET", f"/deposit/depositions/{draft['id']}/files"):
        call(zenodo, "DELETE", f"/deposit/depositions/{draft['id']}/files/{file['id']}")
    refilled = call(zenodo, "POST", f"/deposit/depositions/{v1['id']}/actions/newversion")
    assert refilled.status_code == 201 and refilled.json()["id"] == draft["id"]
    assert set(zenodo.files(draft["id"])) == {"a.tsv"}


def test_latest_draft_links_to_the_deposition_itself_unless_asked_otherwise(zenodo):
    v1 = publish(zenodo, new_draft(zenodo, {"a.tsv": b"v1"}))
    draft = call(zenodo, "POST", f"/deposit/depositions/{v1['id']}/actions/newversion").json()
    record = zenodo.api("GET", f"/deposit/depositions/{v1['id']}")
    assert record["links"]["latest_draft"].endswith(f"/{v1['id']}")

    zenodo.control("options", {"latest_draft_link": "next"})
    record = zenodo.api("GET", f"/deposit/depositions/{v1['id']}")
    assert record["links"]["latest_draft"].endswith(f"/{draft['id']}")


def test_latest_link_redirects_to_the_latest_version(zenodo):
    v1 = publish(zenodo, new_draft(zenodo, {"a.tsv": b"v1"}))
    v2 = call(zenodo, "POST", f"/deposit/depositions/{v1['id']}/actions/newversion").json()
    publish(zenodo, v2)
    answer = call(zenodo, "GET", zenodo.api("GET", f"/deposit/depositions/{v1['id']}")["links"]["latest"])
    assert answer.status_code == 200 and answer.json()["id"] == str(v2["id"])


def test_search_lists_the_latest_draft_of_each_concept_unless_allversions(zenodo):
    v1 = publish(zenodo, new_draft(zenodo, {"a.tsv": b"v1"}))
    draft = call(zenodo, "POST", f"/deposit/depositions/{v1['id']}/actions/newversion").json()
    query = {"q": f"conceptrecid:{v1['conceptrecid']}"}

    assert [d["id"] for d in zenodo.api("GET", "/deposit/depositions", params=query)] == [draft["id"]]
    for flag in ("allversions", "all_versions"):
        listed = zenodo.api("GET", "/deposit/depositions", params=query | {flag: "true"})
        assert sorted(d["id"] for d in listed) == sorted([v1["id"], draft["id"]])
        assert all("bucket" not in d["links"] for d in listed)
    assert call(zenodo, "GET", "/deposit/depositions", params={"size": 101}).status_code == 400


def test_search_lags_behind_a_new_deposition(zenodo):
    zenodo.control("options", {"search_lag": 1.0})
    draft = new_draft(zenodo, {})
    query = {"q": f"recid:{draft['id']}", "allversions": "true"}
    assert zenodo.api("GET", "/deposit/depositions", params=query) == []
    assert zenodo.api("GET", f"/deposit/depositions/{draft['id']}")["id"] == draft["id"]  # by id: at once
    time.sleep(1.1)
    assert [d["id"] for d in zenodo.api("GET", "/deposit/depositions", params=query)] == [draft["id"]]


def test_search_by_title_phrase(zenodo):
    first = new_draft(zenodo, {}, METADATA | {"title": 'A "quoted" title'})
    new_draft(zenodo, {}, METADATA | {"title": "Another"})
    found = zenodo.api("GET", "/deposit/depositions", params={"q": 'title:"A \\"quoted\\""'})
    assert [d["id"] for d in found] == [first["id"]]


def test_empty_files_are_refused_and_nothing_is_stored(zenodo):
    draft = new_draft(zenodo, {})
    answer = call(zenodo, "PUT", f"{draft['links']['bucket']}/empty.done", data=b"")
    assert answer.status_code == 400 and answer.json()["message"] == "Empty files are not accepted."
    assert zenodo.files(draft["id"]) == {}


def test_a_replaced_file_gets_a_new_id_and_deletes_go_by_id(zenodo):
    draft = new_draft(zenodo, {"a.tsv": b"1"})
    first_id = zenodo.api("GET", f"/deposit/depositions/{draft['id']}/files")[0]["id"]
    call(zenodo, "PUT", f"{draft['links']['bucket']}/a.tsv", data=b"2")
    second_id = zenodo.api("GET", f"/deposit/depositions/{draft['id']}/files")[0]["id"]
    assert second_id != first_id

    assert call(zenodo, "DELETE", f"/deposit/depositions/{draft['id']}/files/{first_id}").status_code == 404
    assert call(zenodo, "DELETE", f"/deposit/depositions/{draft['id']}/files/{second_id}").status_code == 204
    assert zenodo.files(draft["id"]) == {}


def test_bucket_key_delete_can_answer_500_after_deleting(zenodo):
    zenodo.control("options", {"bucket_delete": "500"})
    draft = new_draft(zenodo, {"a.tsv": b"1"})
    assert call(zenodo, "DELETE", f"{draft['links']['bucket']}/a.tsv").status_code == 500
    assert zenodo.files(draft["id"]) == {}
    assert call(zenodo, "DELETE", f"{draft['links']['bucket']}/a.tsv").status_code == 404


def test_names_are_percent_decoded_and_an_unquoted_hash_ends_the_path(zenodo):
    draft = new_draft(zenodo, {})
    bucket = draft["links"]["bucket"]
    call(zenodo, "PUT", f"{bucket}/h#1.tsv", data=b"x")  # requests sends ".../h": the rest is a fragment
    call(zenodo, "PUT", f"{bucket}/pct%41.tsv", data=b"y")
    call(zenodo, "PUT", f"{bucket}/{requests.utils.quote('q?x %.tsv', safe='')}", data=b"z")
    assert set(zenodo.files(draft["id"])) == {"h", "pctA.tsv", "q?x %.tsv"}


def test_metadata_put_replaces_and_fills_defaults(zenodo):
    draft = new_draft(zenodo, {}, METADATA | {"license": "cc-by-4.0", "keywords": ["lung"]})
    answer = call(zenodo, "PUT", f"/deposit/depositions/{draft['id']}", json={"metadata": {"title": "Only"}})
    metadata = answer.json()["metadata"]
    assert "keywords" not in metadata and "creators" not in metadata
    assert metadata["license"] == "cc-by-4.0" and metadata["title"] == "Only"  # the default license for non-datasets
    refused = call(zenodo, "PUT", f"/deposit/depositions/{draft['id']}", json={"metadata": {}, "files": []})
    assert refused.status_code == 400


def test_a_published_record_is_edited_in_place(zenodo):
    record = publish(zenodo, new_draft(zenodo, {"a.tsv": b"1"}))
    assert call(zenodo, "PUT", f"/deposit/depositions/{record['id']}", json={"metadata": METADATA}).status_code == 404
    assert call(zenodo, "POST", f"/deposit/depositions/{record['id']}/actions/edit").status_code == 201
    assert zenodo.api("GET", f"/deposit/depositions/{record['id']}")["state"] == "inprogress"
    call(zenodo, "PUT", f"/deposit/depositions/{record['id']}", json={"metadata": METADATA | {"title": "New"}})
    again = publish(zenodo, {"id": record["id"]})
    assert again["doi"] == record["doi"] and again["metadata"]["title"] == "New" and again["state"] == "done"


def test_deleted_records_answer_410(zenodo):
    record = publish(zenodo, new_draft(zenodo, {"a.tsv": b"1"}))
    zenodo.control("delete_record", {"id": record["id"]})
    assert call(zenodo, "GET", f"/deposit/depositions/{record['id']}").status_code == 410
    assert call(zenodo, "POST", f"/deposit/depositions/{record['id']}/actions/newversion").status_code == 410


def test_quota_and_file_count_are_refused_with_zenodos_messages(zenodo):
    zenodo.control("limits", {"quota_bytes": 10})
    draft = new_draft(zenodo, {"a.tsv": b"12345"})
    over = call(zenodo, "PUT", f"{draft['links']['bucket']}/b.tsv", data=b"123456")
    assert over.status_code == 400 and over.json()["message"] == "Bucket quota exceeded."
    zenodo.control("limits", {"max_files": 1})
    many = call(zenodo, "PUT", f"{draft['links']['bucket']}/c.tsv", data=b"1")
    assert many.status_code == 400 and "max amount per record" in many.json()["message"]


def test_rate_limit_is_a_moving_window_per_user_agent(zenodo):
    zenodo.control("options", {"rate": [3, 1]})
    statuses = [call(zenodo, "GET", "/deposit/depositions", headers={"User-Agent": "one"}) for _ in range(4)]
    assert [s.status_code for s in statuses] == [200, 200, 200, 429]
    assert statuses[3].headers["Retry-After"] == "1" and statuses[3].headers["X-RateLimit-Remaining"] == "0"
    assert call(zenodo, "GET", "/deposit/depositions", headers={"User-Agent": "two"}).status_code == 200
    time.sleep(1.05)
    assert call(zenodo, "GET", "/deposit/depositions", headers={"User-Agent": "one"}).status_code == 200


def test_early_retry_after_on_a_put_leaves_the_body_unread(zenodo):
    draft = new_draft(zenodo, {})
    zenodo.control("faults", {"every": 1, "kinds": ["early-503"], "paths": "files", "retry_after": 7, "limit": 1})
    answer = call(zenodo, "PUT", f"{draft['links']['bucket']}/a.tsv", data=b"x" * 1000)
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "7"
    assert call(zenodo, "PUT", f"{draft['links']['bucket']}/a.tsv", data=b"x").status_code == 201


def test_a_slow_publish_behind_a_gateway_timeout_still_completes(zenodo):
    zenodo.control("options", {"publish_seconds": 1.0, "gateway_timeout": 0.2})
    draft = new_draft(zenodo, {"a.tsv": b"1"})
    answer = call(zenodo, "POST", f"/deposit/depositions/{draft['id']}/actions/publish")
    assert answer.status_code == 504
    assert zenodo.api("GET", f"/deposit/depositions/{draft['id']}")["submitted"] is False
    time.sleep(1.2)
    assert zenodo.api("GET", f"/deposit/depositions/{draft['id']}")["submitted"] is True


# -- record fields (legacy/deserializers/metadata.py, serializers/schemas/common.py, services.py publish) ----


def test_licenses_are_read_as_vocabulary_ids_and_shown_by_their_legacy_names(zenodo):
    shown = {license_id: new_draft(zenodo, {}, METADATA | {"license": license_id})["metadata"]["license"]
             for license_id in ("cc0-1.0", "MIT", "cc-by-4.0", "cc-zero")}
    assert shown == {"cc0-1.0": "cc-zero", "MIT": "mit-license", "cc-by-4.0": "cc-by-4.0", "cc-zero": "cc-zero"}
    assert new_draft(zenodo, {}, METADATA)["metadata"]["license"] == "cc-zero"  # a dataset's default, CC0-1.0
    refused = call(zenodo, "POST", "/deposit/depositions", json={"metadata": METADATA | {"license": "cc-by-4"}})
    assert refused.status_code == 400
    assert refused.json()["errors"] == [
        {"field": "metadata.license", "messages": ["Invalid license provided: cc-by-4"]}]


def test_identifiers_are_checked_and_normalised(zenodo):
    draft = new_draft(zenodo, {}, METADATA | {
        "creators": [{"name": "Doe, Jane", "orcid": "https://orcid.org/0000-0002-1825-0097"}],
        "contributors": [{"name": "Poe, Ed", "type": "datacurator"}],
        "related_identifiers": [{"identifier": "https://doi.org/10.1234/x", "relation": "issupplementto"}]})
    held = draft["metadata"]
    assert held["creators"] == [{"name": "Doe, Jane", "orcid": "0000-0002-1825-0097"}]
    assert held["contributors"] == [{"name": "Poe, Ed", "type": "DataCurator"}]
    assert held["related_identifiers"] == [{"identifier": "10.1234/x", "relation": "isSupplementTo", "scheme": "doi"}]
    for bad in ({"creators": [{"name": "Doe, Jane", "orcid": "0000-0002-1825-0098"}]},
                {"related_identifiers": [{"identifier": "not an id", "relation": "cites"}]},
                {"access_right": "embargoed"}):
        assert call(zenodo, "POST", "/deposit/depositions", json={"metadata": METADATA | bad}).status_code == 400


def test_the_reserved_doi_is_the_published_doi_and_short_titles_are_refused_at_publish(zenodo):
    draft = new_draft(zenodo, {"a.tsv": b"a"}, METADATA | {"title": "ab"})
    assert call(zenodo, "POST", f"/deposit/depositions/{draft['id']}/actions/publish").status_code == 400
    call(zenodo, "PUT", f"/deposit/depositions/{draft['id']}", json={"metadata": METADATA})
    record = publish(zenodo, draft)
    assert draft["metadata"]["prereserve_doi"] == {"doi": record["doi"], "recid": draft["id"]}


def test_communities_become_requests_on_publish_and_their_errors_are_swallowed(zenodo):
    zenodo.control("communities", {"slug": "mine-x1", "curators": [zenodo.token]})
    zenodo.control("communities", {"slug": "theirs-x1", "curators": []})
    wanted = [{"identifier": slug} for slug in ("mine-x1", "theirs-x1", "ghost-x1")]
    draft = new_draft(zenodo, {"a.tsv": b"a"}, METADATA | {"communities": wanted})
    assert draft["metadata"]["communities"] == sorted(wanted, key=lambda c: c["identifier"])

    record = publish(zenodo, draft)

    assert record["metadata"]["communities"] == [{"identifier": "mine-x1"}]
    held = call(zenodo, "GET", f"/records/{record['id']}/communities").json()["hits"]["hits"]
    assert [c["slug"] for c in held] == ["mine-x1"]
    asked = call(zenodo, "GET", f"/records/{record['id']}/requests?expand=true").json()["hits"]["hits"]
    assert {(r["expanded"]["receiver"]["slug"], r["status"]) for r in asked} == {
        ("mine-x1", "accepted"), ("theirs-x1", "submitted")}


# -- Zenodo's normal forms (marshmallow-utils html.py, legacy PersonSchema.load_names) -------------------------


def test_stored_metadata_is_in_zenodos_normal_form(zenodo):
    draft = new_draft(zenodo, {}, {**METADATA, "title": " \u201cLung\u201d atlas\r\nof cells ",
                                   "creators": [{"name": "Doe,Jane"}, {"name": "Jane Roe"}, {"name": "A, B, C"}],
                                   "description": "Genes & cells <script>x()</script> <b>bold</b> <p onclick='e'>p</p>",
                                   "version": "Cafe\u0301"})

    stored = call(zenodo, "GET", f"/deposit/depositions/{draft['id']}").json()["metadata"]

    assert stored["title"] == '"Lung" atlas\nof cells'  # ftfy.fix_text: quotes straightened, CRLF -> LF
    assert stored["version"] == "Caf\u00e9"  # NFC
    assert [c["name"] for c in stored["creators"]] == ["Doe, Jane", "Jane Roe", "A, B, C"]
    assert stored["description"] == "Genes &amp; cells x() <b>bold</b> <p>p</p>"  # bleach: escaped, tags stripped


def test_publishing_needs_a_title_and_a_description_of_three_characters(zenodo):
    draft = new_draft(zenodo, {"a.tsv": b"a"}, {**METADATA, "title": "Lu"})

    answer = call(zenodo, "POST", f"/deposit/depositions/{draft['id']}/actions/publish")

    assert answer.status_code == 400
    assert answer.json()["errors"] == [{"field": "metadata.title", "messages": ["Shorter than minimum length 3."]}]
    assert call(zenodo, "GET", f"/deposit/depositions/{draft['id']}").json()["metadata"]["title"] == "Lu"  # saved


# -- The records API's full metadata, and the deposit API's narrower view -----------------------------------


CURATED: dict[str, Any] = {
    "title": "Mock", "description": "A description", "publication_date": "2026-01-15", "version": "2",
    "resource_type": {"id": "dataset"},
    "creators": [{"person_or_org": {"type": "personal", "name": "Doe, Jane"},
                  "affiliations": [{"id": "00jmfr291", "name": "University of Michigan"}, {"name": "Broad"}]},
                 {"person_or_org": {"type": "organizational", "name": "Human Cell Atlas"}}],
    "subjects": [{"subject": "lung"}, {"id": "euroscivoc:1", "subject": "Spatial transcriptomics"}],
    "rights": [{"id": "cc-by-4.0"}, {"id": "mit"}], "languages": [{"id": "eng"}, {"id": "deu"}],
    "funding": [{"funder": {"id": "01cwqze88", "name": "NIH"}}],
    "additional_titles": [{"title": "Other", "type": {"id": "alternative-title"}}],
}


def test_the_deposit_api_shows_a_narrower_view_of_a_curated_record(zenodo):
    record = publish(zenodo, new_draft(zenodo, {"a.tsv": b"a"}))
    zenodo.control("curate", {"id": record["id"], "metadata": CURATED})

    legacy = call(zenodo, "GET", f"/deposit/depositions/{record['id']}").json()["metadata"]
    full = call(zenodo, "GET", f"/records/{record['id']}").json()

    assert full["metadata"] == CURATED and full["versions"] == {"index": 1, "is_latest": True}
    assert legacy["creators"] == [{"name": "Doe, Jane", "affiliation": "University of Michigan"},
                                  {"name": "Human Cell Atlas"}]  # one affiliation, no ROR id, no organisation
    assert legacy["keywords"] == ["lung"] and legacy["license"] == "cc-by-4.0" and legacy["language"] == "eng"
    assert "grants" not in legacy and "additional_titles" not in legacy


def test_a_deposit_api_put_replaces_the_full_metadata_with_its_view(zenodo):
    record = publish(zenodo, new_draft(zenodo, {"a.tsv": b"a"}))
    zenodo.control("curate", {"id": record["id"], "metadata": CURATED})
    call(zenodo, "POST", f"/deposit/depositions/{record['id']}/actions/edit")
    legacy = call(zenodo, "GET", f"/deposit/depositions/{record['id']}").json()["metadata"]

    assert call(zenodo, "PUT", f"/deposit/depositions/{record['id']}", json={"metadata": legacy}).status_code == 200

    draft = call(zenodo, "GET", f"/records/{record['id']}/draft").json()["metadata"]
    assert "additional_titles" not in draft and len(draft["rights"]) == 1 and "funding" not in draft
    assert call(zenodo, "GET", f"/records/{record['id']}").json()["metadata"] == CURATED  # until published


def test_a_new_version_carries_the_full_metadata_but_not_version_or_date(zenodo):
    record = publish(zenodo, new_draft(zenodo, {"a.tsv": b"a"}))
    zenodo.control("curate", {"id": record["id"], "metadata": CURATED})

    draft = call(zenodo, "POST", f"/deposit/depositions/{record['id']}/actions/newversion").json()

    full = call(zenodo, "GET", f"/records/{draft['id']}/draft").json()["metadata"]
    assert {k: v for k, v in full.items() if k != "publication_date"} == {
        k: v for k, v in CURATED.items() if k not in ("version", "publication_date")}
    assert call(zenodo, "GET", f"/records/{record['id']}/draft").status_code == 404  # no edit open there

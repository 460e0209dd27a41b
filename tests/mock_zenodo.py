"""A mock of Zenodo's deposit API that behaves as Zenodo's own server code does.

Since October 2023 zenodo.org's "legacy" deposit API is a layer over
InvenioRDM. Each behaviour below names the file it follows: zenodo/zenodo-rdm
(`site/zenodo_rdm/legacy/`, `invenio.cfg`) and the invenio packages under it
(invenio-drafts-resources, invenio-records-resources, invenio-files-rest,
invenio-app). Where Zenodo's behaviour is uncertain the mock takes the stricter
reading (411 without Content-Length, 415 for other content types, a
description needed to publish); ../shared/reference/zenodo-api.md says why.

State lives in memory. Test control endpoints (no auth), under /_mock/:
  GET  /_mock/log       every request seen (?since=N: from the N-th on): method, url, status answered, time,
                        whether a token was in the URL
  GET  /_mock/state     every deposition as stored (for tests: not subject to the search lag)
  POST /_mock/faults    {"every": N, "kinds": [...], "paths": "files", "retry_after": S, "limit": N} (see FAULTS)
  POST /_mock/limits    {"max_files": N, "quota_bytes": N, "max_file_bytes": N}
  POST /_mock/options   {"search_lag": S, "latest_draft_link": "self"|"next", "bucket_delete": "204"|"500",
                         "rate": [N, S], "search_rate": [N, S], "publish_seconds": S, "gateway_timeout": S}
  POST /_mock/delete_record  {"id": N}: Zenodo's staff removed a published record (it answers 410 after)
  POST /_mock/curate    {"id": N, "metadata": {...}}: the full (RDM) metadata saved on the web page (see
                        "The records API's full metadata" below); a published record is curated as published
  POST /_mock/tokens    {"token": "...", "scopes": [...]} register a token (more than one allowed)
  POST /_mock/reset     forget everything

Run on its own: python -m tests.mock_zenodo --port 8765 --token TOKEN
"""

from __future__ import annotations

import argparse
import collections
import copy
import hashlib
import itertools
import json
import math
import re
import socket
import threading
import time
import uuid
from datetime import date, datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import bleach
import ftfy
from bleach.css_sanitizer import CSSSanitizer

from uploader.zenodo import vocabularies as vocab
from uploader.zenodo.license_vocabulary import LEGACY_NAMES

UPLOAD_TYPES = {"dataset", "software", "publication", "poster", "presentation", "image", "video", "lesson",
                "physicalobject", "other"}
# The legacy metadata keys the deserializer reads (zenodo-rdm site/zenodo_rdm/legacy/deserializers/metadata.py,
# MetadataSchema with unknown=EXCLUDE: any other key inside `metadata` is dropped).
KNOWN_METADATA = {"upload_type", "publication_type", "image_type", "title", "creators", "description",
                  "publication_date", "access_right", "license", "embargo_date", "access_conditions", "keywords",
                  "subjects", "version", "notes", "related_identifiers", "alternate_identifiers", "communities",
                  "grants", "doi", "prereserve_doi", "language", "contributors", "references", "dates",
                  "locations", "method", "imprint_publisher", "journal_title", "conference_title"}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_CONTENT_LENGTH = 10**12  # zenodo-rdm invenio.cfg FILES_REST_DEFAULT_MAX_FILE_SIZE: werkzeug answers 413 beyond
DEFAULT_OPTIONS: dict[str, Any] = {
    "search_lag": 0.0, "latest_draft_link": "self", "bucket_delete": "204", "rate": None, "search_rate": None,
    "publish_seconds": 0.0, "gateway_timeout": None,
}
# Faults on demand, each request matching `paths` counted; every N-th gets the next of `kinds`:
#   429 / 503 / 500 / 413   the body is read, then that status (429 and 503 carry Retry-After)
#   400                     the body is read, then a validation error naming a field (as the deserializer's)
#   early-429 / early-503   answered at once with Retry-After, the body left unread, the connection closed
#                           (what a throttling front end does to a big PUT)
#   drop                    half the body is read, then the connection is dropped without an answer
#   lost                    the request is carried out, then the connection is dropped without an answer
#   after-504               the request is carried out, then a proxy's 504 is answered instead
FAULT_PATHS = {
    "files": lambda method, path: path.startswith("/api/files/"),
    "all": lambda method, path: path.startswith("/api/"),
    "create": lambda method, path: method == "POST" and path.rstrip("/") == "/api/deposit/depositions",
    "search": lambda method, path: method == "GET" and path.rstrip("/") == "/api/deposit/depositions",
    "newversion": lambda method, path: method == "POST" and path.endswith("/actions/newversion"),
    "publish": lambda method, path: method == "POST" and path.endswith("/actions/publish"),
    "metadata": lambda method, path: method == "PUT" and path.startswith("/api/deposit/depositions/"),
    "file-delete": lambda method, path: method == "DELETE" and "/files/" in path and "/deposit/" in path,
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.errors, self.headers = status, message, errors, headers or {}


def validation_error(field: str, message: str) -> ApiError:
    return ApiError(400, "A validation error occurred.", [{"field": field, "messages": [message]}])


class State:
    """Depositions, buckets, options and the request log: all in memory, guarded by one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.tokens: dict[str, set[str]] = {}
            self.depositions: dict[int, dict[str, Any]] = {}
            self.buckets: dict[str, dict[str, Any]] = {}  # uuid -> {"deposition": id, "files": {name: file}}
            self.ids = itertools.count(1000001, 2)
            self.log: list[dict[str, Any]] = []
            self.faults: dict[str, Any] = {"every": 0, "kinds": [], "paths": "files"}
            self.fault_counter = 0
            self.faults_made = 0
            self.max_files = 100
            self.quota_bytes = 50 * 10**9
            self.max_file_bytes = 50 * 10**9
            self.options = dict(DEFAULT_OPTIONS)
            self.hits: dict[str, collections.deque[float]] = {}
            self.communities: dict[str, dict[str, Any]] = {}  # slug -> {"id", "curators", "closed"}
            self.parent_communities: dict[str, list[str]] = {}  # conceptrecid -> the slugs its record is in
            self.requests: list[dict[str, Any]] = []  # community inclusion requests

    def concept(self, conceptrecid: str) -> list[dict[str, Any]]:
        return [d for d in self.depositions.values() if d["conceptrecid"] == conceptrecid]

    def latest(self, conceptrecid: str) -> dict[str, Any] | None:
        """The latest published version (invenio-drafts-resources records/systemfields/versions.py latest_id)."""
        published = [d for d in self.concept(conceptrecid) if d["published_at"] is not None]
        return max(published, key=lambda d: d["published_at"]) if published else None

    def next_draft(self, conceptrecid: str) -> dict[str, Any] | None:
        """The concept's unpublished draft (versions.py next_draft_id): a first version or a new version."""
        return next((d for d in self.concept(conceptrecid) if d["published_at"] is None), None)


STATE = State()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MockZenodo/2.0"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    # -- plumbing -------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        self._body_left = int(self.headers.get("Content-Length") or 0)
        self._early = False
        # The server percent-decodes the path; `?` and `#` (unquoted) ended it already.
        path = unquote(url.path) if "%2f" not in url.path.lower() else url.path
        if path.startswith("/_mock/"):
            self._entry: dict[str, Any] = {}
            self._control(method, path, query)
            return
        self._entry = {"method": method, "url": self.path, "path": path, "token_in_url": "access_token" in query,
                       "user_agent": self.headers.get("User-Agent", ""), "time": time.time(), "status": None}
        with STATE.lock:
            STATE.log.append(self._entry)
        try:
            self._limit_rate(method, path)
            fault = self._fault_for(method, path)
            if fault and self._inject_before(fault):
                return
            if path.startswith("/api/records/"):
                status, body, headers = self._records_api(path, query)
            else:
                token = self._token(query)
                status, body = self._route(method, path, query, token)
                headers = {}
            if fault == "lost":
                self._hang_up()
            elif fault == "after-504":
                self._reply(504, {"status": 504, "message": "Gateway Time-out"})
            else:
                self._reply(status, body, headers)
        except ApiError as error:
            if not self._early:
                self._drain()
            body: dict[str, Any] = {"status": error.status, "message": error.message}
            if error.errors is not None:
                body["errors"] = error.errors
            self._reply(error.status, body, error.headers, close=error.status in (411, 413))

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None, close: bool = False) -> None:
        self._entry["status"] = status
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if "X-RateLimit-Limit" not in (headers or {}):
            self.send_header("X-RateLimit-Limit", "100")
            self.send_header("X-RateLimit-Remaining", "99")
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _hang_up(self) -> None:
        self._entry["status"] = "dropped"
        self.close_connection = True
        self.connection.shutdown(2)

    def _read(self, amount: int) -> bytes:
        """Up to `amount` bytes of the body not read yet."""
        data = self.rfile.read(min(amount, self._body_left)) if self._body_left > 0 else b""
        self._body_left -= len(data)
        if not data:
            self._body_left = 0
        return data

    def _drain(self) -> None:
        while self._body_left > 0 and self._read(1 << 20):
            pass

    def _json_body(self) -> Any:
        raw = self._read(self._body_left)
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            # invenio-records-resources resources/errors.py: JSONDecodeError -> 400
            raise ApiError(400, "Unable to decode JSON data in request body.") from None

    def _token(self, query: dict[str, list[str]]) -> str:
        header = self.headers.get("Authorization", "")
        token = header[len("Bearer "):] if header.startswith("Bearer ") else (query.get("access_token") or [""])[0]
        if token not in STATE.tokens:
            # Zenodo answers 403 for a missing or invalid token; its docs say 401 (zenodo-rdm
            # site/tests/legacy/deposits/test_rest_api_simpleflow.py: "TODO: Should be: 401").
            raise ApiError(403, "Permission denied.")
        return token

    # -- rate limits and faults -----------------------------------------------------------------------------

    def _limit_rate(self, method: str, path: str) -> None:
        """Flask-Limiter as invenio-app sets it up: a moving window per User-Agent and client address.

        invenio-app invenio_app/config.py: RATELIMIT_AUTHENTICATED_USER = "5000 per hour;100 per minute",
        RATELIMIT_STRATEGY = "moving-window", headers enabled; invenio_app/limiter.py
        useragent_and_ip_limit_key. Searches have their own, stricter window (zenodo-rdm invenio.cfg
        RATELIMIT_PER_ENDPOINT, 30 per minute). A refused request is not counted and not carried out.
        """
        key = f"{self.headers.get('User-Agent', '')}@{self.client_address[0]}"
        windows = [("all", STATE.options["rate"])]
        if FAULT_PATHS["search"](method, path):
            windows.append(("search", STATE.options["search_rate"]))
        with STATE.lock:
            now = time.monotonic()
            for name, window in windows:
                if not window:
                    continue
                count, seconds = window
                hits = STATE.hits.setdefault(f"{name}:{key}", collections.deque())
                while hits and hits[0] <= now - seconds:
                    hits.popleft()
                if len(hits) >= count:
                    wait = max(1, math.ceil(hits[0] + seconds - now))
                    raise ApiError(429, "Too many requests.", headers={
                        "Retry-After": str(wait), "X-RateLimit-Limit": str(count), "X-RateLimit-Remaining": "0",
                        "X-RateLimit-Reset": str(int(time.time() + wait))})
            for name, window in windows:
                if window:
                    STATE.hits[f"{name}:{key}"].append(now)

    def _fault_for(self, method: str, path: str) -> str | None:
        faults = STATE.faults
        if not faults["every"] or not FAULT_PATHS[faults["paths"]](method, path):
            return None
        with STATE.lock:
            if faults.get("limit") is not None and STATE.faults_made >= faults["limit"]:
                return None
            STATE.fault_counter += 1
            if STATE.fault_counter % faults["every"]:
                return None
            STATE.faults_made += 1
            return str(faults["kinds"][(STATE.fault_counter // faults["every"]) % len(faults["kinds"])])

    def _inject_before(self, kind: str) -> bool:
        """Faults that answer instead of the API; False for those applied after it ran (lost, after-504)."""
        if kind in ("lost", "after-504"):
            return False
        retry_after = {"Retry-After": str(STATE.faults.get("retry_after", 1))}
        if kind == "drop":
            # Read part of the body, then drop the connection without answering.
            self._read(min(self._body_left // 2, 1 << 20))
            self._hang_up()
            return True
        if kind.startswith("early-"):
            status = int(kind.split("-")[1])
            self._reply(status, {"status": status, "message": "Too many requests." if status == 429
                                 else "Service unavailable."}, retry_after, close=True)
            self._linger()
            return True
        self._drain()
        status = int(kind)
        messages = {429: "Too many requests.", 503: "Service unavailable.", 500: "Internal server error.",
                    413: "Request Entity Too Large"}
        # 413 with Retry-After too: RFC 9110 lets a server say the condition is temporary; it stays final for us.
        body: dict[str, Any] = {"status": status, "message": messages.get(status, "Error.")}
        if status == 400:  # invenio-records-resources resources/errors.py: a ValidationError's field messages
            body |= {"message": "A validation error occurred.",
                     "errors": [{"field": "metadata.creators.0.name", "messages": ["Invalid value."]}]}
        self._reply(status, body, retry_after if status in (429, 503, 413) else None)
        return True

    def _linger(self) -> None:
        """A lingering close, as nginx does after an early answer: the client can finish sending and read it."""
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_WR)
        self._drain()

    def _control(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        body = self._json_body() if method == "POST" else {}
        with STATE.lock:
            if path == "/_mock/log":
                self._reply(200, STATE.log[int((query.get("since") or ["0"])[0]):])
            elif path == "/_mock/state":
                self._reply(200, [self._stored(d) for d in STATE.depositions.values()])
            elif path == "/_mock/faults":
                STATE.faults = {"every": body.get("every", 0), "kinds": body.get("kinds", ["503"]),
                                "paths": body.get("paths", "files"), "retry_after": body.get("retry_after", 1),
                                "limit": body.get("limit")}
                STATE.fault_counter = STATE.faults_made = 0
                self._reply(200, STATE.faults)
            elif path == "/_mock/limits":
                STATE.max_files = body.get("max_files", STATE.max_files)
                STATE.quota_bytes = body.get("quota_bytes", STATE.quota_bytes)
                STATE.max_file_bytes = body.get("max_file_bytes", STATE.max_file_bytes)
                self._reply(200, {"max_files": STATE.max_files, "quota_bytes": STATE.quota_bytes,
                                  "max_file_bytes": STATE.max_file_bytes})
            elif path == "/_mock/options":
                unknown = set(body) - set(DEFAULT_OPTIONS)
                if unknown:
                    self._reply(400, {"message": f"unknown options {sorted(unknown)}"})
                    return
                STATE.options.update(body)
                STATE.hits.clear()
                self._reply(200, STATE.options)
            elif path == "/_mock/delete_record":
                STATE.depositions[int(body["id"])]["deleted"] = True
                self._reply(200, {})
            elif path == "/_mock/curate":
                curate(STATE.depositions[int(body["id"])], body["metadata"])
                self._reply(200, {})
            elif path == "/_mock/tokens":
                STATE.tokens[body["token"]] = set(body.get("scopes", ["deposit:write", "deposit:actions"]))
                self._reply(200, {})
            elif path == "/_mock/communities":
                add_community(body)
                self._reply(200, {})
            elif path == "/_mock/reset":
                STATE.reset()
                self._reply(200, {})
            else:
                self._reply(404, {"status": 404, "message": "No such control."})

    def _stored(self, deposition: dict[str, Any]) -> dict[str, Any]:
        stored = {key: value for key, value in deposition.items() if key != "owner"}
        stored["owner_hash"] = hashlib.sha256(deposition["owner"].encode()).hexdigest()
        stored["files"] = {key: {"size": f["size"], "md5": f["md5"], "id": f["id"]}
                           for key, f in STATE.buckets[deposition["bucket"]]["files"].items() if not f.get("pending")}
        return stored

    # -- the API --------------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict[str, list[str]], token: str) -> tuple[int, Any]:
        # Routes: zenodo-rdm site/zenodo_rdm/legacy/resources.py (LegacyRecordResource, LegacyDraftFilesResource,
        # LegacyFilesRESTResource).
        parts = path.strip("/").split("/")
        if parts[:3] == ["api", "deposit", "depositions"]:
            rest = parts[3:]
            if not rest:
                if method == "POST":
                    return self._create(token)
                if method == "GET":
                    return 200, self._search(query, token)
            elif len(rest) == 1:
                deposition = self._owned(rest[0], token)
                if method == "GET":
                    with STATE.lock:
                        return 200, self._view(deposition)
                if method == "PUT":
                    return self._update(deposition)
                if method == "DELETE":
                    return self._delete(deposition)
            elif rest[1] == "files":
                deposition = self._owned(rest[0], token)
                if len(rest) == 2 and method == "GET":
                    with STATE.lock:
                        return 200, self._file_list(deposition)
                if len(rest) == 3 and method == "DELETE":
                    return self._delete_file_by_id(deposition, rest[2])
            elif rest[1] == "actions" and len(rest) == 3 and method == "POST":
                deposition = self._owned(rest[0], token)
                return self._action(deposition, rest[2], token)
        if parts[:2] == ["api", "files"] and len(parts) >= 3:
            if len(parts) != 4 or "%2F" in path.upper():
                raise ApiError(404, "The requested URL was not found on the server.")
            bucket = self._bucket(parts[2], token)
            if method == "PUT":
                return self._put_file(bucket, parts[3])
            if method == "DELETE":
                return self._delete_file(bucket, parts[3])
        raise ApiError(405 if path.startswith("/api/") else 404, "The method is not allowed for the requested URL.")

    def _records_api(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        """The RDM record endpoints: a record (with its full metadata), its draft, and its `latest` redirect."""
        parts = path.strip("/").split("/")  # api, records, <id>[, versions, latest | draft]
        if parts[3:] == ["draft"]:
            token = self._token(query)
            with STATE.lock:
                return 200, self._rdm_draft(self._owned(parts[2], token)), {}
        with STATE.lock:
            record = self._existing(parts[2])
            if record["published_at"] is None:
                # invenio-rdm-records: an unpublished id has no record (PIDUnregistered -> 404).
                raise ApiError(404, "The persistent identifier is not registered.")
            if parts[3:] == ["versions", "latest"]:
                # invenio-drafts-resources resources/records/resource.py read_latest: a redirect to the latest.
                latest = STATE.latest(record["conceptrecid"])
                assert latest is not None
                return 302, None, {"Location": f"{self._base()}/api/records/{latest['id']}"}
            if parts[3:] in (["communities"], ["requests"]):
                return 200, record_communities_api(record, parts[3]), {}
            if len(parts) == 3:
                return 200, self._rdm_record(record), {}
        raise ApiError(404, "Not found.")

    def _rdm_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """GET /api/records/{id}: the published version, its full metadata and its place among the versions.

        invenio-drafts-resources records/systemfields/versions.py (VersionsField): `index` counts the concept's
        published versions from 1, in the order they were published.
        """
        published = sorted((d for d in STATE.concept(record["conceptrecid"]) if d["published_at"] is not None),
                           key=lambda d: d["published_at"])
        metadata = record.get("published_rdm") or rdm_of(record["published_metadata"])
        return {"id": str(record["id"]), "parent": {"id": record["conceptrecid"]}, "metadata": copy.deepcopy(metadata),
                "versions": {"index": published.index(record) + 1, "is_latest": record is published[-1]},
                "links": {"self": f"{self._base()}/api/records/{record['id']}"}}

    def _rdm_draft(self, deposition: dict[str, Any]) -> dict[str, Any]:
        """GET /api/records/{id}/draft (invenio-drafts-resources read_draft): an unpublished draft, or the open
        edit of a published record; a published record without one has no draft (404)."""
        if deposition["published_at"] is not None and not deposition["editing"]:
            raise ApiError(404, "The persistent identifier does not exist.")
        metadata = deposition.get("rdm") or rdm_of(deposition["metadata"])
        return {"id": str(deposition["id"]), "parent": {"id": deposition["conceptrecid"]},
                "metadata": copy.deepcopy(metadata), "is_published": deposition["published_at"] is not None}

    def _existing(self, raw_id: str) -> dict[str, Any]:
        try:
            deposition = STATE.depositions[int(raw_id)]
        except (ValueError, KeyError):
            raise ApiError(404, "The persistent identifier does not exist.") from None
        if deposition.get("deleted"):
            # invenio-records-resources resources/errors.py: PIDDeletedError -> 410.
            raise ApiError(410, "The record has been deleted.")
        return deposition

    def _owned(self, raw_id: str, token: str) -> dict[str, Any]:
        deposition = self._existing(raw_id)
        if deposition["owner"] != token:
            # invenio-records-resources resources/errors.py: PermissionDeniedError -> 403.
            raise ApiError(403, "Permission denied.")
        return deposition

    def _bucket(self, bucket_id: str, token: str) -> dict[str, Any]:
        bucket = STATE.buckets.get(bucket_id)
        if bucket is None:
            raise ApiError(404, "Bucket does not exist.")
        self._owned(str(bucket["deposition"]), token)
        return bucket

    def _base(self) -> str:
        return f"http://{self.headers.get('Host')}"

    def _links(self, deposition: dict[str, Any]) -> dict[str, str]:
        """zenodo-rdm site/zenodo_rdm/legacy/services.py LegacyRecordServiceConfig.links_item."""
        base, dep_id = self._base(), deposition["id"]
        api = f"{base}/api/deposit/depositions/{dep_id}"
        # `latest_draft` is a RecordEndpointLink("legacy_records.read_draft") of the record itself: it points at
        # the deposition it is part of, never at another version's draft. Option "next" gives what the legacy
        # docs describe instead (the concept's open draft), for clients that still read it that way.
        latest_draft = dep_id
        if STATE.options["latest_draft_link"] == "next":
            open_draft = STATE.next_draft(deposition["conceptrecid"])
            latest_draft = open_draft["id"] if open_draft else dep_id
        links = {"self": api, "html": f"{base}/deposit/{dep_id}", "bucket": f"{base}/api/files/{deposition['bucket']}",
                 "files": f"{api}/files", "publish": f"{api}/actions/publish", "edit": f"{api}/actions/edit",
                 "discard": f"{api}/actions/discard", "newversion": f"{api}/actions/newversion",
                 "latest_draft": f"{base}/api/deposit/depositions/{latest_draft}",
                 "latest_draft_html": f"{base}/deposit/{latest_draft}"}
        if deposition["published_at"] is not None:
            links |= {"record": f"{base}/api/records/{dep_id}", "record_html": f"{base}/records/{dep_id}",
                      "latest": f"{base}/api/records/{dep_id}/versions/latest",
                      "latest_html": f"{base}/records/{dep_id}/latest", "doi": f"https://doi.org/{deposition['doi']}"}
        return links

    def _view(self, deposition: dict[str, Any], with_bucket: bool = True) -> dict[str, Any]:
        """zenodo-rdm site/zenodo_rdm/legacy/serializers/schemas/legacyjson.py LegacySchema."""
        published = deposition["published_at"] is not None
        # dump_state: "unsubmitted" until published, "inprogress" while a published record is edited, else "done";
        # `submitted` is is_published (True while an edit is open).
        state = ("inprogress" if deposition.get("editing") else "done") if published else "unsubmitted"
        view = {"id": deposition["id"], "record_id": deposition["id"], "conceptrecid": deposition["conceptrecid"],
                "state": state, "submitted": published, "metadata": dump_record_fields(deposition),
                "created": deposition["created"], "modified": deposition["modified"],
                "title": deposition["metadata"].get("title", "")}
        if deposition.get("doi"):
            view["doi"] = deposition["doi"]
        concept_published = any(d["published_at"] is not None for d in STATE.concept(deposition["conceptrecid"]))
        if concept_published:  # the parent's DOI exists once a first version is published
            view["conceptdoi"] = f"10.5072/zenodo.{deposition['conceptrecid']}"
        view["files"] = self._file_list(deposition)
        view["links"] = self._links(deposition)
        if not with_bucket:
            # services.py has_bucket_id: the bucket is not indexed, so search results carry no bucket link.
            del view["links"]["bucket"]
        return view

    def _new_deposition(self, token: str, metadata: dict[str, Any], conceptrecid: str | None = None) -> dict[str, Any]:
        dep_id = next(STATE.ids)
        bucket_id = str(uuid.uuid4())
        STATE.buckets[bucket_id] = {"deposition": dep_id, "files": {}, "locked": False}
        now = datetime.now(timezone.utc).isoformat()
        deposition = {"id": dep_id, "conceptrecid": conceptrecid or str(dep_id - 1), "metadata": metadata,
                      "owner": token, "bucket": bucket_id, "created": now, "modified": now,
                      "indexed_at": time.monotonic() + STATE.options["search_lag"], "published_at": None,
                      "editing": False, "publishing": False}
        STATE.depositions[dep_id] = deposition
        return deposition

    def _create(self, token: str) -> tuple[int, Any]:
        metadata = self._metadata_body()
        with STATE.lock:
            return 201, self._view(self._new_deposition(token, metadata))

    def _metadata_body(self) -> dict[str, Any]:
        """The body of a create or update: zenodo-rdm legacy/deserializers/schemas.py LegacySchema."""
        body = self._json_body()
        unknown = set(body) - {"metadata"}
        if unknown:  # LegacySchema: unknown = RAISE
            raise ApiError(400, "A validation error occurred.",
                           [{"field": key, "messages": ["Unknown field."]} for key in sorted(unknown)])
        return load_metadata(body.get("metadata", {}))

    def _search(self, query: dict[str, list[str]], token: str) -> list[dict[str, Any]]:
        """GET /deposit/depositions: the user's drafts search (invenio-drafts-resources search_user_records).

        Results come from the search index: a deposition shows only `search_lag` seconds after it was made
        (zenodo-rdm indexes after the request commits). Without `allversions` (or the legacy `all_versions`,
        zenodo-rdm site/zenodo_rdm/params.py) only the latest draft of each concept is listed
        (invenio-drafts-resources services/records/config.py: AllVersionsParam on versions.is_latest_draft).
        `status` is accepted and ignored by the drafts search (no interpreter for it).
        """
        size = int((query.get("size") or ["10"])[0])
        if size > 100:  # zenodo-rdm params.py ZenodoArgsSchema MAX_PAGE_SIZE_AUTHENTICATED
            raise ApiError(400, "A validation error occurred.",
                           [{"field": "size", "messages": ["Page size cannot be greater than 100."]}])
        flag = (query.get("allversions") or query.get("all_versions") or [None])[0]
        all_versions = flag is not None and flag.lower() not in ("false", "0")
        now = time.monotonic()
        with STATE.lock:
            visible = [d for d in STATE.depositions.values()
                       if d["owner"] == token and not d.get("deleted") and d["indexed_at"] <= now]
            if not all_versions:
                visible = [d for d in visible if d is _latest_draft_of(d["conceptrecid"], visible)]
            found = [d for d in visible if _matches((query.get("q") or [""])[0], d)]
            found.sort(key=lambda d: d["id"], reverse=True)
            page = int((query.get("page") or ["1"])[0])
            return [self._view(d, with_bucket=False) for d in found[(page - 1) * size: page * size]]

    def _update(self, deposition: dict[str, Any]) -> tuple[int, Any]:
        if deposition["published_at"] is not None and not deposition["editing"]:
            # A published record without an open edit has no draft to update (test_rest_api_simpleflow.py:
            # "Not allowed to edit drafts" -> 404).
            raise ApiError(404, "The persistent identifier does not exist.")
        metadata = self._metadata_body()
        with STATE.lock:
            # invenio-rdm-records services/components/metadata.py update_draft: the metadata is REPLACED, by what
            # the deposit API's view carries: whatever only the full (RDM) metadata held is gone.
            deposition["metadata"] = metadata
            deposition.pop("rdm", None)
            deposition["modified"] = datetime.now(timezone.utc).isoformat()
            return 200, self._view(deposition)

    def _delete(self, deposition: dict[str, Any]) -> tuple[int, Any]:
        with STATE.lock:
            if deposition["published_at"] is not None:
                if not deposition["editing"]:
                    raise ApiError(404, "The persistent identifier does not exist.")  # test_simple_rest_flow
                # Discarding an edit puts back the published metadata.
                deposition.update(editing=False, metadata=copy.deepcopy(deposition["published_metadata"]),
                                  rdm=copy.deepcopy(deposition.get("published_rdm")))
                return 204, None
            del STATE.depositions[deposition["id"]]
            del STATE.buckets[deposition["bucket"]]
        return 204, None

    def _file_list(self, deposition: dict[str, Any]) -> list[dict[str, Any]]:
        """legacyjson.py dump_files: files whose upload finished, with the MD5 without its "md5:" prefix."""
        base = self._base()
        files = STATE.buckets[deposition["bucket"]]["files"].values()
        return [{"id": f["id"], "filename": f["key"], "filesize": f["size"], "checksum": f["md5"],
                 "links": {"self": f"{base}/api/deposit/depositions/{deposition['id']}/files/{f['id']}",
                           "download": f"{base}/api/records/{deposition['id']}/draft/files/"
                                       f"{quote(f['key'], safe='')}/content"}}
                for f in files if not f.get("pending")]

    def _delete_file_by_id(self, deposition: dict[str, Any], file_id: str) -> tuple[int, Any]:
        """resources.py LegacyDraftFilesResource.delete: 204, or 404 when no file has that id."""
        with STATE.lock:
            bucket = STATE.buckets[deposition["bucket"]]
            if bucket["locked"]:
                raise ApiError(403, "Permission denied.")  # test_simple_rest_flow: "Not allowed to delete file"
            for key, stored in list(bucket["files"].items()):
                if stored["id"] == file_id:
                    del bucket["files"][key]
                    return 204, None
        raise ApiError(404, "Not Found")

    def _put_file(self, bucket: dict[str, Any], name: str) -> tuple[int, Any]:
        """resources.py LegacyFilesRESTResource.set_object and _create_or_update_file."""
        if bucket["locked"]:
            raise ApiError(403, "Permission denied.")
        if "Content-Length" not in self.headers:
            raise ApiError(411, "Length Required.")
        length = int(self.headers["Content-Length"])
        if length > MAX_CONTENT_LENGTH:
            # set_max_content_length (invenio-records-resources resources/files/resource.py): werkzeug refuses the
            # request before reading it.
            self._early = True
            raise ApiError(413, "Request Entity Too Large")
        kind = self.headers.get("Content-Type", "application/octet-stream").split(";")[0].strip()
        if kind != "application/octet-stream":
            raise ApiError(415, "Unsupported media type.")
        with STATE.lock:
            files = bucket["files"]
            if name not in files and len([f for f in files.values() if not f.get("pending")]) >= STATE.max_files:
                # invenio-records-resources resources/errors.py FilesCountExceededException -> 400
                raise ApiError(400, "Uploading selected files will result in exceeding the max amount per record.")
            stays = sum(f["size"] for key, f in files.items() if key != name and not f.get("pending"))
            # invenio-files-rest limiters.py: the smaller of the quota left and the maximum file size wins.
            limits = [(STATE.quota_bytes - stays, "Bucket quota exceeded."),
                      (STATE.max_file_bytes, "Maximum file size exceeded.")]
            limit, reason = min(limits)
            if length > limit:
                raise ApiError(400, reason)
            previous = files.get(name)
            pending = {"id": str(uuid.uuid4()), "key": name, "size": length, "md5": "", "pending": True}
            if previous is None:
                files[name] = pending
        digest, received = hashlib.md5(), 0
        while received < length:
            chunk = self._read(min(length - received, 1 << 20))
            if not chunk:
                break
            digest.update(chunk)
            received += len(chunk)
        if received != length:
            # The upload never finished: the file stays pending (hidden, and it blocks publishing).
            self.close_connection = True
            return 400, {"status": 400, "message": "The file upload transfer failed, please try again."}
        with STATE.lock:
            if length == 0:
                # invenio-records-resources services/files/components/metadata.py commit_file, with zenodo-rdm
                # invenio.cfg RECORDS_RESOURCES_ALLOW_EMPTY_FILES = False; the unit of work rolls back.
                if files.get(name) is pending:
                    del files[name]
                raise ApiError(400, "Empty files are not accepted.")
            # _create_or_update_file deletes an existing key first, then adds the new content: a replaced file gets
            # a new file id (its FileInstance), an unchanged inherited one keeps the id it had.
            stored = {"id": str(uuid.uuid4()), "key": name, "size": length, "md5": digest.hexdigest()}
            files[name] = stored
            deposition = STATE.depositions[bucket["deposition"]]
        base = self._base()
        return 201, {"key": name, "size": length, "checksum": f"md5:{stored['md5']}",
                     "mimetype": "application/octet-stream", "version_id": str(uuid.uuid4()),
                     "links": {"self": f"{base}/api/files/{deposition['bucket']}/{quote(name, safe='')}"}}

    def _delete_file(self, bucket: dict[str, Any], name: str) -> tuple[int, Any]:
        """resources.py LegacyFilesRESTResource.delete_object.

        It deletes the file, then its response handler fails on the empty body: zenodo.org answered 500 AFTER
        deleting until August 2026 (option bucket_delete "500"); a retry finds no key (FileKeyNotFoundError, 404).
        """
        with STATE.lock:
            if bucket["locked"]:
                raise ApiError(403, "Permission denied.")
            if name not in bucket["files"]:
                raise ApiError(404, f"File with key {name} not found.")
            del bucket["files"][name]
        if STATE.options["bucket_delete"] == "500":
            raise ApiError(500, "Internal server error.")
        return 204, None

    def _action(self, deposition: dict[str, Any], action: str, token: str) -> tuple[int, Any]:
        if action == "publish":
            return self._publish(deposition)
        with STATE.lock:
            if action == "newversion":
                return self._new_version(deposition, token)
            if action == "discard":
                return self._delete(deposition)
            if action == "edit":
                if deposition["published_at"] is None:
                    raise ApiError(404, "The persistent identifier is not registered.")
                deposition["editing"] = True
                return 201, self._view(deposition)
        raise ApiError(404, "The requested URL was not found on the server.")

    def _publish(self, deposition: dict[str, Any]) -> tuple[int, Any]:
        """invenio-drafts-resources services/records/components/base.py publish, and its validation."""
        while deposition["publishing"]:  # a second publish waits for the first one's transaction
            time.sleep(0.05)
        with STATE.lock:
            if deposition["published_at"] is not None and not deposition["editing"]:
                # test_rest_api_simpleflow.py: "Second request will return forbidden since it's already published"
                # (404 today, TODO 403).
                raise ApiError(404, "The persistent identifier does not exist.")
            metadata = deposition["metadata"]
            errors = [{"field": f"metadata.{field}", "messages": ["Missing data for required field."]}
                      for field in ("upload_type", "title", "creators", "description") if not metadata.get(field)]
            # invenio-rdm-records services/schemas/metadata.py MetadataSchema: title and description
            # validate=Length(min=3); a draft is saved whatever it holds, the publish is refused.
            errors += [{"field": f"metadata.{field}", "messages": ["Shorter than minimum length 3."]}
                       for field in ("title", "description") if 0 < len(str(metadata.get(field) or "")) < 3]
            bucket = STATE.buckets[deposition["bucket"]]
            if any(f.get("pending") for f in bucket["files"].values()):
                errors.append({"field": "files",
                               "messages": ["One or more files have not completed their transfer, please wait."]})
            if not bucket["files"]:
                errors.append({"field": "files.enabled", "messages": [
                    "Missing uploaded files. To disable files for this record please mark it as metadata-only."]})
            if errors:
                raise ApiError(400, "A validation error occurred.", errors)
            deposition["publishing"] = True
        seconds, gateway = STATE.options["publish_seconds"], STATE.options["gateway_timeout"]
        if gateway is not None and seconds > gateway:
            # A proxy gives up waiting; the publish goes on behind it and completes.
            threading.Timer(seconds, self._complete_publish, (deposition,)).start()
            time.sleep(gateway)
            raise ApiError(504, "Gateway Time-out")
        time.sleep(seconds)
        with STATE.lock:
            return 202, self._view(self._complete_publish(deposition))

    def _complete_publish(self, deposition: dict[str, Any]) -> dict[str, Any]:
        with STATE.lock:
            if deposition["published_at"] is None:
                deposition.update(doi=f"10.5072/zenodo.{deposition['id']}", published_at=time.monotonic())
                STATE.buckets[deposition["bucket"]]["locked"] = True
            include_communities(deposition)
            deposition.update(published_rdm=copy.deepcopy(deposition.get("rdm")))
            deposition.update(editing=False, publishing=False, published_metadata=copy.deepcopy(deposition["metadata"]),
                              modified=datetime.now(timezone.utc).isoformat())
            return deposition

    def _new_version(self, deposition: dict[str, Any], token: str) -> tuple[int, Any]:
        """POST .../actions/newversion: zenodo-rdm legacy/resources.py LegacyRecordResource.new_version.

        It calls the service's new_version, then import_files, then answers with the new draft itself.
        invenio-drafts-resources services/records/service.py new_version: an open draft of the concept is
        returned as it is; otherwise a draft is made from the LATEST published version, whatever version's id
        was given. import_files (service.py, components/base.py) copies the latest version's files into it, and
        refuses a draft that holds files: "Please remove all files first." (the whole request rolls back).
        """
        if deposition["published_at"] is None:
            raise ApiError(404, "The persistent identifier is not registered.")
        concept = deposition["conceptrecid"]
        latest = STATE.latest(concept)
        assert latest is not None
        draft = STATE.next_draft(concept)
        if draft is None:
            # invenio-rdm-records services/components/metadata.py new_version: publication_date and version are
            # not copied; publication_date is generated (today).
            metadata = {k: copy.deepcopy(v) for k, v in latest["metadata"].items()
                        if k not in ("publication_date", "version")}
            metadata["publication_date"] = date.today().isoformat()
            draft = self._new_deposition(token, metadata, conceptrecid=concept)
            if latest.get("published_rdm"):
                draft["rdm"] = {k: copy.deepcopy(v) for k, v in latest["published_rdm"].items()
                                if k not in ("publication_date", "version")} | {"publication_date": metadata[
                                    "publication_date"]}
        files = STATE.buckets[draft["bucket"]]["files"]
        if files:
            raise validation_error("files.enabled", "Please remove all files first.")
        # Copied files point at the same file instances: they keep their ids.
        files.update({key: dict(f) for key, f in STATE.buckets[latest["bucket"]]["files"].items()
                      if not f.get("pending")})
        return 201, self._view(draft)


def _latest_draft_of(conceptrecid: str, visible: list[dict[str, Any]]) -> dict[str, Any] | None:
    """versions.py is_latest_draft, as far as the index shows it: the open draft, else the latest version."""
    versions = [d for d in visible if d["conceptrecid"] == conceptrecid]
    drafts = [d for d in versions if d["published_at"] is None]
    if drafts:
        return drafts[0]
    published = [d for d in versions if d["published_at"] is not None]
    return max(published, key=lambda d: d["published_at"]) if published else None


QUERY_TERM = re.compile(r'(\w+):("(?:[^"\\]|\\.)*"|\S+)')


def _matches(q: str, deposition: dict[str, Any]) -> bool:
    """The query fields the uploader uses (zenodo-rdm site/zenodo_rdm/queryparser.py ZENODO_LEGACY_SEARCH_MAP):
    conceptrecid (parent.id), recid (id), title (metadata.title, a phrase matches within it); terms joined by AND.
    """
    q = q.strip()
    if not q:
        return True
    terms = [t for t in re.split(r"\s+AND\s+", q) if t]
    for term in terms:
        match = QUERY_TERM.fullmatch(term.strip())
        if not match:
            raise ApiError(400, "Invalid querystring parameters.")
        field, value = match.group(1), match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        if field == "conceptrecid" and deposition["conceptrecid"] != value:
            return False
        if field == "recid" and str(deposition["id"]) != value:
            return False
        if field == "title" and value.lower() not in str(deposition["metadata"].get("title", "")).lower():
            return False
        if field not in ("conceptrecid", "recid", "title"):
            raise ApiError(400, "Invalid querystring parameters.")
    return True


def load_metadata(metadata: Any) -> dict[str, Any]:
    """Zenodo's reading of deposition metadata (zenodo-rdm legacy/deserializers/).

    Unknown keys are dropped (MetadataSchema unknown=EXCLUDE). A missing publication_date becomes today
    (metadata.py load_default); a missing license becomes CC0-1.0 for datasets and CC-BY-4.0 otherwise, for open
    or embargoed access (schemas.py load_default_license): a PUT that leaves out a curated license replaces it.
    """
    if not isinstance(metadata, dict):
        raise validation_error("metadata", "Not a mapping.")
    errors = []
    if "upload_type" in metadata and metadata["upload_type"] not in UPLOAD_TYPES:
        errors.append({"field": "metadata.upload_type", "messages": ["Invalid upload type."]})
    creators = metadata.get("creators")
    if creators is not None and (not isinstance(creators, list) or not all(
            isinstance(c, dict) and isinstance(c.get("name"), str) and c["name"] for c in creators)):
        errors.append({"field": "metadata.creators", "messages": ["Creators must be a list of {name: ...}."]})
    if "publication_date" in metadata and not DATE.match(str(metadata["publication_date"])):
        errors.append({"field": "metadata.publication_date", "messages": ["Not a valid date."]})
    if errors:
        raise ApiError(400, "A validation error occurred.", errors)
    loaded = normal_forms({key: copy.deepcopy(value) for key, value in metadata.items() if key in KNOWN_METADATA})
    if loaded:
        loaded.setdefault("publication_date", date.today().isoformat())
        if "license" not in loaded and loaded.get("access_right", "open") in ("open", "embargoed"):
            loaded["license"] = "CC0-1.0" if loaded.get("upload_type") == "dataset" else "CC-BY-4.0"
    return load_record_fields(loaded)


# -- record fields: license, people's identifiers, related works, access, reserved DOI, communities -------------
# (zenodo-rdm 6386403 and invenio-rdm-records 1f23bb9; the vocabularies are uploader/zenodo's vendored copies of
# Zenodo's, each citing its source file.)


def load_record_fields(metadata: dict[str, Any]) -> dict[str, Any]:
    """The legacy deserializer's reading of the fields a record option sets, and the errors it answers."""
    errors: list[dict[str, Any]] = []
    if "license" in metadata:
        # deserializers/metadata.py load_rights: legacy_to_rdm, else "Invalid license provided"; the view shows
        # the RDM id's legacy name (serializers/schemas/common.py resolve_license, licenses.py rdm_to_legacy).
        value = metadata["license"]
        rdm_id = vocab.license_id(str(value.get("id", "") if isinstance(value, dict) else value))
        if rdm_id is None:
            errors.append({"field": "metadata.license", "messages": [f"Invalid license provided: {value}"]})
        else:
            metadata["license"] = LEGACY_NAMES.get(rdm_id, rdm_id)
    for key in ("creators", "contributors"):
        for index, person in enumerate(metadata.get(key) or []):
            errors += _load_person(person, f"metadata.{key}.{index}", contributor=key == "contributors")
    for index, item in enumerate(metadata.get("related_identifiers") or []):
        errors += _load_related(item, f"metadata.related_identifiers.{index}")
    if metadata.get("access_right") == "embargoed" and not metadata.get("embargo_date"):
        errors.append({"field": "metadata", "messages": ["Unknown access type."]})  # schemas.py load_access
    communities = metadata.get("communities")
    if communities and not (isinstance(communities, list)
                            and all(isinstance(c, dict) and "identifier" in c for c in communities)):
        # schemas.py load_communities
        errors.append({"field": "communities", "messages": [
            "Communities must be an array of objects with an 'identifier' key."]})
    if errors:
        raise ApiError(400, "A validation error occurred.", errors)
    return metadata


def _load_person(person: dict[str, Any], field: str, *, contributor: bool) -> list[dict[str, Any]]:
    """deserializers/metadata.py PersonSchema.load_identifiers (normalize_orcid), then invenio-rdm-records'
    identifiers check (services/schemas/metadata.py: idutils.is_orcid); a contributor's role is the vocabulary
    id `type.lower()` (load_contributors), shown back by common.py ROLE_TYPE_MAPPING."""
    errors = []
    if person.get("orcid"):
        if not vocab.is_orcid(str(person["orcid"])):
            errors.append({"field": f"{field}.person_or_org.identifiers.0.identifier",
                           "messages": [f"Invalid value {person['orcid']}."]})
        else:
            person["orcid"] = vocab.normal_orcid(str(person["orcid"]))
    if contributor:
        role = vocab.spelled(str(person.get("type", "")), vocab.CONTRIBUTOR_TYPES)
        if role is None:
            errors.append({"field": f"{field}.role", "messages": ["Invalid value."]})
        else:
            person["type"] = role
    return errors


def _load_related(item: dict[str, Any], field: str) -> list[dict[str, Any]]:
    """deserializers/metadata.py load_related_identifiers: the scheme detected (marshmallow-utils IdentifierSchema
    over idutils), the relation a vocabulary id, shown back by common.py RelatedIdentifierSchema with its scheme."""
    scheme = vocab.identifier_scheme(str(item.get("identifier", "")))
    relation = vocab.spelled(str(item.get("relation", "")), vocab.RELATIONS)
    errors = []
    if scheme is None:
        errors.append({"field": f"{field}.identifier", "messages": ["Missing or invalid scheme."]})
    if relation is None:
        errors.append({"field": f"{field}.relation_type", "messages": ["Invalid value."]})
    if not errors:
        assert scheme is not None and relation is not None
        item.update(identifier=vocab.normal_identifier(str(item["identifier"]), scheme), relation=relation,
                    scheme=scheme)
    return errors


def dump_record_fields(deposition: dict[str, Any]) -> dict[str, Any]:
    """The legacy view's metadata: as stored, with the reserved DOI (legacyjson.py dump_prereserve_doi; 10.5281
    there, the mock's own prefix here, as its published DOIs) and the communities (common.py
    resolve_communities: the draft's own legacy ones and those its parent is in)."""
    metadata = copy.deepcopy(deposition["metadata"])
    metadata["prereserve_doi"] = {"doi": f"10.5072/zenodo.{deposition['id']}", "recid": deposition["id"]}
    slugs = {str(c.get("identifier")) for c in metadata.get("communities") or []}
    slugs |= set(STATE.parent_communities.get(deposition["conceptrecid"], []))
    if slugs:
        metadata["communities"] = [{"identifier": slug} for slug in sorted(slugs)]
    return metadata


def add_community(body: dict[str, Any]) -> None:
    """/_mock/communities {"slug": ..., "curators": [token, ...], "closed": false}: a community on Zenodo."""
    STATE.communities[body["slug"]] = {"id": str(uuid.uuid4()), "curators": set(body.get("curators", [])),
                                       "closed": bool(body.get("closed"))}


def include_communities(deposition: dict[str, Any]) -> None:
    """legacy/services.py publish: pop `legacy:communities` and `_include` each, swallowing every error.

    invenio-rdm-records services/communities/service.py _include: an unknown community raises (PID does not
    exist); one already holding the record raises; otherwise a request is created and submitted, then accepted
    at once when the publisher may include directly (a curator), else it stays submitted (include raises
    PermissionDenied, swallowed). A closed community takes no submission (submit raises): nothing is made.
    """
    wanted = [str(c.get("identifier")) for c in deposition["metadata"].pop("communities", None) or []]
    parent = STATE.parent_communities.setdefault(deposition["conceptrecid"], [])
    for slug in wanted:
        community = STATE.communities.get(slug)
        if community is None or slug in parent or (community["closed"] and deposition["owner"] not in
                                                   community["curators"]):
            continue
        accepted = deposition["owner"] in community["curators"]
        STATE.requests.append({"id": str(uuid.uuid4()), "type": "community-inclusion",
                               "status": "accepted" if accepted else "submitted",
                               "receiver": {"community": community["id"]}, "topic": {"record": str(deposition["id"])},
                               "expanded": {"receiver": {"id": community["id"], "slug": slug}}})
        if accepted:
            parent.append(slug)


def record_communities_api(record: dict[str, Any], what: str) -> dict[str, Any]:
    """GET /api/records/{id}/communities (the parent's communities) and /api/records/{id}/requests (those whose
    topic is this record), as invenio-rdm-records resources/config.py routes them, with ?expand=true."""
    if what == "communities":
        slugs = STATE.parent_communities.get(record["conceptrecid"], [])
        hits = [{"id": STATE.communities[slug]["id"], "slug": slug} for slug in slugs]
    else:
        hits = [r for r in STATE.requests if r["topic"]["record"] == str(record["id"])]
    return {"hits": {"hits": copy.deepcopy(hits), "total": len(hits)}}


# -- Zenodo's normal forms: what it stores for what it is sent --------------------------------------------
# marshmallow-utils 0.15.4 html.py, with the real ftfy and bleach: `sanitize_unicode` (SanitizedUnicode: titles,
# names, versions) and `sanitize_html` (SanitizedHTML: descriptions, invenio-rdm-records services/schemas/
# metadata.py MetadataSchema.description), with Zenodo's allowed tags and attributes.
ALLOWED_HTML_TAGS = ["a", "abbr", "acronym", "b", "blockquote", "br", "code", "col", "colgroup", "div", "table",
                     "tbody", "tfoot", "thead", "td", "th", "tr", "em", "h1", "h2", "h3", "h4", "h5", "i", "li", "ol",
                     "p", "pre", "s", "span", "strike", "strong", "sub", "sup", "u", "ul"]
ALLOWED_HTML_ATTRS = {
    "a": ["href", "title", "name", "target", "rel", "rev", "alt"], "div": ["dir", "lang"], "span": ["dir", "lang"],
    "p": ["dir", "lang"], "abbr": ["title", "lang", "dir"], "acronym": ["title", "lang", "dir"], "table": ["style"],
    "tbody": ["style"], "thead": ["style"], "tfoot": ["style"], "td": ["style", "colspan", "rowspan", "nowrap"],
    "th": ["style", "colspan", "rowspan", "nowrap"], "tr": ["style"], "col": ["style", "span"],
    "colgroup": ["style", "span"]}
ALLOWED_CSS_STYLES = ["border-width", "border-collapse", "border-spacing", "height", "margin-right", "margin-left",
                      "text-align", "vertical-align", "padding", "width"]


def sanitize_unicode(value: str) -> str:
    """html.py sanitize_unicode: ftfy.fix_text of the trimmed value, minus what XML disallows and zero-width spaces."""
    value = ftfy.fix_text(value.strip())
    value = "".join(char for char in value if _xml_char(char))
    return value.replace("\u200b", "")


def _xml_char(char: str) -> bool:
    code = ord(char)
    return 0x20 <= code <= 0xD7FF or code in (0x9, 0xA, 0xD) or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF


def sanitize_html(value: str) -> str:
    """html.py sanitize_html: sanitize_unicode, then bleach.clean(strip=True) with the allowed tags and attributes."""
    return str(bleach.clean(sanitize_unicode(value), tags=ALLOWED_HTML_TAGS, attributes=ALLOWED_HTML_ATTRS,
                            css_sanitizer=CSSSanitizer(ALLOWED_CSS_STYLES), strip=True)).strip()


def person_name(name: str) -> str:
    """A creator's name as read back: zenodo-rdm legacy/deserializers/metadata.py PersonSchema.load_names splits a
    name with exactly one comma into family and given names (trimmed; any other name is the family name), the
    RDM schema sanitizes each (SanitizedUnicode), and invenio-rdm-records services/schemas/metadata.py
    PersonOrOrganizationSchema.update_names joins them back as "Family, Given"."""
    if name.count(",") == 1:
        family, given = (sanitize_unicode(part) for part in name.split(","))
        return f"{family}, {given}" if given else family
    return sanitize_unicode(name)


def normal_forms(loaded: dict[str, Any]) -> dict[str, Any]:
    """Deposition metadata as Zenodo stores it."""
    for key in ("title", "version"):
        if isinstance(loaded.get(key), str):
            loaded[key] = sanitize_unicode(loaded[key])
    if isinstance(loaded.get("description"), str):
        loaded["description"] = sanitize_html(loaded["description"])
    for key in ("creators", "contributors"):
        for person in loaded.get(key) or []:
            if isinstance(person, dict) and isinstance(person.get("name"), str):
                person["name"] = person_name(person["name"])
    return loaded


# -- The records API's full metadata, and the deposit API's narrower view of it --------------------------------
# A record curated on the web page holds RDM metadata the deposit API's view cannot show or take back:
# zenodo-rdm legacy/serializers/schemas/common.py dumps only a creator's first affiliation's name
# (CreatorSchema.dump_affiliation; ROR ids dropped) and ORCID/GND identifiers, persons and organisations alike
# (`name` only), only free-text subjects as keywords (dump_keywords), the first license with an id
# (resolve_license), the first language (dump_languages), funding with an award (_grant), the first "notes"
# and the "methods" additional description (dump_additional_descriptions), and no additional titles. A PUT of
# that view replaces the whole metadata (update_draft above): the rest is lost.


def curate(deposition: dict[str, Any], rdm: dict[str, Any]) -> None:
    """The full metadata saved on the web page; the deposit API shows its legacy view."""
    deposition["rdm"] = copy.deepcopy(rdm)
    deposition["metadata"] = legacy_of(rdm)
    if deposition["published_at"] is not None and not deposition["editing"]:
        deposition["published_rdm"] = copy.deepcopy(rdm)
        deposition["published_metadata"] = legacy_of(rdm)


def legacy_of(rdm: dict[str, Any]) -> dict[str, Any]:
    """common.py MetadataSchema: the deposit API's view of full metadata (lossy, as listed above)."""
    view: dict[str, Any] = {key: rdm[key] for key in ("title", "description", "publication_date", "version")
                            if key in rdm}
    view["upload_type"] = str((rdm.get("resource_type") or {}).get("id", "dataset")).split("-")[0]
    view["creators"] = [_legacy_person(c) for c in rdm.get("creators") or []]
    keywords = [s["subject"] for s in rdm.get("subjects") or [] if not s.get("id") and s.get("subject")]
    if keywords:
        view["keywords"] = keywords
    rights = rdm.get("rights") or []
    if rights and rights[0].get("id"):
        view["license"] = rights[0]["id"]
    if rdm.get("languages"):
        view["language"] = rdm["languages"][0]["id"]
    grants = [f"{f['funder']['id']}::{f['award']['number']}" for f in rdm.get("funding") or []
              if f.get("funder", {}).get("id") and (f.get("award") or {}).get("number")]
    if grants:
        view["grants"] = [{"id": grant} for grant in grants]
    notes = [d["description"] for d in rdm.get("additional_descriptions") or [] if d["type"]["id"] == "notes"]
    if notes:
        view["notes"] = notes[0]
    return copy.deepcopy(view)


def _legacy_person(creator: dict[str, Any]) -> dict[str, Any]:
    person = creator.get("person_or_org") or {}
    shown: dict[str, Any] = {"name": person.get("name", "")}
    if creator.get("affiliations"):
        shown["affiliation"] = creator["affiliations"][0].get("name")
    for identifier in person.get("identifiers") or []:
        if identifier["scheme"] in ("orcid", "gnd"):
            shown[identifier["scheme"]] = identifier["identifier"]
    return shown


def rdm_of(legacy: dict[str, Any]) -> dict[str, Any]:
    """The full metadata of a deposition only ever written through the deposit API (deserializers/metadata.py)."""
    rdm: dict[str, Any] = {key: legacy[key] for key in ("title", "description", "publication_date", "version")
                           if key in legacy}
    rdm["resource_type"] = {"id": legacy.get("upload_type", "dataset")}
    rdm["creators"] = [{"person_or_org": {"type": "personal", "name": c.get("name", "")},
                        **({"affiliations": [{"name": c["affiliation"]}]} if c.get("affiliation") else {})}
                       for c in legacy.get("creators") or []]
    if legacy.get("license"):
        rdm["rights"] = [{"id": legacy["license"]}]
    if legacy.get("keywords"):
        rdm["subjects"] = [{"subject": keyword} for keyword in legacy["keywords"]]
    if legacy.get("language"):
        rdm["languages"] = [{"id": legacy["language"]}]
    if legacy.get("notes"):
        rdm["additional_descriptions"] = [{"description": legacy["notes"], "type": {"id": "notes"}}]
    return rdm


def serve(port: int = 0, tokens: list[str] | None = None) -> ThreadingHTTPServer:
    """Start the mock on 127.0.0.1 in a background thread; returns the server (its port in server_port)."""
    for token in tokens or []:
        STATE.tokens[token] = {"deposit:write", "deposit:actions"}
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="Mock Zenodo deposit API (tests and demo)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token", action="append", default=[], help="a token to accept (repeatable)")
    args = parser.parse_args()
    for token in args.token:
        STATE.tokens[token] = {"deposit:write", "deposit:actions"}
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"mock Zenodo API at http://{args.host}:{server.server_port}/api", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

"""A mock of Zenodo's deposit API that behaves as ../shared/reference/zenodo-api.md describes.

State lives in memory. Where Zenodo's behaviour is uncertain, the mock takes
the stricter reading (411 without Content-Length, 415 for other content types,
403 for a bad token, the exact new-version error body, locked buckets after
publish, 100 files / 50 GB per record).

Test control endpoints (no auth), under /_mock/:
  GET  /_mock/log       every request seen: method, path with query, whether a token was in the URL
  POST /_mock/faults    {"every": N, "kinds": ["429", "503", "drop"], "paths": "files"} inject faults
  POST /_mock/limits    {"max_files": N, "quota_bytes": N}
  POST /_mock/tokens    {"token": "...", "scopes": [...]} register a token (more than one allowed)
  POST /_mock/reset     forget everything

Run on its own: python -m tests.mock_zenodo --port 8765 --token TOKEN
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import threading
import uuid
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

UPLOAD_TYPES = {"dataset", "software", "publication", "poster", "presentation", "image", "video", "lesson",
                "physicalobject", "other"}
KNOWN_METADATA = {"upload_type", "title", "creators", "description", "publication_date", "access_right",
                  "license", "keywords", "version", "notes", "related_identifiers", "communities", "doi",
                  "prereserve_doi", "language", "contributors", "references", "subjects", "grants"}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ApiError(Exception):
    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors


class State:
    """Depositions, buckets and the request log: all in memory, guarded by one lock."""

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
            self.max_files = 100
            self.quota_bytes = 50 * 10**9


STATE = State()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MockZenodo/1.0"

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
        query = parse_qs(url.query)
        path = unquote(url.path) if "%2f" not in url.path.lower() else url.path
        if path.startswith("/_mock/"):
            self._control(method, path)
            return
        with STATE.lock:
            STATE.log.append({"method": method, "url": self.path, "token_in_url": "access_token" in query,
                              "user_agent": self.headers.get("User-Agent", "")})
        try:
            if self._maybe_fault(path):
                return
            token = self._token(query)
            status, body = self._route(method, path, query, token)
            self._reply(status, body)
        except ApiError as error:
            self._drain()
            body: dict[str, Any] = {"status": error.status, "message": error.message}
            if error.errors is not None:
                body["errors"] = error.errors
            self._reply(error.status, body, close=error.status == 411)

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None, close: bool = False) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
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

    def _drain(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)

    def _json_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(400, "Could not parse JSON.") from None

    def _token(self, query: dict[str, list[str]]) -> str:
        header = self.headers.get("Authorization", "")
        token = header[len("Bearer "):] if header.startswith("Bearer ") else (query.get("access_token") or [""])[0]
        if token not in STATE.tokens:
            # Zenodo answers 403 today for a missing or invalid token (its docs say 401).
            raise ApiError(403, "Permission denied.")
        return token

    def _maybe_fault(self, path: str) -> bool:
        faults = STATE.faults
        if not faults["every"] or (faults["paths"] == "files" and not path.startswith("/api/files/")):
            return False
        with STATE.lock:
            STATE.fault_counter += 1
            if STATE.fault_counter % faults["every"]:
                return False
            kind = faults["kinds"][(STATE.fault_counter // faults["every"]) % len(faults["kinds"])]
        if kind == "drop":
            # Read part of the body, then drop the connection without answering.
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(min(length // 2, 1 << 20))
            self.close_connection = True
            self.connection.shutdown(2)
            return True
        self._drain()
        if kind == "429":
            self._reply(429, {"status": 429, "message": "Too many requests."}, {"Retry-After": "1"})
        else:
            self._reply(int(kind), {"status": int(kind), "message": "Service unavailable."})
        return True

    def _control(self, method: str, path: str) -> None:
        body = self._json_body() if method == "POST" else {}
        with STATE.lock:
            if path == "/_mock/log":
                self._reply(200, STATE.log)
            elif path == "/_mock/state":
                self._reply(200, {str(k): v for k, v in STATE.depositions.items()})
            elif path == "/_mock/faults":
                STATE.faults = {"every": body.get("every", 0), "kinds": body.get("kinds", ["503"]),
                                "paths": body.get("paths", "files")}
                STATE.fault_counter = 0
                self._reply(200, STATE.faults)
            elif path == "/_mock/limits":
                STATE.max_files = body.get("max_files", STATE.max_files)
                STATE.quota_bytes = body.get("quota_bytes", STATE.quota_bytes)
                self._reply(200, {"max_files": STATE.max_files, "quota_bytes": STATE.quota_bytes})
            elif path == "/_mock/tokens":
                STATE.tokens[body["token"]] = set(body.get("scopes", ["deposit:write", "deposit:actions"]))
                self._reply(200, {})
            elif path == "/_mock/reset":
                STATE.reset()
                self._reply(200, {})
            else:
                self._reply(404, {"status": 404, "message": "No such control."})

    # -- the API --------------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict[str, list[str]], token: str) -> tuple[int, Any]:
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
                    return 200, self._view(deposition)
                if method == "PUT":
                    return self._update(deposition)
                if method == "DELETE":
                    return self._delete(deposition)
            elif rest[1] == "files":
                deposition = self._owned(rest[0], token)
                if len(rest) == 2 and method == "GET":
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

    def _owned(self, raw_id: str, token: str) -> dict[str, Any]:
        try:
            deposition = STATE.depositions[int(raw_id)]
        except (ValueError, KeyError):
            raise ApiError(404, "PID does not exist.") from None
        if deposition["owner"] != token:
            raise ApiError(403, "You do not have permission to access this deposition.")
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
        base, dep_id = self._base(), deposition["id"]
        api = f"{base}/api/deposit/depositions/{dep_id}"
        links = {"self": api, "html": f"{base}/deposit/{dep_id}", "bucket": f"{base}/api/files/{deposition['bucket']}",
                 "files": f"{api}/files", "publish": f"{api}/actions/publish", "edit": f"{api}/actions/edit",
                 "discard": f"{api}/actions/discard", "newversion": f"{api}/actions/newversion",
                 "latest_draft": f"{base}/api/deposit/depositions/{deposition.get('latest_draft', dep_id)}",
                 "latest_draft_html": f"{base}/deposit/{deposition.get('latest_draft', dep_id)}"}
        if deposition["submitted"]:
            links |= {"record": f"{base}/api/records/{dep_id}", "record_html": f"{base}/records/{dep_id}",
                      "latest": f"{base}/api/records/{dep_id}", "latest_html": f"{base}/records/{dep_id}",
                      "doi": f"https://doi.org/{deposition['doi']}"}
        return links

    def _view(self, deposition: dict[str, Any], with_bucket: bool = True) -> dict[str, Any]:
        view = {key: deposition[key] for key in ("id", "conceptrecid", "state", "submitted", "metadata", "created",
                                                  "modified", "title")}
        view["record_id"] = deposition["id"]
        if deposition.get("doi"):
            view["doi"] = deposition["doi"]
        view["files"] = self._file_list(deposition)
        view["links"] = self._links(deposition)
        if not with_bucket:
            del view["links"]["bucket"]
        return view

    def _new_deposition(self, token: str, metadata: dict[str, Any], conceptrecid: str | None = None) -> dict[str, Any]:
        dep_id = next(STATE.ids)
        bucket_id = str(uuid.uuid4())
        STATE.buckets[bucket_id] = {"deposition": dep_id, "files": {}, "locked": False}
        deposition = {"id": dep_id, "conceptrecid": conceptrecid or str(dep_id - 1), "state": "unsubmitted",
                      "submitted": False, "metadata": metadata, "owner": token, "bucket": bucket_id,
                      "created": "2026-11-24T00:00:00+00:00", "modified": "2026-11-24T00:00:00+00:00",
                      "title": metadata.get("title", ""), "published_before": False}
        STATE.depositions[dep_id] = deposition
        return deposition

    def _create(self, token: str) -> tuple[int, Any]:
        body = self._json_body()
        unknown = set(body) - {"metadata"}
        if unknown:
            raise ApiError(400, "A validation error occurred.",
                           [{"field": key, "messages": ["Unknown field."]} for key in sorted(unknown)])
        metadata = validate_metadata(body.get("metadata", {}))
        with STATE.lock:
            return 201, self._view(self._new_deposition(token, metadata))

    def _search(self, query: dict[str, list[str]], token: str) -> list[dict[str, Any]]:
        size = int((query.get("size") or ["10"])[0])
        if size > 100:
            raise ApiError(400, "Maximum page size is 100.")
        q = (query.get("q") or [""])[0]
        status = (query.get("status") or [""])[0]
        found = [d for d in STATE.depositions.values() if d["owner"] == token]
        match = re.fullmatch(r"conceptrecid:\"?(\d+)\"?", q)
        if match:
            found = [d for d in found if d["conceptrecid"] == match.group(1)]
        if status == "draft":
            found = [d for d in found if not d["submitted"]]
        elif status == "published":
            found = [d for d in found if d["submitted"]]
        page = int((query.get("page") or ["1"])[0])
        # Search results carry no bucket link: GET the deposition by id for that.
        return [self._view(d, with_bucket=False) for d in found[(page - 1) * size: page * size]]

    def _update(self, deposition: dict[str, Any]) -> tuple[int, Any]:
        body = self._json_body()
        unknown = set(body) - {"metadata"}
        if unknown:
            raise ApiError(400, "A validation error occurred.",
                           [{"field": key, "messages": ["Unknown field."]} for key in sorted(unknown)])
        if deposition["submitted"] and not deposition.get("editing"):
            raise ApiError(400, "Please use the edit action before editing a published deposition.")
        # PUT replaces the whole metadata; it does not merge.
        deposition["metadata"] = validate_metadata(body.get("metadata", {}))
        deposition["title"] = deposition["metadata"].get("title", "")
        return 200, self._view(deposition)

    def _delete(self, deposition: dict[str, Any]) -> tuple[int, Any]:
        if deposition["submitted"]:
            raise ApiError(403, "You cannot delete a published deposition.")
        with STATE.lock:
            del STATE.depositions[deposition["id"]]
            del STATE.buckets[deposition["bucket"]]
        return 204, None

    def _file_list(self, deposition: dict[str, Any]) -> list[dict[str, Any]]:
        base = self._base()
        files = STATE.buckets[deposition["bucket"]]["files"].values()
        return [{"id": f["id"], "filename": f["key"], "filesize": f["size"], "checksum": f["md5"],
                 "links": {"self": f"{base}/api/deposit/depositions/{deposition['id']}/files/{f['id']}",
                           "download": f"{base}/api/records/{deposition['id']}/files/{f['key']}/content"}}
                for f in files if not f.get("pending")]

    def _delete_file_by_id(self, deposition: dict[str, Any], file_id: str) -> tuple[int, Any]:
        bucket = STATE.buckets[deposition["bucket"]]
        if bucket["locked"]:
            raise ApiError(403, "The bucket is locked.")
        for key, stored in list(bucket["files"].items()):
            if stored["id"] == file_id:
                del bucket["files"][key]
                return 204, None
        raise ApiError(404, "File does not exist.")

    def _put_file(self, bucket: dict[str, Any], name: str) -> tuple[int, Any]:
        if bucket["locked"]:
            raise ApiError(403, "The bucket is locked: the record is published.")
        if "Content-Length" not in self.headers:
            raise ApiError(411, "Length Required.")
        kind = self.headers.get("Content-Type", "application/octet-stream").split(";")[0].strip()
        if kind != "application/octet-stream":
            raise ApiError(415, "Unsupported media type.")
        length = int(self.headers["Content-Length"])
        files = bucket["files"]
        stays = sum(f["size"] for key, f in files.items() if key != name and not f.get("pending"))
        if length > 50 * 10**9:
            raise ApiError(400, "Maximum file size exceeded.")
        if stays + length > STATE.quota_bytes:
            raise ApiError(400, "Bucket quota exceeded.")
        if name not in files and len([f for f in files.values() if not f.get("pending")]) >= STATE.max_files:
            raise ApiError(400, f"Too many files: a record holds at most {STATE.max_files}.")
        digest, received = hashlib.md5(), 0
        pending = {"id": str(uuid.uuid4()), "key": name, "size": length, "md5": "", "pending": True}
        previous = files.get(name)
        files.setdefault(name, pending)
        while received < length:
            chunk = self.rfile.read(min(length - received, 1 << 20))
            if not chunk:
                break
            digest.update(chunk)
            received += len(chunk)
        if received != length:
            # The upload never finished: the file stays pending (hidden, and it blocks publishing).
            self.close_connection = True
            return 400, {"status": 400, "message": "Upload incomplete."}
        stored = {"id": (previous or pending)["id"], "key": name, "size": length, "md5": digest.hexdigest()}
        files[name] = stored
        deposition = STATE.depositions[bucket["deposition"]]
        base = self._base()
        return 201, {"key": name, "size": length, "checksum": f"md5:{stored['md5']}",
                     "mimetype": "application/octet-stream", "version_id": str(uuid.uuid4()),
                     "links": {"self": f"{base}/api/files/{deposition['bucket']}/{name}"}}

    def _delete_file(self, bucket: dict[str, Any], name: str) -> tuple[int, Any]:
        if bucket["locked"]:
            raise ApiError(403, "The bucket is locked: the record is published.")
        if name not in bucket["files"]:
            raise ApiError(404, "Object does not exist.")
        del bucket["files"][name]
        return 204, None

    def _action(self, deposition: dict[str, Any], action: str, token: str) -> tuple[int, Any]:
        with STATE.lock:
            if action == "publish":
                return self._publish(deposition)
            if action == "newversion":
                return self._new_version(deposition, token)
            if action == "discard":
                if deposition["submitted"]:
                    raise ApiError(400, "Cannot discard a published deposition.")
                return self._delete(deposition)
            if action == "edit":
                if not deposition["submitted"]:
                    raise ApiError(400, "Deposition is not published.")
                deposition["editing"] = True
                return 201, self._view(deposition)
        raise ApiError(404, "Unknown action.")

    def _publish(self, deposition: dict[str, Any]) -> tuple[int, Any]:
        if deposition["submitted"] and not deposition.get("editing"):
            raise ApiError(404, "The deposition is already published.")
        metadata = deposition["metadata"]
        errors = [{"field": f"metadata.{field}", "messages": ["Missing data for required field."]}
                  for field in ("upload_type", "title", "creators", "description") if not metadata.get(field)]
        bucket = STATE.buckets[deposition["bucket"]]
        if any(f.get("pending") for f in bucket["files"].values()):
            errors.append({"field": "files", "messages": ["An upload is incomplete."]})
        if not bucket["files"]:
            errors.append({"field": "files", "messages": ["Missing uploaded files. To publish, add files."]})
        if errors:
            raise ApiError(400, "A validation error occurred.", errors)
        metadata.setdefault("publication_date", date.today().isoformat())
        metadata.setdefault("access_right", "open")
        metadata.setdefault("license", "cc-by-4.0")
        deposition.update(submitted=True, state="done", doi=f"10.5072/zenodo.{deposition['id']}", editing=False,
                          published_before=True)
        deposition.pop("latest_draft", None)
        bucket["locked"] = True
        for other in STATE.depositions.values():  # the concept's latest draft is now this record
            if other["conceptrecid"] == deposition["conceptrecid"]:
                other["latest_draft"] = deposition["id"]
        return 202, self._view(deposition)

    def _new_version(self, deposition: dict[str, Any], token: str) -> tuple[int, Any]:
        if not deposition["submitted"]:
            raise ApiError(400, "A validation error occurred.",
                           [{"field": "id", "messages": ["The deposition is not published."]}])
        concept = deposition["conceptrecid"]
        if any(d["conceptrecid"] == concept and not d["submitted"] for d in STATE.depositions.values()):
            raise ApiError(400, "A validation error occurred.",
                           [{"field": "files.enabled", "messages": ["Please remove all files first."]}])
        metadata = {k: v for k, v in deposition["metadata"].items() if k not in ("publication_date", "version")}
        draft = self._new_deposition(token, metadata, conceptrecid=concept)
        inherited = STATE.buckets[deposition["bucket"]]["files"]
        STATE.buckets[draft["bucket"]]["files"] = {
            key: dict(f, id=str(uuid.uuid4())) for key, f in inherited.items() if not f.get("pending")}
        for other in STATE.depositions.values():
            if other["conceptrecid"] == concept:
                other["latest_draft"] = draft["id"]
        # Today's Zenodo answers with the new draft itself (the docs say: the old deposition).
        return 201, self._view(draft)


def validate_metadata(metadata: Any) -> dict[str, Any]:
    """Zenodo's checks on deposition metadata; unknown keys are dropped."""
    if not isinstance(metadata, dict):
        raise ApiError(400, "A validation error occurred.", [{"field": "metadata", "messages": ["Not a mapping."]}])
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
    return {key: value for key, value in metadata.items() if key in KNOWN_METADATA}


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

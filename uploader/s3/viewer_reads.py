"""What the viewer's browser can read of a published dataset: its requests, sent anonymously, and their meaning.

The viewer fetches `catalog.yaml`, then reads every PMTiles archive the
catalog names by byte ranges (the pmtiles library: a `Range` GET of the
header and root directory, then of tiles). The same requests are sent here
with the viewer's `Origin` and judged as a browser would, as measured with
a real one (tests/browser/):

- blocking, the viewer cannot open the dataset: no answer, 403, no
  `Access-Control-Allow-Origin` for the origin on the GET, a
  `Content-Encoding` on the catalog or on a range response (the browser
  decodes bytes that are not encoded, and fails), a range request not
  answered 206, a `Content-Range` total that is not the archive's size, a
  header the library cannot read;
- weakening only, a warning that says its consequence: no exposed `ETag`
  (the library cannot notice an archive replaced while a page has it open),
  a preflight that does not allow `Range` (current browsers send a simple
  `Range` without one; older ones that still preflight it cannot read), no
  Cache-Control on the catalog, an archive stored with another Content-Type.

Plain HTTP (botocore's HTTP session, unsigned) sends them: they must be
exactly what a browser sends, so nothing signs them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from uploader.local.catalog import MAX_CATALOG_BYTES
from uploader.local.pmtiles import HEADER_SIZE, header_problem

REPAIR = "re-run upload_aws (without --upload-*-only): it repairs what another tool stored"


@dataclass
class Check:
    """One row of the table: a browser's request and what came back."""

    dataset: str
    name: str
    ok: bool
    detail: str
    needs: str = ""  # the fix a failure needs: "policy", "cors", "repair" or "" (none the tool can give)
    warning: bool = False  # the viewer reads it, weakened: `detail` says how

    @property
    def label(self) -> str:
        return "warn" if self.warning else "ok" if self.ok else "FAILED"

    @property
    def cause(self) -> str:
        """A failure in a few words, the same for every check it breaks (for the last line)."""
        if self.needs == "policy":
            return "anonymous reads are denied (403)"
        if self.needs == "cors":
            return "CORS does not let the viewer read it"
        if self.needs == "repair":
            return "stored objects the browser cannot read"
        return f"{self.name}: {self.detail.split(' -> ')[-1]}"


@dataclass
class Answer:
    """What one request got: a status and headers, the first bytes of the body, or why there was no answer."""

    status: int = 0
    headers: dict[str, str] | None = None
    body: bytes = b""
    error: str = ""  # the request got no answer

    def header(self, name: str) -> str:
        return next((v for k, v in (self.headers or {}).items() if k.lower() == name.lower()), "")

    def listed(self, name: str) -> set[str]:
        """A comma-separated header's items, lower-cased."""
        return {item.strip().lower() for item in self.header(name).split(",") if item.strip()}

    def allows(self, origin: str) -> bool:
        return self.header("Access-Control-Allow-Origin") in (origin, "*")


def send(method: str, url: str, headers: dict[str, str], timeout: float) -> Answer:
    """One request as a browser sends it: no credentials of any kind, no redirect followed for it.

    Through botocore's HTTP session, as the uploads go: the same proxies (from the environment) and
    certificates, and no HTTP library more to import before a run can end (requests took ~20 ms).
    """
    import botocore.exceptions
    from botocore.awsrequest import AWSRequest
    from botocore.httpsession import URLLib3Session
    from botocore.utils import get_environ_proxies

    from uploader import __version__

    # A lab store's own CA, as its users' browsers trust it (botocore takes a bundle's path here, and a
    # timeout in seconds as a float, where its type stubs say bool and int).
    settings: dict[str, Any] = {"verify": os.environ.get("AWS_CA_BUNDLE") or True, "timeout": timeout}
    http = URLLib3Session(**settings, proxies=get_environ_proxies(url), max_pool_connections=1)
    request = AWSRequest(method, url, headers={**headers, "User-Agent": f"cartload-uploader/{__version__}"
                                                                       " (viewer check)"},
                         stream_output=True)  # read here, bounded, not whole by botocore
    try:
        got = http.send(request.prepare())
        try:
            # Bounded: a store that ignores Range would send a whole archive.
            body = got.raw.read(MAX_CATALOG_BYTES + 1, decode_content=False) if method == "GET" else b""
        finally:
            got.raw.release_conn()
        return Answer(got.status_code, dict(got.headers), body)
    except (botocore.exceptions.BotoCoreError, OSError) as exc:  # refused, reset, timed out, TLS
        return Answer(error=f"no answer from {urlsplit(url).netloc}: {type(exc).__name__}")
    finally:
        http.close()


# -- the catalog -------------------------------------------------------------------------------------------


def catalog_read(dataset: str, name: str, published: bytes, answer: Answer) -> Check:
    """GET catalog.yaml: 200 and exactly the catalog just published, not encoded."""
    request = f"GET {name}"
    if answer.error:
        return Check(dataset, "public read", False, f"{request}: {answer.error}")
    if answer.status == 403:
        return Check(dataset, "public read", False, f"{request} -> 403: anonymous reads are denied", "policy")
    if answer.status != 200:
        return Check(dataset, "public read", False, f"{request} -> {answer.status}, expected 200")
    if answer.header("Content-Encoding") not in ("", "identity"):
        return Check(dataset, "public read", False, f"{request} -> 200 with Content-Encoding:"
                     f" {answer.header('Content-Encoding')}: the browser cannot decode it; {REPAIR}", "repair")
    if answer.body != published:
        return Check(dataset, "public read", False, f"{request} -> 200, but not the catalog just published"
                     " (a cache or proxy in between?)")
    return Check(dataset, "public read", True, f"{request} -> 200, the catalog as published")


def catalog_caching(dataset: str, name: str, answer: Answer) -> list[Check]:
    """A warning when the catalog has no Cache-Control: a re-published one may be served stale."""
    if answer.status != 200 or answer.header("Cache-Control"):
        return []
    return [Check(dataset, "catalog caching", True, f"GET {name} -> no Cache-Control: browsers and CDNs may show"
                  " the previous catalog for hours after a layer is added (upload_aws stores it with no-cache;"
                  " re-run it, or give --cache-control)", warning=True)]


# -- the archives ------------------------------------------------------------------------------------------


def archive_reads(dataset: str, archives: list[tuple[str, int, str, Answer]]) -> list[Check]:
    """A `Range` GET of each archive's header (name, size here, Content-Type published, answer): what blocks, what
    weakens, or one row saying every one reads."""
    checks = []
    denied = [name for name, _, _, answer in archives if answer.status == 403]
    if denied:  # one row for what one fix makes readable
        checks.append(Check(dataset, "range read", False, f"GET {_some(denied)} with Range -> 403: anonymous reads"
                            " are denied", "policy"))
    for name, size, kind, answer in archives:
        problem = None if answer.status == 403 else _range_problem(name, size, answer)
        if problem is not None:
            checks.append(Check(dataset, "range read", False, *problem))
        elif answer.header("Content-Type") not in ("", kind):
            checks.append(Check(dataset, "range read", True, f"GET {name} -> Content-Type"
                                f" {answer.header('Content-Type')}, published as {kind}: the viewer reads it, proxies"
                                " and people may not; a re-run of upload_aws corrects it", warning=True))
    if not any(not check.ok for check in checks):
        checks.insert(0, Check(dataset, "range read", True, f"GET each of {len(archives)} archive(s) with Range:"
                               f" bytes=0-{HEADER_SIZE - 1} -> 206, their full size, a PMTiles v3 header"))
    return checks


def _some(names: list[str], shown: int = 3) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more archive(s)" if len(names) > shown else "")


def _range_problem(name: str, size: int, answer: Answer) -> tuple[str, str] | None:
    """Why a browser cannot read the archive from this answer (detail, fix needed), None if it can."""
    request = f"GET {name} with Range: bytes=0-{HEADER_SIZE - 1}"
    if answer.error:
        return f"{request}: {answer.error}", ""
    if answer.status == 403:
        return f"{request} -> 403: anonymous reads are denied", "policy"
    if answer.status == 200:
        return f"{request} -> 200 with the whole file: the store ignores Range, so PMTiles cannot be read", ""
    if answer.status != 206:
        return f"{request} -> {answer.status}, expected 206", ""
    if answer.header("Content-Encoding") not in ("", "identity"):
        return (f"{request} -> 206 with Content-Encoding: {answer.header('Content-Encoding')}: the browser decodes"
                f" bytes that are not encoded, and fails; {REPAIR}", "repair")
    total = answer.header("Content-Range").rpartition("/")[2]
    if total != str(size):
        return (f"{request} -> 206 with Content-Range '{answer.header('Content-Range')}': the stored object is not"
                f" the {size:,d}-byte archive here (cut short?); {REPAIR}", "repair")
    problem = header_problem(answer.body[:HEADER_SIZE], size)
    if problem:
        return f"{request} -> 206, but the library cannot read it: the stored copy {problem}", "repair"
    return None


# -- CORS ------------------------------------------------------------------------------------------------


def cors_on_get(dataset: str, origin: str, answers: list[tuple[str, Answer]]) -> list[Check]:
    """The real GETs' CORS headers: the origin must be allowed (else the browser hides the answer); ETag exposed
    is recommended."""
    answered = [(name, answer) for name, answer in answers if not answer.error]
    refused = next((name for name, answer in answered if not answer.allows(origin)), None)
    if refused is not None:
        return [Check(dataset, "CORS on GET", False, f"GET {refused} with Origin -> no Access-Control-Allow-Origin"
                      f" for {origin}: the browser hides the answer", "cors")]
    hidden = next((name for name, answer in answered if 200 <= answer.status < 300 and name.endswith(".pmtiles")
                   and not {"etag", "*"} & answer.listed("Access-Control-Expose-Headers")), None)
    if hidden is not None:
        return [Check(dataset, "CORS on GET", True, f"GET {hidden} with Origin -> ETag is not exposed: the viewer"
                      " reads it, but cannot notice an archive replaced while a page has it open (stale or odd tiles"
                      " until reload); recommended: ExposeHeaders: ETag", "cors", warning=True)]
    return [Check(dataset, "CORS on GET", True, f"GET with Origin -> {origin} allowed, ETag exposed")]


def preflight(dataset: str, name: str, origin: str, answer: Answer) -> Check:
    """A preflight for GET with Range, as older browsers send it (current ones send a simple Range without one)."""
    request = f"OPTIONS {name} (preflight for GET with Range)"
    older = ("current browsers read without one, older browsers that still preflight Range cannot; recommended:"
             f" allow {origin} with AllowedHeaders: * (or Range, If-Match)")
    if answer.error:
        return Check(dataset, "CORS preflight", True, f"{request}: {answer.error}: {older}", "cors", warning=True)
    methods = {method.upper() for method in answer.listed("Access-Control-Allow-Methods")}
    if not 200 <= answer.status < 300 or not answer.allows(origin) or not {"GET", "*"} & methods \
            or not {"range", "*"} & answer.listed("Access-Control-Allow-Headers"):
        return Check(dataset, "CORS preflight", True, f"{request} -> {answer.status}, Range not allowed for {origin}:"
                     f" {older}", "cors", warning=True)
    return Check(dataset, "CORS preflight", True, f"{request} -> {answer.status}, {origin} may GET with range")

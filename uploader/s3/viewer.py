"""Can the web viewer open what was just published? Its link, a browser's-eye check, and the exact fixes.

The viewer (CartoScope) runs in a browser on its own origin. It fetches
`<prefix>/catalog.yaml` and then PMTiles archives by byte ranges,
anonymously, over the URLs a browser uses. So once the catalog is
published, the same requests are sent here, without credentials: a GET of
the catalog, a `Range: bytes=0-126` GET of one archive (206 and the right
Content-Range), a CORS preflight from the viewer's origin asking for
`range`, and the real GET's CORS headers (the origin allowed, ETag
exposed). Each failure comes with its fix: the bucket policy statement for
public read of the dataset prefix and the CORS rule, merged into what the
bucket already has, and the `aws s3api` commands that apply them; with
--setup-viewer-access they are applied here (never replacing a rule or a
statement the bucket has).

Plain HTTP (botocore's HTTP session, unsigned) sends the anonymous
requests: they must be exactly what a browser sends, so nothing signs them. The authenticated client only
reads and (on request) writes the bucket's CORS and policy.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import os
import shlex
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from uploader.engine.operations import PUBLISHED, Operation
from uploader.engine.readiness import Readiness
from uploader.local.catalog import MAX_CATALOG_BYTES
from uploader.local.pmtiles import HEADER_SIZE, MAGIC, is_pmtiles_name
from uploader.retry import until_answered
from uploader.s3.addressing import is_aws_host, uses_virtual_hosts
from uploader.s3.client import PASSING_STATUSES, error_message
from uploader.s3.destination import S3Destination
from uploader.s3.settings import ViewerSettings

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

POLICY_SID = "CartloadUploaderViewerRead"
CORS_RULE_ID = "cartload-uploader-viewer"
CORS_RULE = {"AllowedMethods": ["GET", "HEAD"], "AllowedHeaders": ["Range", "If-Match"], "ExposeHeaders": ["ETag"],
             "MaxAgeSeconds": 3000}
CHECK_REQUESTS_IN_FLIGHT = 12
PUBLIC_ACCESS_BLOCK_FIX = ("BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=false,"
                           "RestrictPublicBuckets=false")


@dataclass(frozen=True)
class Published:
    """One dataset whose catalog is now on the store, and what the check reads of it."""

    name: str  # the collection sub-directory, "" for a single dataset
    prefix: str  # the key prefix, no trailing slash
    catalog_key: str
    catalog: bytes  # the local catalog: the anonymous GET must return exactly this
    archive_key: str  # one PMTiles archive of the dataset ("" if it has none)
    archive_size: int


@dataclass
class Check:
    """One row of the table: a browser's request and what came back."""

    dataset: str
    name: str
    ok: bool
    detail: str
    needs: str = ""  # the fix a failure needs: "policy", "cors" or "" (none the tool can give)

    @property
    def cause(self) -> str:
        """A failure in a few words, the same for every check it breaks (for the last line)."""
        if self.needs == "policy":
            return "anonymous reads are denied (403)"
        if self.needs == "cors":
            return "CORS does not let the viewer read it"
        return f"{self.name}: {self.detail.split(' -> ')[-1]}"


class ViewerCheck:
    """The reader check of upload_aws (see readiness.ReaderCheck): links, checks, fixes, and the opt-in setup."""

    def __init__(self, client: S3Client, destination: S3Destination, options: ViewerSettings,
                 profile: str | None = None, outage_seconds: float = 120.0) -> None:
        self.client = client
        self.outage_seconds = outage_seconds  # an outage is ridden through this long (the run's --stall-timeout)
        self.s3_dir = destination
        self.bucket = destination.bucket
        self.options = options
        self.profile = profile
        self._region = ""

    def __call__(self, ops: list[Operation]) -> Readiness | None:
        datasets = published_datasets(ops, self.s3_dir)
        if not datasets:  # e.g. an --upload-*-only run that does not publish the catalog
            if self.options.check or self.options.setup:
                return Readiness(None, ["viewer check and setup skipped: this run published no catalog"])
            return None
        links = [{"dataset": d.name, "prefix": d.prefix, "viewer_link": self.viewer_link(d.prefix),
                  "catalog_url": self.object_url(d.catalog_key)} for d in datasets]
        lines = [line for link in links for line in _link_lines(link, several=len(links) > 1)]
        report: dict[str, Any] = {"origin": self.options.origin, "datasets": links}
        if self.options.setup:
            report["setup"] = self.set_up_access(datasets)
            lines += report["setup"]
        if not self.options.check:
            return Readiness(None, lines, report=report)
        # The requests wait on the network, not the CPU: all at once, a few round trips in all.
        with ThreadPoolExecutor(min(CHECK_REQUESTS_IN_FLIGHT, 3 * len(datasets)), "viewer-check") as pool:
            checks = [check for dataset in datasets for check in self.check(dataset, pool)]
        failed = [check for check in checks if not check.ok]
        fixes = self.fixes(failed, datasets)
        lines += _table(checks, self.options.origin)
        if not failed:
            lines.append("viewer check passed: the viewer can open " + ("every dataset" if len(links) > 1
                                                                         else "the dataset") + " at the link above")
        report["checks"] = [vars(check) for check in checks]
        report["failures"] = [f"{c.dataset + ': ' if c.dataset else ''}{c.name}: {c.detail}" for c in failed]
        report["fixes"] = fixes
        return Readiness(not failed, lines, _problem(failed, self.options.setup), report, self.options.require_ready,
                         fixes)

    # -- where the viewer reads ----------------------------------------------------------------

    def viewer_link(self, prefix: str) -> str:
        return self.options.url + quote(f"s3/{self.bucket}/{prefix}", safe="")

    def object_url(self, key: str) -> str:
        """The HTTPS URL a browser reads `key` at: virtual-hosted on AWS, the endpoint's own form elsewhere."""
        endpoint = urlsplit(self.client.meta.endpoint_url)
        host = endpoint.hostname or ""
        path = quote(key, safe="/")
        if is_aws_host(host):
            # The bucket's own region: a browser is not redirected like an SDK is.
            suffix = "amazonaws.com.cn" if host.endswith(".cn") else "amazonaws.com"
            regional = f"s3.{self.bucket_region()}.{suffix}"
            if uses_virtual_hosts(self.client, self.bucket):
                return f"https://{self.bucket}.{regional}/{path}"
            return f"https://{regional}/{self.bucket}/{path}"
        base = endpoint.path.rstrip("/")
        if uses_virtual_hosts(self.client, self.bucket):
            return f"{endpoint.scheme}://{self.bucket}.{endpoint.netloc}{base}/{path}"
        return f"{endpoint.scheme}://{endpoint.netloc}{base}/{self.bucket}/{path}"

    def bucket_region(self) -> str:
        if not self._region:
            try:
                answer = self.client.head_bucket(Bucket=self.bucket)
                headers = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {})
                self._region = headers.get("x-amz-bucket-region") or self.client.meta.region_name
            except Exception:  # the client's region is the best guess left
                self._region = self.client.meta.region_name
        return self._region

    # -- the check --------------------------------------------------------------------------

    def check(self, dataset: Published, pool: ThreadPoolExecutor) -> list[Check]:
        """A browser's requests for one dataset, sent anonymously, and what each answer means for the viewer."""
        origin = self.options.origin
        catalog_url = self.object_url(dataset.catalog_key)
        archive_url = self.object_url(dataset.archive_key) if dataset.archive_key else ""

        def send(method: str, url: str, headers: dict[str, str]) -> Future[_Answer]:
            return pool.submit(until_answered, lambda: _send(method, url, {"Origin": origin, **headers},
                                                             self.options.timeout),
                               _not_answered, self.outage_seconds)

        catalog = send("GET", catalog_url, {})
        if archive_url:
            ranged = send("GET", archive_url, {"Range": f"bytes=0-{HEADER_SIZE - 1}"})
            preflight = send("OPTIONS", archive_url, {"Access-Control-Request-Method": "GET",
                                                      "Access-Control-Request-Headers": "range"})
        checks = [self._transport_check(dataset.name, catalog_url), _public_read(dataset, catalog.result())]
        if not archive_url:
            return checks
        name = dataset.archive_key.rsplit("/", 1)[-1]
        return [*checks, _range_read(dataset, name, ranged.result()),
                _preflight(dataset.name, name, origin, preflight.result()),
                _cors_on_get(dataset.name, name, origin, ranged.result())]

    def _transport_check(self, dataset: str, url: str) -> Check:
        parts = urlsplit(url)
        if parts.scheme == "https" or urlsplit(self.options.url).scheme != "https" or _is_loopback(parts.hostname):
            return Check(dataset, "HTTPS", True, f"{parts.scheme}://{parts.netloc}" +
                         (" (a loopback address: browsers allow it)" if parts.scheme == "http" else ""))
        return Check(dataset, "HTTPS", False, f"the store is read over plain http ({parts.netloc}): browsers block"
                     " it on the https viewer page (mixed content); use the store's https endpoint")

    # -- the fixes --------------------------------------------------------------------------

    def fixes(self, failed: list[Check], datasets: list[Published]) -> list[str]:
        """The exact commands that make the failed checks pass, merged with what the bucket already has."""
        needs = {check.needs for check in failed}
        lines: list[str] = []
        if "policy" in needs:
            lines += self._policy_fix([d.prefix for d in datasets])
        if "cors" in needs:
            lines += self._cors_fix()
        if needs & {"policy", "cors"} and not self.options.setup:  # not in the run that just tried it
            lines.append("or let this tool apply what is missing (merged, nothing replaced): re-run with"
                         " --setup-viewer-access")
        return lines

    def _policy_fix(self, prefixes: list[str]) -> list[str]:
        existing, unreadable = self._current_policy()
        merged = merged_policy(existing, self.bucket, prefixes)
        where = self._objects_under(prefixes)
        if merged is None:
            lines = [f"fix public read: the bucket policy already lets anyone read {where}, yet anonymous reads are"
                     " denied: Block Public Access (RestrictPublicBuckets) or an account setting overrides it"]
        elif unreadable:  # a put-bucket-policy of our statement alone would replace the bucket's whole policy
            ours = next(s for s in merged["Statement"] if s.get("Sid") == POLICY_SID)
            lines = [f"fix public read: let anyone read {where}. The bucket policy could not be read ({unreadable}),"
                     " so no command is given (one would replace the whole policy): ask the bucket owner to add"
                     " this statement to it:", "  " + _compact(ours)]
        else:
            count = len(_as_list(existing.get("Statement")))
            kept = f"keeps its {count} existing statement(s)" if count else "is the bucket's first policy"
            lines = [f"fix public read: let anyone read {where} (the policy below {kept}):",
                     "  " + self._aws("put-bucket-policy", "--policy", _compact(merged))]
        if self._public_access_blocked() is not False and is_aws_host(urlsplit(self.client.meta.endpoint_url)
                                                                       .hostname or ""):
            lines.append("  if Block Public Access refuses it (new AWS buckets block public policies), first: "
                         + self._aws("put-public-access-block", "--public-access-block-configuration",
                                     PUBLIC_ACCESS_BLOCK_FIX))
        return lines

    def _cors_fix(self) -> list[str]:
        rules, unreadable = self._current_cors()
        merged = merged_cors(rules, self.options.origin)
        if merged is None:
            return [f"fix CORS: a rule of the bucket already allows {self.options.origin}, yet the browser's"
                    " requests are refused: check the store's CORS support"]
        if unreadable:  # a put-bucket-cors of our rule alone would replace every rule the bucket has
            return [f"fix CORS: allow {self.options.origin} to read with Range and see ETag. The bucket's CORS rules"
                    f" could not be read ({unreadable}), so no command is given (one would replace them all): ask the"
                    " bucket owner to add this rule first among them:", "  " + _compact(merged[0])]
        kept = f"keeps its {len(rules)} existing rule(s)" if rules else "is the bucket's first"
        return [f"fix CORS: allow {self.options.origin} to read with Range and see ETag (the configuration below"
                f" {kept}):", "  " + self._aws("put-bucket-cors", "--cors-configuration",
                                               _compact({"CORSRules": merged}))]

    def _objects_under(self, prefixes: list[str]) -> str:
        return ", ".join(f"s3://{self.bucket}/{p}/*" if p else f"s3://{self.bucket}/*" for p in prefixes)

    def _aws(self, command: str, *args: str) -> str:
        words = ["aws", "s3api", command, "--bucket", self.bucket, *args]
        host = urlsplit(self.client.meta.endpoint_url).hostname or ""
        if not is_aws_host(host):
            words += ["--endpoint-url", self.client.meta.endpoint_url]
        if self.profile:
            words += ["--profile", self.profile]
        return shlex.join(words)

    # -- --setup-viewer-access ---------------------------------------------------------------

    def set_up_access(self, datasets: list[Published]) -> list[str]:
        """Add what the viewer needs to the bucket's CORS rules and policy (merged); lines saying what was done."""
        return [self._set_up_cors(), self._set_up_policy([d.prefix for d in datasets])]

    def _set_up_cors(self) -> str:
        rules, unreadable = self._current_cors()
        if unreadable:
            return f"viewer access: CORS not changed: the bucket's CORS rules could not be read ({unreadable})"
        merged = merged_cors(rules, self.options.origin)
        if merged is None:
            return f"viewer access: CORS already allows {self.options.origin}"
        configuration: Any = {"CORSRules": merged}
        try:
            self.client.put_bucket_cors(Bucket=self.bucket, CORSConfiguration=configuration)
        except Exception as exc:
            return f"viewer access: CORS not changed: {_error(exc)}; ask the bucket owner for s3:PutBucketCORS"
        return (f"viewer access: added a CORS rule for {self.options.origin} (GET, HEAD; Range, If-Match; ETag"
                f" exposed), before the bucket's {len(rules)} existing rule(s)")

    def _set_up_policy(self, prefixes: list[str]) -> str:
        existing, unreadable = self._current_policy()
        if unreadable:
            return f"viewer access: policy not changed: the bucket policy could not be read ({unreadable})"
        merged = merged_policy(existing, self.bucket, prefixes)
        if merged is None:
            return "viewer access: the bucket policy already lets anyone read the dataset"
        if self._public_access_blocked():
            return ("viewer access: policy not changed: Block Public Access on this bucket forbids a public policy;"
                    " the bucket owner can lift it for this bucket with: "
                    + self._aws("put-public-access-block", "--public-access-block-configuration",
                                PUBLIC_ACCESS_BLOCK_FIX) + " (the account-wide setting must allow it too)")
        try:
            self.client.put_bucket_policy(Bucket=self.bucket, Policy=json.dumps(merged))
        except Exception as exc:
            message = _error(exc)
            if "public" in message.lower() and "block" in message.lower():
                return (f"viewer access: policy not changed: Block Public Access forbids it ({message}); lift"
                        " BlockPublicPolicy and RestrictPublicBuckets for this bucket (and the account) first")
            return f"viewer access: policy not changed: {message}; ask the bucket owner for s3:PutBucketPolicy"
        kept = len(_as_list(existing.get("Statement")))
        kept_text = f"kept its {kept} existing statement(s)" if kept else "the bucket had no policy"
        return f"viewer access: added public read of {self._objects_under(prefixes)} to the bucket policy" \
               f" ({kept_text})"

    # -- the bucket's settings ---------------------------------------------------------------

    def _current_cors(self) -> tuple[list[dict[str, Any]], str]:
        """The bucket's CORS rules, and why they could not be read ("" if they could)."""
        try:
            return [dict(rule) for rule in self.client.get_bucket_cors(Bucket=self.bucket)["CORSRules"]], ""
        except Exception as exc:
            return ([], "") if _code(exc) == "NoSuchCORSConfiguration" else ([], _error(exc))

    def _current_policy(self) -> tuple[dict[str, Any], str]:
        """The bucket policy, and why it could not be read ("" if it could)."""
        try:
            return dict(json.loads(self.client.get_bucket_policy(Bucket=self.bucket)["Policy"])), ""
        except Exception as exc:
            return ({}, "") if _code(exc) == "NoSuchBucketPolicy" else ({}, _error(exc))

    def _public_access_blocked(self) -> bool | None:
        """Whether the bucket's Block Public Access forbids a public policy (None: unknown, e.g. not supported)."""
        try:
            settings = self.client.get_public_access_block(Bucket=self.bucket)["PublicAccessBlockConfiguration"]
        except Exception as exc:
            return False if _code(exc) == "NoSuchPublicAccessBlockConfiguration" else None
        return bool(settings.get("BlockPublicPolicy") or settings.get("RestrictPublicBuckets"))


# -- which datasets were published ----------------------------------------------------------------


def published_datasets(ops: list[Operation], s3_dir: S3Destination) -> list[Published]:
    """Every dataset whose catalog is on the store after this run (uploaded now, or already there)."""
    found = []
    for op in ops:
        if not op.is_catalog or op.status not in PUBLISHED or op.file is None \
                or op.dataset.collection_root:  # the viewer opens the samples, each at its own link
            continue
        every = (*op.dataset.files, *op.dataset.checked_only)  # with --shard, other workers may have sent it
        archive = next((file for file in every if is_pmtiles_name(file.name)), None)
        found.append(Published(
            name=op.dataset.subdir, prefix=s3_dir.dataset_prefix(op.dataset).rstrip("/"), catalog_key=op.destination,
            catalog=op.file.path.read_bytes(),
            archive_key=s3_dir.key(op.dataset, archive.name) if archive else "",
            archive_size=archive.size if archive else 0,
        ))
    return found


# -- merging with what the bucket has ---------------------------------------------------------------


def merged_cors(rules: list[dict[str, Any]], origin: str) -> list[dict[str, Any]] | None:
    """The bucket's CORS rules with one for the viewer first; None if a rule already gives it all it needs.

    First, because a store answers a request with the first rule that
    matches its origin and method: an older rule for the same origin that
    does not expose ETag would otherwise win.
    """
    first = next((rule for rule in rules if _origin_allowed(rule, origin) and "GET" in rule.get("AllowedMethods", [])),
                 None)
    if first is not None and _cors_rule_serves_viewer(first):
        return None
    ours = {"ID": CORS_RULE_ID, "AllowedOrigins": [origin], **CORS_RULE}
    return [ours, *(rule for rule in rules if rule.get("ID") != CORS_RULE_ID)]


def _cors_rule_serves_viewer(rule: dict[str, Any]) -> bool:
    headers = {header.lower() for header in rule.get("AllowedHeaders", [])}
    exposed = {header.lower() for header in rule.get("ExposeHeaders", [])}
    return ({"GET", "HEAD"} <= set(rule.get("AllowedMethods", [])) and ("*" in headers or {"range", "if-match"}
            <= headers) and "etag" in exposed)


def _origin_allowed(rule: dict[str, Any], origin: str) -> bool:
    return any(fnmatch.fnmatchcase(origin, allowed) for allowed in rule.get("AllowedOrigins", []))


def merged_policy(policy: dict[str, Any], bucket: str, prefixes: list[str]) -> dict[str, Any] | None:
    """The bucket policy with public read of each dataset prefix added; None if it already grants that."""
    statements = [dict(s) for s in _as_list(policy.get("Statement"))]
    resources = [f"arn:aws:s3:::{bucket}/{prefix}/*" if prefix else f"arn:aws:s3:::{bucket}/*" for prefix in prefixes]
    missing = [arn for arn in resources if not any(_grants_public_read(s, arn) for s in statements)]
    if not missing:
        return None
    ours = next((s for s in statements if s.get("Sid") == POLICY_SID), None)
    if ours is None:
        ours = {"Sid": POLICY_SID, "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": []}
        statements.append(ours)
    ours["Resource"] = sorted(set(_as_list(ours.get("Resource"))) | set(missing))
    return {"Version": policy.get("Version", "2012-10-17"), **{k: v for k, v in policy.items()
                                                              if k not in ("Version", "Statement")},
            "Statement": statements}


def _grants_public_read(statement: dict[str, Any], arn: str) -> bool:
    principal = statement.get("Principal")
    public = principal == "*" or (isinstance(principal, dict) and "*" in _as_list(principal.get("AWS")))
    actions = _as_list(statement.get("Action"))
    return (statement.get("Effect") == "Allow" and public and "Condition" not in statement
            and any(fnmatch.fnmatchcase("s3:GetObject", action) for action in actions)
            and any(fnmatch.fnmatchcase(arn, resource) for resource in _as_list(statement.get("Resource"))))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


# -- the requests a browser sends -------------------------------------------------------------------


@dataclass
class _Answer:
    status: int = 0
    headers: dict[str, str] | None = None
    body: bytes = b""
    error: str = ""  # the request got no answer

    def header(self, name: str) -> str:
        return next((v for k, v in (self.headers or {}).items() if k.lower() == name.lower()), "")


def _send(method: str, url: str, headers: dict[str, str], timeout: float) -> _Answer:
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
        return _Answer(got.status_code, dict(got.headers), body)
    except (botocore.exceptions.BotoCoreError, OSError) as exc:  # refused, reset, timed out, TLS
        return _Answer(error=f"no answer from {urlsplit(url).netloc}: {type(exc).__name__}")
    finally:
        http.close()


def _not_answered(answer: _Answer) -> bool:
    """No answer, or a store's 'not now' (5xx but 501, 429): worth asking again, as the uploads would."""
    return bool(answer.error) or answer.status in PASSING_STATUSES


def _public_read(dataset: Published, answer: _Answer) -> Check:
    name = dataset.catalog_key.rsplit("/", 1)[-1]
    if answer.error:
        return Check(dataset.name, "public read", False, f"GET {name}: {answer.error}")
    if answer.status == 403:
        return Check(dataset.name, "public read", False, f"GET {name} -> 403: anonymous reads are denied", "policy")
    if answer.status != 200:
        return Check(dataset.name, "public read", False, f"GET {name} -> {answer.status}, expected 200")
    if answer.body != dataset.catalog:
        return Check(dataset.name, "public read", False, f"GET {name} -> 200, but not the catalog just published"
                     " (a cache or proxy in between?)")
    return Check(dataset.name, "public read", True, f"GET {name} -> 200, the catalog as published")


def _range_read(dataset: Published, name: str, answer: _Answer) -> Check:
    request = f"GET {name} with Range: bytes=0-{HEADER_SIZE - 1}"
    expected = f"bytes 0-{HEADER_SIZE - 1}/{dataset.archive_size}"
    if answer.error:
        return Check(dataset.name, "range request", False, f"{request}: {answer.error}")
    if answer.status == 403:
        return Check(dataset.name, "range request", False, f"{request} -> 403: anonymous reads are denied", "policy")
    if answer.status == 200:
        return Check(dataset.name, "range request", False, f"{request} -> 200 with the whole file: the store ignores"
                     " Range, so PMTiles cannot be read from it")
    if answer.status != 206:
        return Check(dataset.name, "range request", False, f"{request} -> {answer.status}, expected 206")
    if answer.header("Content-Range") != expected or not answer.body.startswith(MAGIC):
        return Check(dataset.name, "range request", False, f"{request} -> 206 with Content-Range"
                     f" '{answer.header('Content-Range')}', expected '{expected}' and the PMTiles header")
    return Check(dataset.name, "range request", True, f"{request} -> 206, Content-Range: {expected}")


def _preflight(dataset: str, name: str, origin: str, answer: _Answer) -> Check:
    request = f"OPTIONS {name} (preflight for GET with Range)"
    if answer.error:
        return Check(dataset, "CORS preflight", False, f"{request}: {answer.error}", "cors")
    allowed_origin = answer.header("Access-Control-Allow-Origin")
    methods = {m.strip().upper() for m in answer.header("Access-Control-Allow-Methods").split(",")}
    headers = {h.strip().lower() for h in answer.header("Access-Control-Allow-Headers").split(",")}
    if not 200 <= answer.status < 300 or allowed_origin not in (origin, "*"):
        return Check(dataset, "CORS preflight", False, f"{request} -> {answer.status}"
                     f"{', no Access-Control-Allow-Origin' if not allowed_origin else ''}: {origin} is not"
                     " allowed", "cors")
    if not ({"GET", "*"} & methods) or not ({"range", "*"} & headers):
        return Check(dataset, "CORS preflight", False, f"{request} -> {answer.status}, but GET or the range header"
                     " is not allowed", "cors")
    return Check(dataset, "CORS preflight", True, f"{request} -> {answer.status}, {origin} may GET with range")


def _cors_on_get(dataset: str, name: str, origin: str, answer: _Answer) -> Check:
    request = f"GET {name} with Origin"
    if answer.error:
        return Check(dataset, "CORS on GET", False, f"{request}: {answer.error}", "cors")
    allowed_origin = answer.header("Access-Control-Allow-Origin")
    exposed = {h.strip().lower() for h in answer.header("Access-Control-Expose-Headers").split(",")}
    if allowed_origin not in (origin, "*"):
        return Check(dataset, "CORS on GET", False, f"{request} -> no Access-Control-Allow-Origin for {origin}: the"
                     " browser hides the answer", "cors")
    if not ({"etag", "*"} & exposed):
        return Check(dataset, "CORS on GET", False, f"{request} -> ETag is not in Access-Control-Expose-Headers",
                     "cors")
    if 200 <= answer.status < 300 and not answer.header("ETag"):
        return Check(dataset, "CORS on GET", False, f"{request} -> no ETag header")
    return Check(dataset, "CORS on GET", True, f"{request} -> {origin} allowed, ETag exposed")


# -- what the user sees -------------------------------------------------------------------------------


def _link_lines(link: dict[str, str], *, several: bool) -> list[str]:
    if several:  # a collection: one line per sample
        return [f"viewer {link['dataset']}: {link['viewer_link']}  (catalog: {link['catalog_url']})"]
    return [f"viewer: {link['viewer_link']}", f"catalog URL: {link['catalog_url']}"]


def _table(checks: list[Check], origin: str) -> list[str]:
    lines = [f"viewer check (anonymous requests as a browser on {origin} sends them):"]
    for check in checks:
        label = f"{check.dataset}: " if check.dataset else ""
        lines.append(f"  {'ok' if check.ok else 'FAILED':<7} {check.name:<15} {label}{check.detail}")
    return lines


def _problem(failed: list[Check], set_up: bool = False) -> str:
    """One line: what fails, each cause once, and what to do (`set_up`: this run tried --setup-viewer-access)."""
    if not failed:
        return ""
    causes = list(dict.fromkeys(check.cause for check in failed))
    fixable = any(check.needs for check in failed)
    advice = "see the table above"
    if fixable:
        advice = "apply the fixes above" + ("" if set_up else ", or re-run with --setup-viewer-access")
    return f"the viewer cannot read it yet: {'; '.join(causes)}; {advice}"


def _compact(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"))


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _error(exc: BaseException) -> str:
    code = _code(exc)
    return f"{code}: {error_message(exc)}" if code else f"{type(exc).__name__}: {exc}"

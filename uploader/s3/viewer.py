"""Can the web viewer open what was just published? Its link, a browser's-eye check, and the exact fixes.

The viewer (CartoScope) runs in a browser on its own origin. It fetches
`<prefix>/catalog.yaml` and then every PMTiles archive the catalog names by
byte ranges, anonymously, over the URLs a browser uses. Once the catalog is
published, the same requests are sent and judged (viewer_reads.py: what
blocks reading makes the dataset not ready, what only weakens it is a
warning); each failure comes with its fix (viewer_access.py: the bucket
policy statement and the CORS rule, merged into what the bucket has, or a
re-run that repairs objects another tool stored), applied here with
--setup-viewer-access. A real browser is the oracle of these verdicts
(tests/browser/).
"""

from __future__ import annotations

import ipaddress
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from uploader.engine.operations import PUBLISHED, Operation
from uploader.engine.readiness import Readiness
from uploader.local.content_types import content_type
from uploader.local.pmtiles import HEADER_SIZE, is_pmtiles_name
from uploader.retry import until_answered
from uploader.s3.addressing import is_aws_host, uses_virtual_hosts
from uploader.s3.client import PASSING_STATUSES
from uploader.s3.destination import S3Destination
from uploader.s3.settings import ViewerSettings
from uploader.s3.viewer_access import BucketAccess
from uploader.s3.viewer_reads import (
    Answer,
    Check,
    archive_reads,
    catalog_caching,
    catalog_read,
    cors_on_get,
    preflight,
    send,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

CHECK_REQUESTS_IN_FLIGHT = 12
# What an older browser sends before a GET with Range (current ones send a simple Range without it).
PREFLIGHT = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "range"}


@dataclass(frozen=True)
class Archive:
    """One PMTiles archive a published catalog names: where it is, and what was published there."""

    key: str
    size: int

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Published:
    """One dataset whose catalog is now on the store, and what the check reads of it."""

    name: str  # the collection sub-directory, "" for a single dataset
    prefix: str  # the key prefix, no trailing slash
    catalog_key: str
    catalog: bytes  # the local catalog: the anonymous GET must return exactly this
    archives: tuple[Archive, ...]  # every PMTiles archive of the dataset


class ViewerCheck:
    """The reader check of upload_aws (see readiness.ReaderCheck): links, checks, fixes, and the opt-in setup."""

    def __init__(self, client: S3Client, destination: S3Destination, options: ViewerSettings,
                 profile: str | None = None, outage_seconds: float = 120.0) -> None:
        self.client = client
        self.outage_seconds = outage_seconds  # an outage is ridden through this long (the run's --stall-timeout)
        self.s3_dir = destination
        self.bucket = destination.bucket
        self.options = options
        self.access = BucketAccess(client, destination.bucket, options.origin, profile)
        self.access.setting_up = options.setup
        self._region = ""

    def __call__(self, ops: list[Operation]) -> Readiness | None:
        datasets = published_datasets(ops, self.s3_dir)
        if not datasets:  # e.g. an --upload-*-only run that does not publish the catalog
            if self.options.check or self.options.setup:
                return Readiness(None, ["viewer check and setup skipped: this run published no catalog"])
            return None
        return self.check_datasets(datasets)

    def check_datasets(self, datasets: list[Published]) -> Readiness:
        """Links, the opt-in setup, and the check of each dataset (also for a dataset read back, not uploaded)."""
        links = [{"dataset": d.name, "prefix": d.prefix, "viewer_link": self.viewer_link(d.prefix),
                  "catalog_url": self.object_url(d.catalog_key)} for d in datasets]
        lines = [line for link in links for line in _link_lines(link, several=len(links) > 1)]
        report: dict[str, Any] = {"origin": self.options.origin, "datasets": links}
        if self.options.setup:
            report["setup"] = self.access.set_up([d.prefix for d in datasets])
            lines += report["setup"]
        if not self.options.check:
            return Readiness(None, lines, report=report)
        checks = self.checks(datasets)
        failed = [check for check in checks if not check.ok]
        warnings = [check for check in checks if check.warning]
        fixes = self.access.fixes(failed, [d.prefix for d in datasets])
        lines += _table(checks, self.options.origin)
        if not failed:
            lines += self.access.recommendations(warnings)
            lines.append("viewer check passed: the viewer can open " + ("every dataset" if len(links) > 1
                                                                         else "the dataset") + " at the link above")
        report["checks"] = [vars(check) for check in checks]
        report["failures"] = [_one_line(check) for check in failed]
        report["warnings"] = [_one_line(check) for check in warnings]
        report["fixes"] = fixes
        return Readiness(not failed, lines, _problem(failed, self.options.setup), report, self.options.require_ready,
                         fixes)

    def checks(self, datasets: list[Published]) -> list[Check]:
        """Every dataset's requests, all at once (they wait on the network, not the CPU): a few round trips."""
        requests = 2 + max(len(d.archives) for d in datasets)
        with ThreadPoolExecutor(min(CHECK_REQUESTS_IN_FLIGHT, requests * len(datasets)), "viewer-check") as pool:
            return [check for dataset in datasets for check in self.check(dataset, pool)]

    # -- where the viewer reads ----------------------------------------------------------------

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
        """A browser's requests for one dataset, sent anonymously side by side, and what each answer means."""
        origin = self.options.origin

        def request(method: str, key: str, **headers: str) -> Future[Answer]:
            url = self.object_url(key)
            return pool.submit(until_answered, lambda: send(method, url, {"Origin": origin, **headers},
                                                            self.options.timeout), _not_answered, self.outage_seconds)

        catalog = request("GET", dataset.catalog_key)
        ranged = [request("GET", archive.key, Range=f"bytes=0-{HEADER_SIZE - 1}") for archive in dataset.archives]
        preflights = [request("OPTIONS", archive.key, **PREFLIGHT) for archive in dataset.archives[:1]]
        name = dataset.catalog_key.rsplit("/", 1)[-1]
        checks = [self._transport_check(dataset.name, self.object_url(dataset.catalog_key)),
                  catalog_read(dataset.name, name, dataset.catalog, catalog.result()),
                  *catalog_caching(dataset.name, name, catalog.result())]
        if dataset.archives:
            checks += archive_reads(dataset.name, [(archive.name, archive.size, content_type(archive.name),
                                                    answer.result())
                                                   for archive, answer in zip(dataset.archives, ranged, strict=True)])
        checks += cors_on_get(dataset.name, origin, [(name, catalog.result()), *(
            (archive.name, answer.result()) for archive, answer in zip(dataset.archives, ranged, strict=True))])
        checks += [preflight(dataset.name, dataset.archives[0].name, origin, asked.result()) for asked in preflights]
        return checks

    def _transport_check(self, dataset: str, url: str) -> Check:
        parts = urlsplit(url)
        if parts.scheme == "https" or urlsplit(self.options.url).scheme != "https" or _is_loopback(parts.hostname):
            return Check(dataset, "HTTPS", True, f"{parts.scheme}://{parts.netloc}" +
                         (" (a loopback address: browsers allow it)" if parts.scheme == "http" else ""))
        return Check(dataset, "HTTPS", False, f"the store is read over plain http ({parts.netloc}): browsers block"
                     " it on the https viewer page (mixed content); use the store's https endpoint")


# -- which datasets were published ----------------------------------------------------------------


def published_datasets(ops: list[Operation], s3_dir: S3Destination) -> list[Published]:
    """Every dataset whose catalog is on the store after this run (uploaded now, or already there)."""
    found = []
    for op in ops:
        if not op.is_catalog or op.status not in PUBLISHED or op.file is None \
                or op.dataset.collection_root:  # the viewer opens the samples, each at its own link
            continue
        every = (*op.dataset.files, *op.dataset.checked_only)  # with --shard, other workers may have sent it
        found.append(Published(
            name=op.dataset.subdir, prefix=s3_dir.dataset_prefix(op.dataset).rstrip("/"), catalog_key=op.destination,
            catalog=op.file.path.read_bytes(),
            archives=tuple(Archive(s3_dir.key(op.dataset, file.name), file.size) for file in every
                           if is_pmtiles_name(file.name)),
        ))
    return found


# -- what the user sees -------------------------------------------------------------------------------


def _link_lines(link: dict[str, str], *, several: bool) -> list[str]:
    if several:  # a collection: one line per sample
        return [f"viewer {link['dataset']}: {link['viewer_link']}  (catalog: {link['catalog_url']})"]
    return [f"viewer: {link['viewer_link']}", f"catalog URL: {link['catalog_url']}"]


def _table(checks: list[Check], origin: str) -> list[str]:
    lines = [f"viewer check (anonymous requests as a browser on {origin} sends them):"]
    for check in checks:
        label = f"{check.dataset}: " if check.dataset else ""
        lines.append(f"  {check.label:<7} {check.name:<15} {label}{check.detail}")
    return lines


def _one_line(check: Check) -> str:
    return f"{check.dataset + ': ' if check.dataset else ''}{check.name}: {check.detail}"


def _not_answered(answer: Answer) -> bool:
    """No answer, or a store's 'not now' (5xx but 501, 429): worth asking again, as the uploads would."""
    return bool(answer.error) or answer.status in PASSING_STATUSES


def _problem(failed: list[Check], set_up: bool = False) -> str:
    """One line: what fails, each cause once, and what to do (`set_up`: this run tried --setup-viewer-access)."""
    if not failed:
        return ""
    causes = list(dict.fromkeys(check.cause for check in failed))
    needs = {check.needs for check in failed}
    advice = "apply the fixes above" if needs - {""} else "see the table above"
    if needs & {"policy", "cors"} and not set_up:
        advice += ", or re-run with --setup-viewer-access"
    return f"the viewer cannot read it yet: {'; '.join(causes)}; {advice}"


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False



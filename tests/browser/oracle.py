"""A real browser as the oracle of the viewer check: what can Chromium, on the viewer's origin, read of a dataset?

The viewer's origin (https://v3o-main.carto-scope.org) is served here, on
127.0.0.1, by a throw-away HTTPS server with a self-signed certificate made
for the run: Chromium maps the viewer's host name to it
(--host-resolver-rules) and accepts the certificate
(--ignore-certificate-errors). Its page (page.html) fetches catalog.yaml
from the store and reads the header and one tile of every archive the
catalog names with the pmtiles library (pmtiles.js, the npm package's own
browser build, vendored), then writes the outcome into the page, which
`--dump-dom` prints once `--virtual-time-budget` has let every fetch end.

Each page gets a fresh profile (--user-data-dir in a new directory): a
profile reused across pages serves earlier range responses from its HTTP
cache and hides a store that now answers differently.

Why `--dump-dom` and not Playwright: Debian's chromium alone does it (no
browser driver to install or pin), a page takes ~1.2 s, and the outcome the
page writes (the library's own error) is all the tests compare.

The page server stays on 127.0.0.1: Chrome's local-network-access rules
would stop a page on a public address from reading the loopback store.
"""

from __future__ import annotations

import datetime
import functools
import html
import http.server
import ipaddress
import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

HERE = Path(__file__).resolve().parent
VIEWER_ORIGIN = "https://v3o-main.carto-scope.org"
PAGE_TIMEOUT = float(os.environ.get("CARTLOAD_BROWSER_PAGE_TIMEOUT", "60"))  # seconds for one page, whole
VIRTUAL_TIME_BUDGET_MS = 10_000  # the page's own time for its fetches (virtual: ends when they do)


def chromium() -> str | None:
    """The browser to run: $CHROMIUM, else Debian's `chromium` on PATH."""
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass(frozen=True)
class BrowserRead:
    """What the page read: the catalog ("ok" or the error) and each archive's outcome by its catalog name."""

    catalog: str
    archives: dict[str, str]

    @property
    def readable(self) -> bool:
        """The viewer opens the dataset: the catalog and every archive it names were read."""
        return self.catalog == "ok" and bool(self.archives) and all(v == "ok" for v in self.archives.values())

    @property
    def failures(self) -> dict[str, str]:
        found = {name: outcome for name, outcome in self.archives.items() if outcome != "ok"}
        return {"catalog.yaml": self.catalog, **found} if self.catalog != "ok" else found


class Browser:
    """Headless Chromium opening the oracle page on the viewer's origin, one fresh profile per page."""

    def __init__(self, executable: str, origin_port: int, workdir: Path) -> None:
        self.executable = executable
        self.origin_port = origin_port
        self.workdir = workdir

    def read(self, catalog_url: str) -> BrowserRead:
        host = urlsplit(VIEWER_ORIGIN).hostname
        page = f"{VIEWER_ORIGIN}/page.html?catalog={quote(catalog_url, safe='')}"
        profile = Path(tempfile.mkdtemp(prefix="profile-", dir=self.workdir))
        try:
            done = subprocess.run([
                self.executable, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--ignore-certificate-errors",
                f"--host-resolver-rules=MAP {host}:443 127.0.0.1:{self.origin_port}",
                f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}", "--dump-dom", page,
            ], capture_output=True, text=True, timeout=PAGE_TIMEOUT, check=False)
        finally:
            shutil.rmtree(profile, ignore_errors=True)
        return _outcome(done.stdout, done.stderr)


def _outcome(dom: str, log: str) -> BrowserRead:
    found = re.search(r'<pre id="outcome">(.*?)</pre>', dom, re.S)
    if not found or found.group(1) == "running":
        raise AssertionError(f"the oracle page wrote no outcome; chromium said:\n{log[-3000:]}")
    outcome: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    if "fatal" in outcome:
        raise AssertionError(f"the oracle page failed: {outcome['fatal']}")
    return BrowserRead(outcome["catalog"], dict(outcome["archives"]))


@contextmanager
def viewer_origin_browser(workdir: Path) -> Iterator[Browser]:
    """The viewer's origin served on 127.0.0.1 over HTTPS, and a browser that opens pages on it."""
    executable = chromium()
    assert executable, "no chromium on PATH (apt-get install chromium, or set CHROMIUM)"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_self_signed_certificate(workdir, urlsplit(VIEWER_ORIGIN).hostname or ""))
    handler = functools.partial(_QuietFiles, directory=str(HERE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="viewer-origin", daemon=True)
    thread.start()
    try:
        yield Browser(executable, server.server_address[1], workdir)
    finally:
        server.shutdown()
        server.server_close()


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _self_signed_certificate(workdir: Path, host: str) -> tuple[str, str]:
    """A key and a one-day certificate for `host` (and 127.0.0.1), made for this run only."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(host), x509.IPAddress(
                       ipaddress.ip_address("127.0.0.1"))]), critical=False)
                   .sign(key, hashes.SHA256()))
    key_path, cert_path = workdir / "origin.key", workdir / "origin.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return str(cert_path), str(key_path)

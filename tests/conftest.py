"""Shared fixtures: the real S3 server, a fresh copy of the example dataset, and a CLI runner.

The S3 server is a local SeaweedFS started once per session, unless
S3_ENDPOINT_URL is set (docker-compose.test.yml sets it to MinIO; `python -m
tests.servers moto -- pytest ...` to moto's server); then that server is used,
with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, the bucket S3_TEST_BUCKET,
optionally a read-only identity in S3_READER_ACCESS_KEY_ID /
S3_READER_SECRET_ACCESS_KEY, and S3_TEST_SERVER naming the implementation
(seaweedfs, minio, moto) for the few tests that expect different behaviour
from different servers.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.pmtiles_files import pmtiles_bytes
from tests.servers import ADMIN, READER, S3Credentials, SeaweedFS, Write, s3_client

REPO = Path(__file__).resolve().parents[1]
ENTRYPOINT = REPO / "entrypoint.py"
EXAMPLE = REPO / "examples" / "humanlung-demo"


@dataclass
class S3Server:
    endpoint_url: str
    admin: S3Credentials
    reader: S3Credentials | None
    bucket: str
    kind: str = "seaweedfs"  # S3_TEST_SERVER: which implementation, where servers legitimately differ
    seaweedfs: SeaweedFS | None = None  # the local SeaweedFS, whose metadata log gives the order of writes

    def client(self, credentials: S3Credentials | None = None) -> Any:
        return s3_client(self.endpoint_url, credentials or self.admin)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    if os.environ.get("S3_ENDPOINT_URL"):
        reader = None
        if os.environ.get("S3_READER_ACCESS_KEY_ID"):
            reader = S3Credentials(os.environ["S3_READER_ACCESS_KEY_ID"], os.environ["S3_READER_SECRET_ACCESS_KEY"])
        admin = S3Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
        yield S3Server(os.environ["S3_ENDPOINT_URL"], admin, reader, os.environ.get("S3_TEST_BUCKET", "cartload-test"),
                       os.environ.get("S3_TEST_SERVER", "other"))
        return
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs")) as server:
        s3 = S3Server(server.endpoint_url, ADMIN, READER, "cartload-test", seaweedfs=server)
        s3.client().create_bucket(Bucket=s3.bucket)
        yield s3


class S3Prefix:
    """A fresh prefix in the test bucket, with helpers to look at what landed there."""

    def __init__(self, server: S3Server) -> None:
        self.server = server
        self.bucket = server.bucket
        self.prefix = f"run-{uuid.uuid4().hex[:10]}"
        self.client = server.client()

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def names(self, below: str = "") -> set[str]:
        """Object keys under the prefix, relative to it (the uploader's leases apart: see leases())."""
        return {name for name in self.all_names(below) if not name.startswith(".cartload-uploader/")}

    def leases(self) -> set[str]:
        """The lease objects runs keep under the prefix while they own unfinished uploads."""
        return self.all_names(".cartload-uploader/")

    def all_names(self, below: str = "") -> set[str]:
        start = f"{self.prefix}/{below}"
        found = set()
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start):
            found.update(item["Key"][len(self.prefix) + 1:] for item in page.get("Contents", []))
        return found

    def get(self, name: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{name}")["Body"].read())

    def head(self, name: str) -> dict[str, Any]:
        return dict(self.client.head_object(Bucket=self.bucket, Key=f"{self.prefix}/{name}"))

    def writes(self) -> list[Write]:
        """Every object written or deleted under the prefix, in the order the server applied them (keys relative
        to the prefix). Only SeaweedFS logs them: elsewhere the test is skipped."""
        if self.server.seaweedfs is None:
            pytest.skip("the order of writes at the server is read from the local SeaweedFS's metadata log")
        return [Write(write.ns, write.key[len(self.prefix) + 1:], write.kind)
                for write in self.server.seaweedfs.writes(self.bucket, f"{self.prefix}/")]

    def multipart_uploads(self) -> list[dict[str, Any]]:
        answer = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=f"{self.prefix}/")
        return list(answer.get("Uploads", []))


@pytest.fixture
def s3(s3_server: S3Server) -> S3Prefix:
    return S3Prefix(s3_server)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """A private copy of the example cartload output."""
    target = tmp_path / "humanlung-demo"
    shutil.copytree(EXAMPLE, target)
    return target


@pytest.fixture(scope="session")
def no_locks_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/no_locks.c built: LD_PRELOAD it to make file locks fail under a directory, as on a broken NFS."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler, "a C compiler (cc) is needed to simulate a file system without working locks"
    built = tmp_path_factory.mktemp("no-locks") / "no_locks.so"
    source = Path(__file__).with_name("no_locks.c")
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(built), str(source), "-ldl"], check=True)
    return built


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def cli_env(tmp_path: Path, s3_server: S3Server) -> dict[str, str]:
    """An environment with only what the uploader should see: test credentials, endpoint, private cache."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return base_env(home) | {
        "AWS_ACCESS_KEY_ID": s3_server.admin.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.admin.secret_key,
        "AWS_ENDPOINT_URL_S3": s3_server.endpoint_url,
    }


def base_env(home: Path) -> dict[str, str]:
    """A clean environment: no AWS config of this machine, no instance-metadata probing."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "CARTLOAD_UPLOADER_CACHE_DIR": str(home / "cache"),
        "PYTHONPATH": str(REPO),
    }


def two_sample_collection(tmp_path: Path, dataset: Path) -> Path:
    """A collection directory as cartloader's --in-list reads it: Sample_A (the example dataset, catalog id
    humanlung-demo) and Sample_B (one archive, a catalog without an id)."""
    parent = tmp_path / "collection"
    parent.mkdir()
    dataset.rename(parent / "Sample_A")
    second = parent / "Sample_B"
    second.mkdir()
    (second / "genes_all.pmtiles").write_bytes(pmtiles_bytes(b"second"))
    (second / "catalog.yaml").write_text("assets:\n  sge:\n    all: genes_all.pmtiles\n")
    return parent


def run_cli(*args: str | Path, env: dict[str, str], timeout: float = 300) -> CliResult:
    """Run entrypoint.py as a user would, and insist that it never shows a traceback."""
    completed = subprocess.run([sys.executable, str(ENTRYPOINT), *map(str, args)], env=env,
                               capture_output=True, text=True, timeout=timeout, cwd=REPO)
    result = CliResult(completed.returncode, completed.stdout, completed.stderr)
    assert "Traceback" not in result.output, result.output
    return result


# -- the mock Zenodo --------------------------------------------------------------------------------


HELPER_AGENT = "cartload-tests"  # the tests' own calls to the mock, told apart from the uploader's


class MockZenodo:
    """One test's view of the mock Zenodo: its own token (so its own depositions) and the control endpoints."""

    def __init__(self, base_url: str) -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self.api_url = f"{self.base_url}/api"
        self.token = f"test-token-{uuid.uuid4().hex}"
        self._http = requests.Session()
        self._http.headers["User-Agent"] = HELPER_AGENT
        self.control("tokens", {"token": self.token})
        self.log_start = len(self.control("log"))

    def log(self) -> list[dict[str, Any]]:
        """The requests the mock saw since this test began."""
        return list(self._http.get(f"{self.base_url}/_mock/log", params={"since": self.log_start}, timeout=30).json())

    def control(self, name: str, body: dict[str, Any] | None = None) -> Any:
        if body is None:
            return self._http.get(f"{self.base_url}/_mock/{name}", timeout=30).json()
        return self._http.post(f"{self.base_url}/_mock/{name}", json=body, timeout=30).json()

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        response = self._http.request(method, f"{self.api_url}{path}", timeout=30, headers=headers, **kwargs)
        return response.json() if response.content else None

    def put_file(self, deposition: dict[str, Any], name: str, data: bytes) -> None:
        """Add a file as the web page would (its name quoted in the URL)."""
        from urllib.parse import quote

        response = self._http.put(f"{deposition['links']['bucket']}/{quote(name, safe='')}", data=data, timeout=30,
                                  headers={"Authorization": f"Bearer {self.token}"})
        assert response.status_code == 201, response.text

    def depositions(self) -> list[dict[str, Any]]:
        """Every deposition of this test's token, as the API shows it (read by id: no search lag)."""
        mine = hashlib.sha256(self.token.encode()).hexdigest()
        ids = sorted(d["id"] for d in self.control("state") if d["owner_hash"] == mine and not d.get("deleted"))
        return [self.api("GET", f"/deposit/depositions/{i}") for i in ids]

    def restore_defaults(self) -> None:
        from tests.mock_zenodo import DEFAULT_OPTIONS

        self.control("faults", {"every": 0})
        self.control("options", DEFAULT_OPTIONS)
        self.control("limits", {"max_files": 100, "quota_bytes": 50 * 10**9, "max_file_bytes": 50 * 10**9})

    def files(self, deposition_id: int) -> dict[str, str]:
        """file name -> md5 of a deposition's files."""
        return {f["filename"]: f["checksum"] for f in self.api("GET", f"/deposit/depositions/{deposition_id}/files")}


@pytest.fixture(scope="session")
def zenodo_server() -> Iterator[str]:
    if os.environ.get("MOCK_ZENODO_URL"):
        yield os.environ["MOCK_ZENODO_URL"]
        return
    from tests.mock_zenodo import serve

    server = serve()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def zenodo(zenodo_server: str) -> Iterator[MockZenodo]:
    mock = MockZenodo(zenodo_server)
    mock.restore_defaults()
    yield mock
    mock.restore_defaults()


# Waits and pacing short enough for tests that run in seconds (the defaults are for zenodo.org).
FAST_ZENODO = {
    "CARTLOAD_UPLOADER_ZENODO_BACKOFF": "0.05",
    "CARTLOAD_UPLOADER_ZENODO_MAX_WAIT": "10",
    "CARTLOAD_UPLOADER_ZENODO_SEARCH_WAIT": "10",
}


@pytest.fixture
def zenodo_env(tmp_path: Path, zenodo: MockZenodo) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return base_env(home) | FAST_ZENODO


@pytest.fixture
def token_file(tmp_path: Path, zenodo: MockZenodo) -> Path:
    path = tmp_path / "zenodo-token.txt"
    path.write_text(f"  {zenodo.token}\n")
    path.chmod(0o600)  # as the README asks: others reading it get a warning
    return path

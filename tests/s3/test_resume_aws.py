"""Resuming inside a big file across runs, against the real local S3 server (issue 19, item 1).

An interrupted run keeps its multipart upload; the next run finds it on the
store, checks every stored part against the local file, and sends only what
is missing. Bytes are counted through the report: `bytes_resumed` (kept from
the interrupted run) and the rest, which was sent again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ENTRYPOINT, REPO, S3Prefix, S3Server, run_cli
from tests.pmtiles_files import write_random_pmtiles
from tests.proxy import Proxy

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
PART = 8 * MiB
IN_FLIGHT = 8  # parts in flight at most (uploader/s3/writer.py): what an interrupt may lose
SIZE = 300 * 1000 * 1000  # "a 300 MB file"


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("resume") / "genes_all.pmtiles"
    write_random_pmtiles(source, SIZE)  # a PMTiles v3 header, then 300 MB of random tiles
    return source


@pytest.fixture
def dataset(tmp_path: Path, big_file: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    os.link(big_file, data / "genes_all.pmtiles")  # the same bytes, no copy; each test's own inode
    (data / "catalog.yaml").write_text("assets:\n  sge:\n    all: genes_all.pmtiles\n")
    return data


@pytest.fixture
def narrow(s3_server: S3Server) -> Iterator[str]:
    """The store behind a link of ~40 MB/s (5 MB/s a connection): the signal lands before the last part."""
    with Proxy(int(s3_server.endpoint_url.rsplit(":", 1)[1])) as proxy:
        proxy.set(bandwidth=5 * 1000 * 1000)
        yield proxy.url


def interrupt_at(data: Path, s3: S3Prefix, env: dict[str, str], percent: int, sig: signal.Signals,
                 endpoint: str) -> str:
    process = subprocess.Popen(
        [sys.executable, str(ENTRYPOINT), "upload_aws", "--in-dir", str(data), "--s3-dir", s3.uri, "--no-markers",
         "--no-viewer-check"], env=env | {"CARTLOAD_UPLOADER_LOG_INTERVAL": "0.05", "AWS_ENDPOINT_URL_S3": endpoint},
        stderr=subprocess.PIPE, text=True, cwd=REPO)
    assert process.stderr is not None
    lines, signalled = [], False
    for line in process.stderr:
        lines.append(line)
        if line.startswith("progress:") and int(line.split("(")[1].split("%")[0]) >= percent:
            process.send_signal(sig)
            signalled = True
            break
    lines.extend(process.stderr)
    code = process.wait(timeout=120)
    if not signalled:  # the last parts in flight completed together: the progress went from below it to done
        assert percent >= 90 and code == 0, "".join(lines)
    else:
        assert code in (130, -signal.SIGKILL), "".join(lines)
    return "".join(lines)


def resume(data: Path, s3: S3Prefix, env: dict[str, str], *extra: str) -> tuple[dict, str]:
    report = data.parent / "resume.json"
    result = run_cli("upload_aws", "--in-dir", data, "--s3-dir", s3.uri, "--report", report, "--no-markers",
                     "--no-viewer-check", *extra, env=env)
    assert result.code == 0, result.output
    return json.loads(report.read_text()), result.output


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
@pytest.mark.parametrize("percent", [20, 60, 95])
def test_an_interrupted_upload_resumes_sending_only_what_is_missing(dataset, s3, cli_env, narrow, percent, sig):
    interrupt_at(dataset, s3, cli_env, percent, sig, narrow)
    finished_anyway = not s3.multipart_uploads()  # near the end every remaining part may be in flight already

    report, output = resume(dataset, s3, cli_env)

    entry = next(e for e in report["files"] if e["name"] == "genes_all.pmtiles")
    if finished_anyway:
        assert percent == 95 and entry["status"] == "skipped", output  # nothing of it sent again
        return
    size = entry["size"]
    resumed = entry["resumed_bytes"]
    # At least what the progress line showed stored, less the parts in flight at the interrupt, was kept;
    # what was sent again is the rest: resumed + sent = size.
    assert resumed >= size * percent // 100 - (IN_FLIGHT + 1) * PART, (resumed, output)
    assert entry["status"] == "uploaded" and report["totals"]["bytes_resumed"] == resumed
    assert s3.get("genes_all.pmtiles") == (dataset / "genes_all.pmtiles").read_bytes()
    assert s3.multipart_uploads() == [] and s3.leases() == set()


def test_a_part_corrupted_on_the_store_is_sent_again(dataset, s3, cli_env, narrow):
    interrupt_at(dataset, s3, cli_env, 40, signal.SIGTERM, narrow)
    upload = s3.multipart_uploads()[0]
    s3.client.upload_part(Bucket=s3.bucket, Key=upload["Key"], UploadId=upload["UploadId"], PartNumber=2,
                          Body=os.urandom(PART))  # the store now holds other bytes as part 2

    report, _ = resume(dataset, s3, cli_env)

    entry = next(e for e in report["files"] if e["name"] == "genes_all.pmtiles")
    assert 0 < entry["resumed_bytes"] <= entry["size"] - PART  # part 2 was not kept
    assert s3.get("genes_all.pmtiles") == (dataset / "genes_all.pmtiles").read_bytes()


def test_a_local_file_changed_since_resends_the_parts_that_changed(dataset, s3, cli_env, narrow):
    """Every part an unfinished upload holds is checked against the MD5 of the local part before it is kept."""
    interrupt_at(dataset, s3, cli_env, 30, signal.SIGTERM, narrow)
    old = s3.multipart_uploads()[0]
    held = s3.client.list_parts(Bucket=s3.bucket, Key=old["Key"], UploadId=old["UploadId"])["Parts"]
    assert any(part["PartNumber"] == 1 for part in held)
    path = dataset / "genes_all.pmtiles"
    content = bytearray(path.read_bytes())
    content[1000] ^= 0xFF  # in part 1, which the store holds (after the PMTiles header)
    path.unlink()  # the fixture's file is shared by hard links
    path.write_bytes(bytes(content))

    report, _ = resume(dataset, s3, cli_env)

    kept = report["totals"]["bytes_resumed"]  # parts in flight at the interrupt may have been stored since
    assert sum(part["Size"] for part in held if part["PartNumber"] != 1) <= kept <= path.stat().st_size - 8 * MiB
    assert s3.get("genes_all.pmtiles") == bytes(content)
    assert s3.multipart_uploads() == []


def test_an_upload_under_another_live_runs_lease_is_left_alone_unless_taken_over(dataset, s3, cli_env, narrow):
    slow = cli_env | {"CARTLOAD_UPLOADER_LEASE_STALE": "3600"}
    interrupt_at(dataset, s3, slow, 30, signal.SIGKILL, narrow)
    lease_key = next(iter(s3.leases()))
    lease = json.loads(s3.get(lease_key))
    lease["host"], lease["pid"] = "another-node", 4242  # as if it ran elsewhere and may still be alive
    s3.client.put_object(Bucket=s3.bucket, Key=f"{s3.prefix}/{lease_key}", Body=json.dumps(lease).encode())

    refused = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, "--no-viewer-check", env=slow)

    assert refused.code == 1, refused.output
    assert "another upload to this prefix is running: run" in refused.stderr and "another-node" in refused.stderr
    assert len(s3.multipart_uploads()) == 1  # left alone

    report, _ = resume(dataset, s3, slow, "--take-over")
    assert report["totals"]["bytes_resumed"] > 0
    assert s3.get("genes_all.pmtiles") == (dataset / "genes_all.pmtiles").read_bytes()


def test_unfinished_uploads_no_run_holds_are_aborted_on_request(dataset, s3, cli_env):
    key = f"{s3.prefix}/genes_all.pmtiles"
    s3.client.create_multipart_upload(Bucket=s3.bucket, Key=key)  # another tool's, a minute old: left alone
    resume(dataset, s3, cli_env)
    assert len(s3.multipart_uploads()) == 1
    (dataset / "catalog.yaml").write_text("assets:\n  sge:\n    all: genes_all.pmtiles\nid: x\n")
    resume(dataset, s3, cli_env, "--abort-incomplete-uploads")
    assert s3.multipart_uploads() == []

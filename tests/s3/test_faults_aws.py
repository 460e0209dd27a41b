"""upload_aws under faults, against the real local S3 server and a fault-injecting proxy (tests/proxy.py).

Outages shorter than the stall limit are ridden through; an endpoint that
stops answering ends the run within the limit and says so while it waits;
a file that changes while it is sent is not reported as uploaded; and the
messages name the real cause.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import ENTRYPOINT, REPO, S3Prefix, S3Server, run_cli
from tests.proxy import Proxy
from tests.servers import ADMIN, SeaweedFS

pytestmark = pytest.mark.e2e

FAST = {"CARTLOAD_UPLOADER_RETRY_PAUSE": "0.2", "CARTLOAD_UPLOADER_RETRY_PAUSE_CAP": "1",
        "CARTLOAD_UPLOADER_NOTICE_SECONDS": "1", "CARTLOAD_UPLOADER_LOG_INTERVAL": "0.1",
        "CARTLOAD_UPLOADER_READ_TIMEOUT": "5", "CARTLOAD_UPLOADER_CONNECT_TIMEOUT": "2"}
MiB = 1024 * 1024


def make_dataset(root: Path, small: int = 30, big: int = 2, big_size: int = 17 * MiB) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(small):
        (root / f"table-{index:02d}.tsv").write_bytes(os.urandom(64 * 1024))
        names.append(f"table-{index:02d}.tsv")
    for index in range(big):
        (root / f"layer-{index}.bin").write_bytes(os.urandom(big_size))
        names.append(f"layer-{index}.bin")
    (root / "catalog.yaml").write_text("id: faults\nassets:\n  tables:\n" + "".join(f"    - {n}\n" for n in names))
    return root


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[Proxy]:
    with Proxy(port_of(s3_server.endpoint_url), delay=0.005) as running:
        yield running


def start(data: Path, s3: S3Prefix, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(ENTRYPOINT), "upload_aws", "--in-dir", str(data), "--s3-dir",
                             s3.uri, "--no-markers", "--no-viewer-check", *extra], env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=REPO)


def read_until(process: subprocess.Popen[str], wanted: str, lines: list[str], percent: int = 0) -> None:
    """Read the run's messages until one holds `wanted` (and, for a progress line, shows `percent` sent)."""
    assert process.stderr is not None
    for line in process.stderr:
        lines.append(line)
        if wanted in line and (not percent or int(line.split("(")[1].split("%")[0]) >= percent):
            return
    raise AssertionError(f"never saw {wanted!r}:\n{''.join(lines)}")


def finish(process: subprocess.Popen[str], lines: list[str], timeout: float = 120) -> tuple[int, str]:
    assert process.stderr is not None
    lines.extend(process.stderr)
    return process.wait(timeout=timeout), "".join(lines)


def assert_intact(data: Path, s3: S3Prefix) -> None:
    local = {p.name for p in data.iterdir() if p.is_file()}
    assert s3.names() == local
    for name in local:
        assert hashlib.md5(s3.get(name)).hexdigest() == hashlib.md5((data / name).read_bytes()).hexdigest(), name
    assert s3.multipart_uploads() == []


# -- 3. short outages are ridden through ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["refuse", "reset"])
def test_a_two_second_outage_is_ridden_through(tmp_path, s3, cli_env, proxy, mode):
    data = make_dataset(tmp_path / "data")
    env = cli_env | FAST | {"AWS_ENDPOINT_URL_S3": proxy.url}
    process = start(data, s3, env, "--n-jobs", "4")
    lines: list[str] = []
    read_until(process, "[3/", lines)

    proxy.set(mode=mode, reset_after=10_000)  # refused connections, or every connection cut after 10 kB
    proxy.cut_all()
    time.sleep(2)
    proxy.set(mode="pass")
    code, output = finish(process, lines)

    assert code == 0, output
    assert_intact(data, s3)


def test_a_server_restart_is_ridden_through(tmp_path, s3_server, cli_env):
    data = make_dataset(tmp_path / "data", small=40, big=3)
    with SeaweedFS(tmp_path / "own-server") as server:
        server.client().create_bucket(Bucket="restart")
        with Proxy(port_of(server.endpoint_url), delay=0.01) as slow:  # the run outlasts the restart
            env = cli_env | FAST | {"AWS_ENDPOINT_URL_S3": slow.url}
            process = subprocess.Popen(
                [sys.executable, str(ENTRYPOINT), "upload_aws", "--in-dir", str(data), "--s3-dir",
                 "s3://restart/data", "--n-jobs", "4", "--no-markers", "--no-viewer-check"],
                env=env, stderr=subprocess.PIPE, text=True, cwd=REPO)
            lines: list[str] = []
            read_until(process, "[3/", lines)
            server.stop()
            server.start()
            code, output = finish(process, lines, timeout=180)
        assert code == 0, output
        client = server.client()
        keys = {o["Key"] for o in client.list_objects_v2(Bucket="restart", Prefix="data/")["Contents"]}
        assert keys == {f"data/{p.name}" for p in data.iterdir()}
        for path in data.iterdir():
            body = client.get_object(Bucket="restart", Key=f"data/{path.name}")["Body"].read()
            assert body == path.read_bytes(), path.name


# -- 4. a dead endpoint fails fast and says so ---------------------------------------------------------


def test_an_endpoint_that_never_answers_ends_the_run_within_the_stall_limit(tmp_path, s3, cli_env, proxy):
    data = make_dataset(tmp_path / "data", small=3, big=0)
    proxy.set(mode="blackhole")
    report = tmp_path / "report.json"
    started = time.monotonic()

    result = run_cli("upload_aws", "--in-dir", data, "--s3-dir", s3.uri, "--stall-timeout", "3", "--report", report,
                     env=cli_env | FAST | {"AWS_ENDPOINT_URL_S3": proxy.url}, timeout=60)

    assert result.code == 4, result.output
    assert time.monotonic() - started < 15
    assert "waiting: no progress for" in result.stderr  # said while it waited
    assert "no progress for 3 s" in result.stderr and "stopped answering" in result.stderr
    assert json.loads(report.read_text())["ok"] is False
    proxy.set(mode="pass")
    assert s3.names() == set()


def test_a_black_hole_mid_run_stops_it_with_the_resume_command(tmp_path, s3, cli_env, proxy):
    data = make_dataset(tmp_path / "data", small=40, big=2)
    env = cli_env | FAST | {"AWS_ENDPOINT_URL_S3": proxy.url}
    process = start(data, s3, env, "--n-jobs", "2", "--stall-timeout", "3")
    lines: list[str] = []
    read_until(process, "[3/", lines)
    started = time.monotonic()
    proxy.set(mode="blackhole")
    proxy.cut_all()

    code, output = finish(process, lines, timeout=60)

    assert code == 1, output  # some files were uploaded: they are kept
    assert time.monotonic() - started < 20, output
    assert "stopped: no progress for" in output and "resume with:" in output
    proxy.set(mode="pass")
    assert "catalog.yaml" not in s3.names()


def test_sigterm_while_the_endpoint_is_dead_ends_the_run_at_once(tmp_path, s3, cli_env, proxy):
    data = make_dataset(tmp_path / "data", small=3, big=0)
    proxy.set(mode="blackhole")
    process = start(data, s3, cli_env | FAST | {"AWS_ENDPOINT_URL_S3": proxy.url})
    time.sleep(2)  # inside the first listing, which gets no answer
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code, output = finish(process, [], timeout=30)
    assert code == 130, output
    assert time.monotonic() - started < 5


# -- 6. a file that changes while it is being sent is not reported as uploaded --------------------------


def test_a_file_appended_to_during_its_upload_is_not_reported_uploaded(tmp_path, s3, cli_env, s3_server):
    data = make_dataset(tmp_path / "data", small=1, big=1, big_size=64 * MiB)
    with Proxy(port_of(s3_server.endpoint_url), delay=0.05) as slow:  # long enough to change it meanwhile
        process = start(data, s3, cli_env | FAST | {"AWS_ENDPOINT_URL_S3": slow.url}, "--n-jobs", "1")
        lines: list[str] = []
        read_until(process, "progress:", lines, percent=15)  # the big file is part sent
        with open(data / "layer-0.bin", "ab") as handle:
            handle.write(b"appended while it was sent")
        code, output = finish(process, lines)

    assert code == 1, output
    assert "layer-0.bin: changed during upload" in output, output
    assert "catalog.yaml" not in s3.names()


def test_a_file_that_shrinks_mid_part_fails_at_once(tmp_path, s3, cli_env, s3_server):
    data = make_dataset(tmp_path / "data", small=1, big=1, big_size=64 * MiB)
    with Proxy(port_of(s3_server.endpoint_url), delay=0.05) as slow:
        process = start(data, s3, cli_env | FAST | {"AWS_ENDPOINT_URL_S3": slow.url}, "--n-jobs", "1")
        lines: list[str] = []
        read_until(process, "progress:", lines, percent=15)
        started = time.monotonic()
        os.truncate(data / "layer-0.bin", 20 * MiB)
        code, output = finish(process, lines)

    assert code == 1, output
    assert time.monotonic() - started < 30
    assert "layer-0.bin" in output and "changed" in output
    assert "catalog.yaml" not in s3.names()
    # Its unfinished upload is kept; the next run sees the file changed, aborts it and sends the file whole.
    result = run_cli("upload_aws", "--in-dir", data, "--s3-dir", s3.uri, "--no-viewer-check", env=cli_env)
    assert result.code == 0 and "aborted an unfinished upload" in result.stderr, result.output
    assert s3.get("layer-0.bin") == (data / "layer-0.bin").read_bytes() and s3.multipart_uploads() == []


# -- 8. messages that name the real cause -------------------------------------------------------------


def test_a_wrong_secret_and_an_unknown_key_say_what_is_wrong(tmp_path, s3, cli_env):
    data = make_dataset(tmp_path / "data", small=1, big=0)
    wrong = run_cli("upload_aws", "--in-dir", data, "--s3-dir", s3.uri,
                    env=cli_env | {"AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    assert wrong.code == 3 and "the credentials are wrong (SignatureDoesNotMatch" in wrong.stderr, wrong.output
    assert "s3:ListBucket" not in wrong.stderr and "not-the-secret" not in wrong.output
    unknown = run_cli("upload_aws", "--in-dir", data, "--s3-dir", s3.uri,
                      env=cli_env | {"AWS_ACCESS_KEY_ID": "nobody-has-this-key"})
    assert unknown.code == 3 and "access key is unknown to this store (InvalidAccessKeyId" in unknown.stderr


def test_an_endpoint_that_is_not_s3_says_so(tmp_path, s3, cli_env):
    data = make_dataset(tmp_path / "data", small=1, big=0)
    web = ThreadingHTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        result = run_cli("upload_aws", "--in-dir", data, "--s3-dir", "s3://bucket/x",
                         env=cli_env | {"AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{web.server_port}"})
    finally:
        web.shutdown()
    assert result.code == 2, result.output
    assert "does not speak S3" in result.stderr and "does not exist" not in result.stderr


def test_a_secret_in_the_endpoints_user_info_is_masked(tmp_path, s3, cli_env, s3_server):
    data = make_dataset(tmp_path / "data", small=1, big=0)
    host = s3_server.endpoint_url.split("//")[1]
    report = tmp_path / "report.json"
    result = run_cli("upload_aws", "--in-dir", data, "--s3-dir", s3.uri, "--no-viewer-check", "--report", report,
                     "--endpoint-url", f"http://user:s3cr3t-value@{host}", env=cli_env)
    written = result.output + report.read_text()
    assert "s3cr3t-value" not in written
    assert json.loads(report.read_text())["command"].count("****@") == 1


def test_a_key_the_store_rewrites_is_named_with_the_rewrite(tmp_path, s3, cli_env, s3_server):
    if s3.server.kind != "seaweedfs":
        pytest.skip("only SeaweedFS turns '\\' in keys into '/' (AWS and moto keep it)")
    data = tmp_path / "data"
    data.mkdir()
    (data / "odd\\name.tsv").write_text("a\tb\n")
    (data / "catalog.yaml").write_text("assets:\n  t: odd\\name.tsv\n")
    result = run_cli("upload_aws", "--in-dir", data, "--s3-dir", s3.uri, "--no-viewer-check", env=cli_env)
    assert result.code == 1, result.output
    assert f"the store saved '{s3.prefix}/odd\\name.tsv' as '{s3.prefix}/odd/name.tsv'" in result.stderr
    assert "Re-run to repair" not in result.stderr
    assert "catalog.yaml" not in s3.names()


def test_the_read_only_identity_still_gets_access_denied(tmp_path, s3, cli_env, s3_server):
    if s3_server.reader is None:
        pytest.skip("this server has no read-only identity")
    data = make_dataset(tmp_path / "data", small=1, big=0)
    env = cli_env | {"AWS_ACCESS_KEY_ID": s3_server.reader.access_key,
                     "AWS_SECRET_ACCESS_KEY": s3_server.reader.secret_key}
    result = run_cli("upload_aws", "--in-dir", data, "--s3-dir", s3.uri, env=env)
    assert result.code == 3 and "access denied" in result.stderr
    assert ADMIN.secret_key not in result.output

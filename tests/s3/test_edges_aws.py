"""upload_aws at the edges (issue 28), against the real local S3 server and our fault proxy (tests/proxy.py).

--delete never removes the tool's own keys; an outage in any phase is ridden
through; the last word on the catalog is the store's; bad keys are refused
before anything is sent; and the messages say exactly what is so.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ENTRYPOINT, REPO, S3Prefix, S3Server, run_cli
from tests.proxy import Proxy
from tests.s3.test_faults_aws import FAST, MiB, make_dataset, port_of

pytestmark = pytest.mark.e2e


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[Proxy]:
    with Proxy(port_of(s3_server.endpoint_url)) as running:
        yield running


def upload(data: Path, s3: S3Prefix, env: dict[str, str], *extra: str | Path) -> tuple[int, str, dict]:
    report = data.parent / f"report-{os.urandom(4).hex()}.json"
    result = run_cli("upload_aws", "--in-dir", data, "--s3-dir", s3.uri, "--no-markers", "--report", report,
                     *extra, env=env, timeout=180)
    return result.code, result.output, json.loads(report.read_text()) if report.exists() else {}


def assert_holds_exactly(data: Path, s3: S3Prefix) -> None:
    """The prefix holds the dataset, byte for byte, and nothing else (the tool's own keys apart)."""
    local = {path.name for path in data.iterdir() if path.is_file()}
    assert s3.names() == local
    for name in local:
        assert hashlib.md5(s3.get(name)).digest() == hashlib.md5((data / name).read_bytes()).digest(), name
    assert s3.multipart_uploads() == []


def put_lease(s3: S3Prefix, run: str, *, released: bool, uploads: list[dict] = ()) -> str:
    """A lease as a run writes it (uploader/s3/leases.py): live when held by a running process of this host."""
    key = f".cartload-uploader/runs/{run}.json"
    lease = {"run": run, "host": os.uname().nodename, "pid": os.getpid(), "released": released,
             "uploads": list(uploads)}
    s3.client.put_object(Bucket=s3.bucket, Key=f"{s3.prefix}/{key}", Body=json.dumps(lease).encode())
    return key


# -- 1. --delete never removes the tool's own keys ---------------------------------------------------------


def test_delete_keeps_a_live_and_a_released_lease_and_the_write_check_key(tmp_path, s3, cli_env):
    data = make_dataset(tmp_path / "data", small=2, big=0)
    assert upload(data, s3, cli_env, "--no-viewer-check")[0] == 0
    unfinished = s3.client.create_multipart_upload(Bucket=s3.bucket, Key=f"{s3.prefix}/elsewhere.bin")["UploadId"]
    live = put_lease(s3, "live0000000a", released=False)  # a run uploading right now
    released = put_lease(s3, "released000b", released=True, uploads=[  # an interrupted run's, to resume
        {"key": f"{s3.prefix}/elsewhere.bin", "upload_id": unfinished, "sha256": "0" * 64, "size": 1,
         "part_size": 8 * MiB}])
    s3.client.put_object(Bucket=s3.bucket, Key=f"{s3.prefix}/.cartload-uploader-write-check", Body=b"x")
    s3.client.put_object(Bucket=s3.bucket, Key=f"{s3.prefix}/old.tsv", Body=b"not named")

    dry = run_cli("upload_aws", "--in-dir", data, "--s3-dir", s3.uri, "--delete", "--dry-run", env=cli_env)

    assert dry.code == 0, dry.output
    assert [line.split()[2] for line in dry.stdout.splitlines() if line.startswith("delete")] == \
        [f"{s3.prefix}/old.tsv"]
    assert ".cartload-uploader" not in dry.stdout

    code, output, _ = upload(data, s3, cli_env, "--delete", "--no-viewer-check")

    assert code == 0, output
    assert s3.all_names() == {path.name for path in data.iterdir()} | {live, released,
                                                                       ".cartload-uploader-write-check"}
    assert [upload["UploadId"] for upload in s3.multipart_uploads()] == [unfinished]


def test_a_killed_upload_resumes_after_a_delete_run_of_other_data_at_the_same_prefix(tmp_path, s3, cli_env,
                                                                                      s3_server):
    data = make_dataset(tmp_path / "data", small=1, big=1, big_size=64 * MiB)
    with Proxy(port_of(s3_server.endpoint_url)) as narrow:
        narrow.set(bandwidth=4 * 1000 * 1000)  # the kill lands with parts stored and parts to go
        process = subprocess.Popen(
            [sys.executable, str(ENTRYPOINT), "upload_aws", "--in-dir", str(data), "--s3-dir", s3.uri,
             "--no-markers", "--no-viewer-check", "--n-jobs", "2"],
            env=cli_env | FAST | {"AWS_ENDPOINT_URL_S3": narrow.url}, stderr=subprocess.PIPE, text=True, cwd=REPO)
        assert process.stderr is not None
        for line in process.stderr:
            if line.startswith("progress:") and int(line.split("(")[1].split("%")[0]) >= 30:
                process.kill()
                break
        assert process.wait(timeout=60) == -signal.SIGKILL
    assert len(s3.leases()) == 1 and len(s3.multipart_uploads()) == 1
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.tsv").write_text("a\tb\n")
    (other / "catalog.yaml").write_text("id: other\nassets:\n  notes: notes.tsv\n")

    code, output, _ = upload(other, s3, cli_env, "--delete", "--no-viewer-check")

    assert code == 0, output
    assert len(s3.leases()) == 1 and len(s3.multipart_uploads()) == 1  # the killed run's, kept
    code, output, report = upload(data, s3, cli_env, "--no-viewer-check")
    assert code == 0, output
    assert report["totals"]["bytes_resumed"] > 0, output  # the parts stored before the kill were not sent again
    assert s3.get("layer-0.bin") == (data / "layer-0.bin").read_bytes()
    assert s3.multipart_uploads() == [] and s3.leases() == set()


# -- 2. an outage in any phase is ridden through -----------------------------------------------------------


def first_run_then(data: Path, s3: S3Prefix, env: dict[str, str], phase: str) -> list[str]:
    """What the run through the proxy is asked to do in `phase`: a first upload (and a change) where needed."""
    if phase not in ("catalog withdraw", "delete"):
        return []
    assert upload(data, s3, env, "--no-viewer-check")[0] == 0
    if phase == "catalog withdraw":  # a file the live catalog names changes: the catalog is withdrawn first
        (data / "table-00.tsv").write_bytes(os.urandom(1000))
        return []
    s3.client.put_object(Bucket=s3.bucket, Key=f"{s3.prefix}/old.tsv", Body=b"not named by the catalog")
    return ["--delete"]


OUTAGE_AT = {  # the request that begins the outage, as the proxy sees it (path-style: /BUCKET/KEY)
    "bucket check": lambda s3: f"HEAD /{s3.bucket} HTTP",
    "listing": lambda s3: "list-type=2",
    "lease write": lambda s3: f"PUT /{s3.bucket}/{s3.prefix}/.cartload-uploader/runs/",
    "multipart create": lambda s3: "layer-0.bin?uploads",
    "multipart complete": lambda s3: f"POST /{s3.bucket}/{s3.prefix}/layer-0.bin?uploadId=",
    "catalog withdraw": lambda s3: f"DELETE /{s3.bucket}/{s3.prefix}/catalog.yaml ",
    "catalog publish": lambda s3: f"PUT /{s3.bucket}/{s3.prefix}/catalog.yaml ",
    "delete": lambda s3: f"DELETE /{s3.bucket}/{s3.prefix}/old.tsv ",
    "viewer check": lambda s3: "(viewer check)",
}


@pytest.mark.parametrize("phase", list(OUTAGE_AT))
def test_an_outage_in_any_phase_is_ridden_through(tmp_path, s3, cli_env, proxy, phase):
    data = make_dataset(tmp_path / "data", small=3, big=1)
    extra = first_run_then(data, s3, cli_env, phase)
    viewer = ["--setup-viewer-access"] if phase == "viewer check" else ["--no-viewer-check"]
    proxy.outage_on(OUTAGE_AT[phase](s3).encode(), seconds=2.5)

    code, output, _ = upload(data, s3, cli_env | FAST | {"AWS_ENDPOINT_URL_S3": proxy.url}, "--stall-timeout",
                             "20", *extra, *viewer)

    assert proxy.behaviour.outages == 1, f"no request of the {phase} came"
    assert code == 0, output
    assert_holds_exactly(data, s3)
    if phase == "viewer check":
        assert "viewer check passed" in output, output


# -- 4. the last word on the catalog is the store's --------------------------------------------------------


def a_catalog_update(data: Path, s3: S3Prefix, env: dict[str, str]) -> None:
    """A published dataset, then a change that withdraws its catalog and publishes a new one."""
    assert upload(data, s3, env, "--no-viewer-check")[0] == 0
    (data / "table-00.tsv").write_bytes(os.urandom(1000))  # named by the live catalog: withdrawn first
    (data / "added.tsv").write_text("a\tb\n")
    (data / "catalog.yaml").write_text((data / "catalog.yaml").read_text() + "    - added.tsv\n")


def interrupted_while_held(data: Path, s3: S3Prefix, env: dict[str, str], proxy: Proxy, request: str,
                           stored: Callable[[], bool], *, then_dead: bool = False) -> tuple[int, str]:
    """Run through the proxy, which holds back the answer to `request`; SIGTERM once `stored()` shows the store
    did what was asked (and, `then_dead`, once nothing more is answered)."""
    proxy.set(hold_answer_on=request.encode())
    process = subprocess.Popen(
        [sys.executable, str(ENTRYPOINT), "upload_aws", "--in-dir", str(data), "--s3-dir", s3.uri, "--no-markers",
         "--no-viewer-check", "--report", str(data.parent / "held.json")],
        env=env | FAST | {"AWS_ENDPOINT_URL_S3": proxy.url,
                                                 "CARTLOAD_UPLOADER_CATALOG_ASK_SECONDS": "2"},
        stderr=subprocess.PIPE, text=True, cwd=REPO)
    deadline = time.monotonic() + 60
    while not (proxy.behaviour.held and stored()):
        assert time.monotonic() < deadline and process.poll() is None, "the request was never held"
        time.sleep(0.05)
    if then_dead:  # every connection cut, and new ones never answered
        proxy.set(mode="blackhole")
        proxy.cut_all()
    process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=60)
    return process.returncode, errors


def catalog_etag(s3: S3Prefix) -> str:
    try:
        return str(s3.head("catalog.yaml")["ETag"]).strip('"')
    except Exception:
        return ""


def test_sigterm_during_a_catalog_put_answered_late_reports_the_new_catalog_live(tmp_path, s3, cli_env, proxy):
    data = make_dataset(tmp_path / "data", small=2, big=0)
    a_catalog_update(data, s3, cli_env)
    new = hashlib.md5((data / "catalog.yaml").read_bytes()).hexdigest()

    code, errors = interrupted_while_held(data, s3, cli_env, proxy, f"PUT /{s3.bucket}/{s3.prefix}/catalog.yaml ",
                                          lambda: catalog_etag(s3) == new)

    assert code == 130, errors
    assert f"catalog: {s3.prefix}/catalog.yaml: live: this run's catalog (the store's answer" in errors
    assert "offline" not in errors
    report = json.loads((data.parent / "held.json").read_text())
    catalog = next(e for e in report["files"] if e["catalog"] and e["action"] != "delete")
    assert (catalog["status"], catalog["store_says"]) == ("uploaded", "live: this run's catalog")
    assert_holds_exactly(data, s3)


def test_sigterm_during_a_withdrawal_answered_late_reports_it_withdrawn(tmp_path, s3, cli_env, proxy):
    data = make_dataset(tmp_path / "data", small=2, big=0)
    a_catalog_update(data, s3, cli_env)

    code, errors = interrupted_while_held(data, s3, cli_env, proxy,
                                          f"DELETE /{s3.bucket}/{s3.prefix}/catalog.yaml ",
                                          lambda: catalog_etag(s3) == "")

    assert code == 130, errors
    assert f"catalog: {s3.prefix}/catalog.yaml: withdrawn: no catalog is there" in errors, errors
    assert f"offline: {s3.prefix}/catalog.yaml was withdrawn" in errors
    assert "catalog.yaml" not in s3.names()


def test_a_store_that_does_not_answer_after_a_cut_catalog_put_is_reported_unknown(tmp_path, s3, cli_env, proxy):
    data = make_dataset(tmp_path / "data", small=2, big=0)
    a_catalog_update(data, s3, cli_env)
    new = hashlib.md5((data / "catalog.yaml").read_bytes()).hexdigest()

    started = time.monotonic()
    code, errors = interrupted_while_held(data, s3, cli_env, proxy, f"PUT /{s3.bucket}/{s3.prefix}/catalog.yaml ",
                                          lambda: catalog_etag(s3) == new, then_dead=True)

    assert code == 130, errors
    assert time.monotonic() - started < 30
    assert f"catalog: {s3.prefix}/catalog.yaml: unknown: the store did not say what is there" in errors, errors
    assert f"offline?: {s3.prefix}/catalog.yaml was withdrawn" in errors and "\noffline:" not in errors


# -- 5. keys S3 cannot hold are refused before anything is sent ----------------------------------------------


def test_a_key_over_1024_bytes_is_refused_before_anything_is_sent(tmp_path, s3, cli_env, proxy):
    data = make_dataset(tmp_path / "data", small=2, big=0)
    long_dir = data / ("d" * 250) / ("e" * 250) / ("f" * 250) / ("g" * 250)
    long_dir.mkdir(parents=True)
    (long_dir / "long.tsv").write_text("a\tb\n")
    name = str(long_dir.relative_to(data) / "long.tsv")
    catalog = data / "catalog.yaml"
    catalog.write_text(catalog.read_text() + f"  long: {name}\n")

    result = run_cli("upload_aws", "--in-dir", data, "--s3-dir", s3.uri, "--no-viewer-check",
                     env=cli_env | {"AWS_ENDPOINT_URL_S3": proxy.url})

    assert result.code == 2, result.output
    assert f"{data / name}: its S3 key is {len(s3.prefix) + 1 + len(name):,d} bytes, over S3's limit of 1,024" \
        in result.stderr
    assert proxy.behaviour.connections == 0  # not one request
    assert s3.all_names() == set()


# -- 6. the viewer's fixes never replace a bucket policy they could not read ---------------------------------


@pytest.mark.parametrize("setup", [False, True], ids=["check", "setup-viewer-access"])
def test_an_unreadable_bucket_policy_gets_a_statement_to_add_never_a_policy_to_put(tmp_path, s3, cli_env, proxy,
                                                                                      setup):
    data = make_dataset(tmp_path / "data", small=2, big=0)
    proxy.set(deny_on=b"?policy")  # GetBucketPolicy (and PutBucketPolicy) answered AccessDenied

    code, output, report = upload(data, s3, cli_env | {"AWS_ENDPOINT_URL_S3": proxy.url},
                                  *(["--setup-viewer-access"] if setup else []))

    assert code == 0, output
    assert_holds_exactly(data, s3)
    assert "put-bucket-policy" not in output and "put-bucket-policy" not in json.dumps(report)
    assert "fix public read: let anyone read s3://" in output
    assert "The bucket policy could not be read (" in output and "ask the bucket owner to add this statement" in output
    assert f'"Resource":["arn:aws:s3:::{s3.bucket}/{s3.prefix}/*"]' in output
    assert ("re-run with --setup-viewer-access" in output) is not setup
    assert "the policy below the bucket's own policy" not in output


# -- 7. messages that say exactly what is so -------------------------------------------------------------------


def test_shard_auto_n_without_the_kubernetes_index_names_it(tmp_path, s3, cli_env):
    data = make_dataset(tmp_path / "data", small=2, big=0)
    env = {name: value for name, value in cli_env.items() if not name.startswith(("SLURM_", "JOB_COMPLETION"))}
    result = run_cli("upload_aws", "--in-dir", data, "--s3-dir", s3.uri, "--shard", "auto/4", env=env)
    assert result.code == 2, result.output
    assert "--shard auto/4: JOB_COMPLETION_INDEX is not set" in result.stderr
    assert s3.all_names() == set()


def test_a_dry_run_with_delete_shows_real_sizes_and_the_withdrawn_catalog_apart(tmp_path, s3, cli_env):
    data = make_dataset(tmp_path / "data", small=2, big=0)
    assert upload(data, s3, cli_env, "--no-viewer-check")[0] == 0
    s3.client.put_object(Bucket=s3.bucket, Key=f"{s3.prefix}/old.tsv", Body=b"x" * 1234)
    (data / "table-00.tsv").write_bytes(os.urandom(100))  # the live catalog is withdrawn before it is replaced

    dry = run_cli("upload_aws", "--in-dir", data, "--s3-dir", s3.uri, "--delete", "--dry-run", env=cli_env)

    assert dry.code == 0, dry.output
    lines = dry.stdout.splitlines()
    assert [line.split()[:3] for line in lines if line.startswith("delete")] == [
        ["delete", f"{(data / 'catalog.yaml').stat().st_size:,d}", f"{s3.prefix}/catalog.yaml"],
        ["delete", "1,234", f"{s3.prefix}/old.tsv"]]
    assert "1 to delete (1.2 KiB), 1 live catalog(s) withdrawn first and published again; nothing was changed" \
        in lines[-1]
    assert s3.get("old.tsv") == b"x" * 1234


def test_a_catalog_naming_dot_slash_is_told_so(tmp_path, s3, cli_env):
    data = make_dataset(tmp_path / "data", small=1, big=0)
    (data / "catalog.yaml").write_text("id: dots\nassets:\n  t: ./table-00.tsv\n")
    result = run_cli("upload_aws", "--in-dir", data, "--s3-dir", s3.uri, env=cli_env)
    assert result.code == 2, result.output
    assert "'./table-00.tsv' has a '.' or empty path part" in result.stderr and "write it as 'table-00.tsv'" \
        in result.stderr
    assert "leaves the dataset directory" not in result.stderr
    assert s3.all_names() == set()


# -- 8. a reader that goes away, and --quiet ---------------------------------------------------------------------


def many_files(root: Path, count: int = 1500) -> Path:
    """A dataset whose dry-run plan is far longer than a pipe holds (64 KiB)."""
    root.mkdir()
    names = [f"table-{index:04d}-{'x' * 60}.tsv" for index in range(count)]
    for name in names:
        (root / name).write_text(name)
    (root / "catalog.yaml").write_text("assets:\n" + "".join(f"  t{i}: {n}\n" for i, n in enumerate(names)))
    return root


def piped(command: list[str | Path], env: dict[str, str], reader: str) -> tuple[str, str, int]:
    """`COMMAND | READER` in a shell: what the reader printed, the command's stderr, and its exit status."""
    errors = Path(env["HOME"]) / "stderr.txt"
    shell = f'{" ".join(map(str, command))} 2>"$ERR" | {reader}; echo "status=${{PIPESTATUS[0]}}"'
    completed = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, env=env | {"ERR": str(errors)},
                               cwd=REPO, timeout=120)
    *printed, status = completed.stdout.splitlines()
    return "\n".join(printed), errors.read_text(), int(status.split("=")[1])


def test_upload_aws_dry_run_into_head_ends_quietly(tmp_path, s3, cli_env):
    data = many_files(tmp_path / "data")  # a plan longer than a pipe holds: the reader is gone mid-plan
    first, errors, status = piped([sys.executable, ENTRYPOINT, "upload_aws", "--in-dir", data, "--s3-dir", s3.uri,
                                   "--dry-run"], cli_env, "head -1")
    assert first.startswith("upload ") and "\n" not in first
    assert errors == "" and status == 141


def test_upload_zenodo_dry_run_into_a_reader_that_is_gone_ends_quietly(tmp_path, zenodo, zenodo_env, token_file):
    from tests.zenodo_helpers import METADATA

    data = many_files(tmp_path / "data", count=90)  # Zenodo's 100 files: a plan shorter than a pipe holds
    printed, errors, status = piped([sys.executable, ENTRYPOINT, "upload_zenodo", "--in-dir", data, "--zenodo-token",
                                     token_file, "--zenodo-url", zenodo.api_url, *(f"'{word}'" for word in METADATA),
                                     "--dry-run"], zenodo_env, "true")  # gone before the first line
    assert printed == "" and errors == "" and status == 141


def test_quiet_prints_only_errors(tmp_path, s3, cli_env):
    data = make_dataset(tmp_path / "data", small=2, big=0)
    code, output, report = upload(data, s3, cli_env, "--quiet")  # the viewer check fails: not public here

    assert code == 0, output
    assert output == ""
    assert report["viewer"]["fixes"], report["viewer"]  # the fixes are in the report
    assert_holds_exactly(data, s3)

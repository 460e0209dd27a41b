"""upload_aws end to end: entrypoint.py as a subprocess against a real S3 server, then the bucket is checked."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ENTRYPOINT, REPO, S3Prefix, S3Server, run_cli, two_sample_collection
from tests.pmtiles_files import pmtiles_bytes, write_random_pmtiles

pytestmark = pytest.mark.e2e

INTERMEDIATES = {"tmp/t18-f24.hex.tsv", "cartload.mk", "run_cartload2.log", "genes_all.pmtiles.done",
                 "transcripts_pixel_joined.tsv.gz"}


def catalog_files(dataset: Path) -> set[str]:
    """Every file name the example catalog references (read independently of the uploader's code)."""
    names = set()

    def walk(node: object, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k not in ("id", "name", "model_id", "decode_id", "default", "title", "description"):
                    walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif isinstance(node, str):
            names.add(node)

    walk(yaml.safe_load((dataset / "catalog.yaml").read_text())["assets"])
    return names


def upload(dataset: Path, s3: S3Prefix, env: dict[str, str], *extra: str | Path) -> tuple[int, str, dict]:
    report = dataset.parent / f"report-{time.monotonic_ns()}.json"
    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, "--report", report, *extra, env=env)
    document = json.loads(report.read_text()) if report.exists() else {}
    return result.code, result.output, document


def statuses(report: dict) -> dict[str, str]:
    return {entry["name"]: entry["status"] for entry in report["files"]}


def test_uploads_every_catalog_file_with_bytes_hash_and_type_and_nothing_else(dataset, s3, cli_env):
    code, output, report = upload(dataset, s3, cli_env)

    assert code == 0, output
    expected = catalog_files(dataset) | {"catalog.yaml"}
    assert s3.names() == expected
    assert not (INTERMEDIATES & s3.names())
    for name in expected:
        local = (dataset / name).read_bytes()
        assert s3.get(name) == local, name
        head = s3.head(name)
        assert head["Metadata"]["sha256"] == hashlib.sha256(local).hexdigest()
        assert "ContentEncoding" not in head or not head["ContentEncoding"]
    assert s3.head("genes_all.pmtiles")["ContentType"] == "application/vnd.pmtiles"
    assert s3.head("t18-f24-umap.tsv.gz")["ContentType"] == "application/gzip"
    assert s3.head("t18-f24-rgb.tsv")["ContentType"] == "text/tab-separated-values"
    assert s3.head("catalog.yaml")["ContentType"] == "application/yaml"
    assert s3.head("genes_bin_counts.json")["ContentType"] == "application/json"
    assert s3.head("t18-f24.umap.png")["ContentType"] == "image/png"
    assert report["ok"] is True and report["totals"]["uploaded"] == len(expected)
    entry = next(e for e in report["files"] if e["name"] == "genes_all.pmtiles")
    assert entry["checksum"] == "sha256:" + hashlib.sha256((dataset / "genes_all.pmtiles").read_bytes()).hexdigest()
    assert entry["destination"] == f"{s3.prefix}/genes_all.pmtiles"
    assert "catalog: " in output


def test_second_run_uploads_nothing(dataset, s3, cli_env):
    assert upload(dataset, s3, cli_env)[0] == 0
    before = {k: s3.head(k)["LastModified"] for k in s3.names()}

    code, output, report = upload(dataset, s3, cli_env)

    assert code == 0, output
    assert set(statuses(report).values()) == {"skipped"}
    assert {k: s3.head(k)["LastModified"] for k in s3.names()} == before


def test_second_run_without_hash_cache_still_skips(dataset, s3, cli_env):
    assert upload(dataset, s3, cli_env)[0] == 0
    cli_env["CARTLOAD_UPLOADER_CACHE_DIR"] = str(dataset.parent / "fresh-cache")

    code, _, report = upload(dataset, s3, cli_env)

    assert code == 0 and set(statuses(report).values()) == {"skipped"}


def test_same_size_change_with_restored_mtime_is_uploaded_again(dataset, s3, cli_env):
    assert upload(dataset, s3, cli_env)[0] == 0
    target = dataset / "t18-f24-model.tsv"
    old = target.stat()
    data = bytearray(target.read_bytes())
    data[100] = ord("X") if data[100] != ord("X") else ord("Y")
    target.write_bytes(bytes(data))
    os.utime(target, ns=(old.st_atime_ns, old.st_mtime_ns))  # what `aws s3 sync` is fooled by

    code, output, report = upload(dataset, s3, cli_env)

    assert code == 0, output
    changed = {name for name, status in statuses(report).items() if status == "uploaded"}
    assert changed == {"t18-f24-model.tsv", "catalog.yaml"}  # the catalog naming it is published again, last
    assert s3.get("t18-f24-model.tsv") == bytes(data)


def test_restart_uploads_everything_again(dataset, s3, cli_env):
    assert upload(dataset, s3, cli_env)[0] == 0
    code, _, report = upload(dataset, s3, cli_env, "--restart")
    assert code == 0
    sent = [entry for entry in report["files"] if entry["action"] != "delete"]
    assert len(sent) == 21 and {entry["status"] for entry in sent} == {"uploaded"}
    withdrawal = [entry for entry in report["files"] if entry["action"] == "delete"]
    assert [(entry["destination"], entry["status"]) for entry in withdrawal] == [(f"{s3.prefix}/catalog.yaml",
                                                                                  "deleted")]


def test_dry_run_lists_the_plan_and_writes_nothing(dataset, s3, cli_env):
    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, "--dry-run", env=cli_env)

    assert result.code == 0, result.output
    assert s3.names() == set()
    assert s3.multipart_uploads() == []
    assert f"upload           24,817  {s3.prefix}/genes_all.pmtiles  (new)" in result.stdout
    assert "catalog.yaml" in result.stdout.splitlines()[-2]  # the catalog comes last
    assert "transcripts_pixel_joined" not in result.stdout


def test_dry_run_after_upload_reports_skips_and_changes(dataset, s3, cli_env):
    assert upload(dataset, s3, cli_env)[0] == 0
    (dataset / "genes_bin_counts.json").write_text('{"bin1": 1}')

    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, "--dry-run", env=cli_env)

    assert result.code == 0
    lines = {line.split()[2]: line.split()[0] for line in result.stdout.splitlines()[:-1]}
    assert lines[f"{s3.prefix}/genes_bin_counts.json"] == "replace"
    assert lines[f"{s3.prefix}/genes_all.pmtiles"] == "skip"


def test_upload_groups(dataset, s3, cli_env):
    code, output, report = upload(dataset, s3, cli_env, "--upload-basemap-only")
    assert code == 0, output  # the group is uploaded; the catalog waits for the files of the other groups
    assert s3.names() == {"histology.pmtiles"}
    assert statuses(report)["catalog.yaml"] == "waiting"
    assert "waiting:" in output and "the full upload (without --upload-*-only)" in output
    assert markers(dataset) == {"histology.pmtiles.aws.done"}  # each group marks only itself, as in cartloader

    code, _, _ = upload(dataset, s3, cli_env, "--upload-optional-only")
    assert code == 0
    assert s3.names() == {"histology.pmtiles", "t18-f24-umap.tsv.gz", "t18-f24.umap.png",
                         "t18-f24.umap.single.prob.png", "t18-f24-umap.pmtiles", "t18-f24-alias.tsv"}

    code, _, _ = upload(dataset, s3, cli_env, "--upload-basics-only")
    assert code == 0
    assert s3.names() == catalog_files(dataset) | {"catalog.yaml"}  # the last group in publishes the catalog
    assert s3.get("catalog.yaml") == (dataset / "catalog.yaml").read_bytes()
    assert len(markers(dataset)) == 7 and "cartload.aws.done" in markers(dataset)


def test_a_basemap_added_later_appears_in_the_published_catalog(dataset, s3, cli_env):
    catalog = dataset / "catalog.yaml"
    full = catalog.read_text()
    catalog.write_text(full.replace("    histology: histology.pmtiles\n", ""))
    assert "histology" not in catalog.read_text()
    assert upload(dataset, s3, cli_env)[0] == 0
    assert "histology.pmtiles" not in s3.names()

    catalog.write_text(full)  # the pipeline adds a histology layer afterwards
    code, output, report = upload(dataset, s3, cli_env, "--upload-basemap-only")

    assert code == 0, output
    sent = {entry["name"] for entry in report["files"] if entry["status"] == "uploaded"}
    assert sent == {"histology.pmtiles", "catalog.yaml"}  # the other groups are checked by listing, not re-sent
    assert s3.get("catalog.yaml") == catalog.read_bytes()  # the viewer now sees the new layer


def test_endpoint_option_and_custom_catalog_path(dataset, s3, cli_env, s3_server):
    env = {k: v for k, v in cli_env.items() if k != "AWS_ENDPOINT_URL_S3"}
    custom = dataset.parent / "elsewhere.yaml"
    custom.write_text("id: x\nassets:\n  sge:\n    all: genes_all.pmtiles\n")

    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, "--catalog-yaml", custom,
                     "--endpoint-url", s3_server.endpoint_url, "--aws", "/usr/bin/aws", env=env)

    assert result.code == 0, result.output
    assert s3.names() == {"genes_all.pmtiles", "catalog.yaml"}
    assert s3.get("catalog.yaml") == custom.read_bytes()
    assert "no AWS CLI is used" in result.stderr


def test_collection_mode(tmp_path, dataset, s3, cli_env):
    parent = two_sample_collection(tmp_path, dataset)
    second = parent / "Sample_B"  # its catalog has no id
    listing = tmp_path / "samples.tsv"
    listing.write_text("Sample_A\textra column\nSample_B\n\n")

    result = run_cli("upload_aws", "--in-dir", parent, "--s3-dir", s3.uri, "--in-list", listing, env=cli_env)

    assert result.code == 0, result.output
    keys = s3.names()
    assert {k.split("/")[0] for k in keys} == {"humanlung-demo", "sample-b"}  # catalog id; normalised sample id
    assert "humanlung-demo/catalog.yaml" in keys and "humanlung-demo/genes_all.pmtiles" in keys
    assert s3.get("sample-b/genes_all.pmtiles") == pmtiles_bytes(b"second")
    assert s3.get("sample-b/catalog.yaml") == (second / "catalog.yaml").read_bytes()


def test_large_file_goes_multipart_and_verifies(tmp_path, s3, cli_env):
    data_dir = tmp_path / "big"
    data_dir.mkdir()
    payload = pmtiles_bytes(os.urandom(21 * 1024 * 1024 + 17))  # three parts, the last one short
    (data_dir / "genes_all.pmtiles").write_bytes(payload)
    (data_dir / "catalog.yaml").write_text("assets:\n  sge:\n    all: genes_all.pmtiles\n")

    result = run_cli("upload_aws", "--in-dir", data_dir, "--s3-dir", s3.uri, env=cli_env)

    assert result.code == 0, result.output
    head = s3.head("genes_all.pmtiles")
    # Hashed while its parts were sent: its 8 MiB part-MD5 ETag (aws cli's) identifies it, no SHA-256 metadata.
    parts = [hashlib.md5(payload[start:start + 8 * 1024 * 1024]).digest() for start in range(0, len(payload), 8 << 20)]
    assert head["ETag"].strip('"') == f"{hashlib.md5(b''.join(parts)).hexdigest()}-3"
    assert "sha256" not in head["Metadata"]
    assert s3.get("genes_all.pmtiles") == payload
    assert s3.multipart_uploads() == []


def test_bytes_that_differ_from_the_hashed_ones_are_rejected_and_catalog_withheld(tmp_path, s3, cli_env):
    """Every body carries a Content-MD5 from the digests, so the server refuses bytes that do not match them."""
    data_dir = tmp_path / "poisoned"
    data_dir.mkdir()
    (data_dir / "genes_all.pmtiles").write_bytes(pmtiles_bytes(os.urandom(3 * 1024 * 1024)))  # one PUT
    (data_dir / "small.tsv").write_text("a\tb\n")
    (data_dir / "catalog.yaml").write_text("assets:\n  sge:\n    all: genes_all.pmtiles\n  t: small.tsv\n")
    poison_hash_cache(cli_env, data_dir / "genes_all.pmtiles")

    result = run_cli("upload_aws", "--in-dir", data_dir, "--s3-dir", s3.uri, env=cli_env)

    assert result.code == 1, result.output
    if s3.server.kind == "moto":
        # moto's server does not check a part's Content-MD5 (AWS, MinIO and SeaweedFS answer BadDigest):
        # the parts are stored, and the check after upload (the ETag against the digests) refuses them.
        assert "genes_all.pmtiles: verification failed: the remote's multipart-etag" in result.stderr
        assert s3.names() == {"small.tsv", "genes_all.pmtiles"}  # no catalog names the unverified object
        assert s3.multipart_uploads() == []
    else:
        assert "genes_all.pmtiles" in result.stderr and "BadDigest" in result.stderr
        assert s3.names() == {"small.tsv"}  # the other file went on; the catalog is withheld
    resume = next(line for line in result.stderr.splitlines() if "resume with:" in line)
    assert resume.endswith(f"upload_aws --in-dir {data_dir} --s3-dir {s3.uri}")


def poison_hash_cache(env: dict[str, str], path: Path) -> None:
    """Store wrong part digests for `path` in the uploader's own cache, as a disk or RAM fault would."""
    code = (
        "import sys; from pathlib import Path; from uploader.local.hash_cache import HashCache;"
        "from uploader.local.digests import part_md5_name;"
        "from uploader.local.plan import resolve_local_file; from uploader.local.catalog import Group;"
        "p = Path(sys.argv[1]); f = resolve_local_file(p.parent, p.name, Group.BASICS, 'x', []);"
        "c = HashCache(Path(sys.argv[2])); n = part_md5_name(8 * 1024 * 1024);"
        "c.store(f, {'sha256': '0' * 64, n: ','.join(['0' * 32] * 2)}); c.close()"
    )
    subprocess.run([sys.executable, "-c", code, str(path), env["CARTLOAD_UPLOADER_CACHE_DIR"]], check=True,
                   cwd=REPO)


def test_works_without_a_writable_cache_directory(dataset, s3, cli_env, tmp_path):
    read_only = tmp_path / "read-only-home"
    read_only.mkdir()
    read_only.chmod(0o500)
    env = {k: v for k, v in cli_env.items() if k != "CARTLOAD_UPLOADER_CACHE_DIR"} | {"HOME": str(read_only)}
    if os.geteuid() == 0:  # root writes anywhere: point the cache at a file instead of a directory
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("")
        env["CARTLOAD_UPLOADER_CACHE_DIR"] = str(blocker / "cache")

    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, env=env)

    assert result.code == 0, result.output
    assert "hash cache off" in result.stderr
    assert "catalog.yaml" in s3.names()


def test_a_damaged_hash_cache_is_moved_aside_once_and_the_next_run_is_served_from_the_new_one(dataset, s3, cli_env):
    cache = Path(cli_env["CARTLOAD_UPLOADER_CACHE_DIR"])
    cache.mkdir(parents=True)
    (cache / "hashes.sqlite3").write_bytes(b"\x00garbage" * 500)

    first = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, env=cli_env)

    assert first.code == 0, first.output
    assert first.stderr.count("was damaged") == 1 and "started a new one" in first.stderr
    assert "cannot write" not in first.stderr and "hash cache off" not in first.stderr
    assert (cache / "hashes.sqlite3.damaged").exists()
    second = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, "--dry-run", env=cli_env)
    assert second.code == 0 and "hash cache" not in second.stderr


@pytest.mark.lock_faults
def test_a_cache_on_a_file_system_without_working_locks_is_off_with_one_notice(dataset, s3, cli_env,
                                                                              no_locks_library):
    env = cli_env | {"LD_PRELOAD": str(no_locks_library), "NO_LOCKS_UNDER": cli_env["CARTLOAD_UPLOADER_CACHE_DIR"]}
    started = time.monotonic()

    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, env=env)

    assert result.code == 0, result.output
    assert time.monotonic() - started < 25  # not the 30 s SQLite waits on a lock it takes for busy
    assert result.stderr.count("hash cache") == 1 and "file locks do not work" in result.stderr
    assert s3.get("genes_all.pmtiles") == (dataset / "genes_all.pmtiles").read_bytes()
    assert "catalog.yaml" in s3.names()


def test_log_output_is_plain_lines_when_not_a_terminal(dataset, s3, cli_env):
    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, env=cli_env)

    assert result.code == 0
    assert "\r" not in result.stderr
    assert f"[21/21] uploaded {s3.prefix}/catalog.yaml" in result.stderr  # the catalog is the last file
    lines = result.stderr.splitlines()
    summary = next(index for index, line in enumerate(lines) if line.startswith("21 uploaded"))
    assert summary > lines.index(f"[21/21] uploaded {s3.prefix}/catalog.yaml (1.0 KiB)")  # then the viewer's lines


def test_progress_bar_on_a_terminal(dataset, s3, cli_env):
    import fcntl
    import pty
    import struct
    import termios

    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a real terminal's size
    process = subprocess.Popen([sys.executable, str(ENTRYPOINT), "upload_aws", "--in-dir", str(dataset),
                                "--s3-dir", s3.uri], env=cli_env | {"TERM": "xterm"}, stdout=subprocess.PIPE,
                               stderr=terminal, cwd=REPO)
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        seen += chunk
    assert process.wait(timeout=120) == 0
    text = seen.decode(errors="replace")
    assert "\r" in text and "21 file(s)" in text and "B/s" in text  # tqdm's bar: bytes, rate
    assert "[1/21]" not in text  # no per-file log lines on a terminal
    assert "21 uploaded" in text


# -- interruption ---------------------------------------------------------------------------------


@pytest.fixture
def big_dataset(tmp_path: Path) -> Path:
    data_dir = tmp_path / "slow"
    data_dir.mkdir()
    write_random_pmtiles(data_dir / "genes_all.pmtiles", 48 * 8 * 1024 * 1024)  # 384 MiB: seconds to send
    (data_dir / "catalog.yaml").write_text("assets:\n  sge:\n    all: genes_all.pmtiles\n")
    return data_dir


def start_and_signal_mid_upload(data_dir: Path, s3: S3Prefix, env: dict[str, str],
                                sig: signal.Signals) -> tuple[int, str]:
    env = env | {"CARTLOAD_UPLOADER_LOG_INTERVAL": "0.1"}
    process = subprocess.Popen(
        [sys.executable, str(ENTRYPOINT), "upload_aws", "--in-dir", str(data_dir), "--s3-dir", s3.uri,
         "--n-jobs", "2"], env=env, stderr=subprocess.PIPE, text=True, cwd=REPO)
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if line.startswith("progress:") and not line.startswith("progress: 0 B"):
            assert s3.multipart_uploads(), "a multipart upload should be in flight"
            process.send_signal(sig)
            break
    lines.extend(process.stderr)
    return process.wait(timeout=120), "".join(lines)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_mid_upload_keeps_the_parts_and_the_next_run_resumes_them(big_dataset, s3, cli_env, sig):
    started = time.monotonic()
    code, output = start_and_signal_mid_upload(big_dataset, s3, cli_env, sig)

    assert code == 130, output
    assert time.monotonic() - started < 60
    assert "resume with:" in output and "Traceback" not in output
    assert "kept: the unfinished upload of" in output and "genes_all.pmtiles" in output
    assert s3.names() == set()
    assert len(s3.multipart_uploads()) == 1  # kept for the next run, which resumes it
    assert len(s3.leases()) == 1  # released: the next run need not wait

    report = big_dataset.parent / "resumed.json"
    result = run_cli("upload_aws", "--in-dir", big_dataset, "--s3-dir", s3.uri, "--report", report, env=cli_env)
    assert result.code == 0, result.output
    assert s3.names() == {"genes_all.pmtiles", "catalog.yaml"}
    assert s3.get("genes_all.pmtiles") == (big_dataset / "genes_all.pmtiles").read_bytes()
    assert json.loads(report.read_text())["totals"]["bytes_resumed"] > 0
    assert s3.multipart_uploads() == [] and s3.leases() == set()


# -- bad input: a clear line, a non-zero exit code, nothing uploaded ----------------------------


def assert_refused(result, s3: S3Prefix, code: int, *phrases: str) -> None:
    assert result.code == code, result.output
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    assert s3.names() == set()
    assert s3.multipart_uploads() == []


@pytest.mark.parametrize(
    ("edit", "phrases"),
    [
        (lambda d: (d / "genes_bin2.pmtiles").unlink(), ["genes_bin2.pmtiles", "is missing", "assets.sge.bins[1]"]),
        (lambda d: replace_in_catalog(d, "genes_bin_counts.json", "/etc/passwd"), ["absolute path"]),
        (lambda d: replace_in_catalog(d, "genes_bin_counts.json", "../outside.json"), ["leaves the dataset"]),
        (lambda d: symlink(d, "t18-f24-info.tsv", "/etc/hostname"), ["outside"]),
        (lambda d: symlink(d, "t18-f24-info.tsv", d / "no-such-target"), ["broken symlink"]),
        (lambda d: directory(d, "t18-f24-rgb.tsv"), ["not a regular file"]),
        (lambda d: (d / "catalog.yaml").write_text("assets: [unclosed\n"), ["not valid YAML", "line"]),
        (lambda d: (d / "catalog.yaml").write_text("just a string\n"), ["YAML mapping"]),
        (lambda d: (d / "catalog.yaml").write_bytes(b"id: \xff\xfe\nassets: {}\n"), ["not valid UTF-8"]),
        (lambda d: (d / "catalog.yaml").unlink(), ["catalog not found"]),
    ],
    ids=["missing", "absolute", "dotdot", "symlink-escape", "broken-symlink", "directory", "bad-yaml",
         "not-mapping", "not-utf8", "no-catalog"],
)
def test_bad_dataset_is_refused_before_any_upload(dataset, s3, cli_env, edit, phrases):
    edit(dataset)
    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, env=cli_env)
    assert_refused(result, s3, 2, *phrases)
    assert len(result.stderr.strip().splitlines()) <= 3


def test_every_problem_is_listed_at_once(dataset, s3, cli_env):
    (dataset / "genes_bin1.pmtiles").unlink()
    (dataset / "t18-f24.umap.png").unlink()
    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, env=cli_env)
    assert_refused(result, s3, 2, "genes_bin1.pmtiles", "t18-f24.umap.png")


def replace_in_catalog(dataset: Path, old: str, new: str) -> None:
    path = dataset / "catalog.yaml"
    path.write_text(path.read_text().replace(old, new))


def symlink(dataset: Path, name: str, target: str | Path) -> None:
    (dataset / name).unlink()
    (dataset / name).symlink_to(target)


def directory(dataset: Path, name: str) -> None:
    (dataset / name).unlink()
    (dataset / name).mkdir()


@pytest.mark.parametrize(
    ("args", "phrases"),
    [
        (["--s3-dir", "https://bucket/x"], ["--s3-dir", "s3://BUCKET"]),
        (["--s3-dir", "s3://a/x"], ["not a valid bucket name"]),
        (["--n-jobs", "0"], ["--n-jobs"]),
        (["--n-jobs", "many"], ["--n-jobs"]),
        (["--in-list", "x.tsv", "--catalog-yaml", "c.yaml"], ["--catalog-yaml cannot be used with --in-list"]),
        (["--upload-basics-only", "--upload-basemap-only"], ["exclude each other"]),
        (["--no-such-option"], ["unknown option --no-such-option", "--help"]),
        (["--endpoint-url", "localhost:9000"], ["--endpoint-url"]),
    ],
)
def test_bad_options_exit_2(dataset, s3, cli_env, args, phrases):
    base = ["upload_aws", "--in-dir", dataset]
    if "--s3-dir" not in args:
        base += ["--s3-dir", s3.uri]
    result = run_cli(*base, *args, env=cli_env)
    assert_refused(result, s3, 2, *phrases)


def test_missing_in_dir_is_a_usage_error(tmp_path, s3, cli_env):
    result = run_cli("upload_aws", "--in-dir", tmp_path / "nope", "--s3-dir", s3.uri, env=cli_env)
    assert_refused(result, s3, 2, "--in-dir", "not found")


def test_bucket_that_does_not_exist(dataset, s3, cli_env):
    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", "s3://no-such-bucket-here/x", env=cli_env)
    assert_refused(result, s3, 2, "no-such-bucket-here", "does not exist")


def test_missing_credentials(dataset, s3, cli_env):
    env = {k: v for k, v in cli_env.items() if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")}
    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, env=env)
    assert_refused(result, s3, 3, "no AWS credentials")


@pytest.mark.identities
def test_wrong_secret(dataset, s3, cli_env):
    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri,
                     env=cli_env | {"AWS_SECRET_ACCESS_KEY": "wrong-secret"})
    assert_refused(result, s3, 3)
    assert "wrong-secret" not in result.output


def test_unknown_profile(dataset, s3, cli_env):
    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, "--profile", "nobody", env=cli_env)
    assert_refused(result, s3, 2, "--profile nobody")


def test_malformed_aws_config_file(dataset, s3, cli_env):
    broken = Path(cli_env["HOME"]) / "broken-config"
    broken.write_text("[default\nregion = x\n")
    env = cli_env | {"AWS_CONFIG_FILE": str(broken)}
    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, env=env)
    assert_refused(result, s3, 2, "AWS configuration problem", "broken-config")


def test_profile_from_aws_config_files(dataset, s3, cli_env, s3_server):
    home = Path(cli_env["HOME"])
    (home / "credentials").write_text(
        f"[lab]\naws_access_key_id = {s3_server.admin.access_key}\n"
        f"aws_secret_access_key = {s3_server.admin.secret_key}\n")
    env = {k: v for k, v in cli_env.items() if not k.startswith(("AWS_ACCESS", "AWS_SECRET"))}
    env |= {"AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"), "AWS_PROFILE": "lab"}

    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, env=env)

    assert result.code == 0, result.output
    assert "catalog.yaml" in s3.names()


@pytest.mark.identities
def test_read_only_credentials_are_refused_up_front(dataset, s3, cli_env, s3_server: S3Server):
    if s3_server.reader is None:
        pytest.fail("this S3 server has no read-only identity: set S3_READER_ACCESS_KEY_ID/S3_READER_SECRET_ACCESS_KEY")
    env = cli_env | {"AWS_ACCESS_KEY_ID": s3_server.reader.access_key,
                     "AWS_SECRET_ACCESS_KEY": s3_server.reader.secret_key}
    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, env=env)
    assert_refused(result, s3, 3, "access denied")


def test_unreachable_endpoint(dataset, s3, cli_env):
    env = cli_env | {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}
    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, env=env)
    assert_refused(result, s3, 4, "cannot reach")


def test_catalog_withheld_when_a_file_changed_in_the_bucket_during_the_run(dataset, s3, cli_env, monkeypatch):
    """Another writer replaces an uploaded file before the catalog goes up: the final listing catches it."""
    from uploader.engine.operations import Status
    from uploader.engine.progress import progress_factory
    from uploader.engine.runner import run
    from uploader.engine.settings import RunSettings
    from uploader.local.hash_cache import HashCache
    from uploader.local.plan import UploadPlan, plan_from_catalog
    from uploader.s3.backend import S3Backend
    from uploader.s3.destination import S3Destination
    from uploader.s3.settings import S3Settings

    for name, value in cli_env.items():
        monkeypatch.setenv(name, value)
    destination = S3Destination.parse(s3.uri)
    backend = S3Backend(S3Settings(s3_dir=destination))
    plan = UploadPlan((plan_from_catalog(dataset, dataset / "catalog.yaml"),))
    meddled = f"{s3.prefix}/genes_bin_counts.json"
    real_remote_files = backend.remote_files
    listings = []

    def racing_writer(dataset):  # type: ignore[no-untyped-def]
        listings.append(dataset)
        if len(listings) == 2:  # the listing taken just before the catalog is published
            s3.client.put_object(Bucket=s3.bucket, Key=meddled, Body=b'{"someone": "else"}')
        return real_remote_files(dataset)

    monkeypatch.setattr(backend, "remote_files", racing_writer)
    result = run(plan, backend, RunSettings(n_jobs=4), HashCache(None), progress_factory(quiet=True, no_progress=True))
    catalog = next(op for op in result.ops if op.is_catalog)
    assert catalog.status is Status.FAILED and "not in place as uploaded" in catalog.error
    assert "genes_bin_counts.json" in catalog.error
    assert "catalog.yaml" not in s3.names()
    assert not result.ok


# -- a live dataset is never a mix of versions ----------------------------------------------------


def test_a_failed_update_withdraws_the_catalog_instead_of_leaving_it_over_mixed_files(dataset, s3, cli_env):
    assert upload(dataset, s3, cli_env)[0] == 0
    old_catalog = s3.get("catalog.yaml")
    (dataset / "t18-f24-rgb.tsv").write_text("new colours\n")
    (dataset / "t18-f24-info.tsv").write_text("new info\n")
    poison_hash_cache(cli_env, dataset / "t18-f24-info.tsv")  # its bytes will never match: BadDigest

    code, output, report = upload(dataset, s3, cli_env)

    assert code == 6, output
    assert "catalog.yaml" not in s3.names()  # never catalog v1 over one new and one old file
    assert s3.get("t18-f24-rgb.tsv") == b"new colours\n"
    assert report["offline"] == [f"{s3.prefix}/catalog.yaml"] and report["ok"] is False
    assert "offline:" in output and "cannot be opened until a re-run completes" in output

    cache = Path(cli_env["CARTLOAD_UPLOADER_CACHE_DIR"])
    for item in cache.iterdir():
        item.unlink()  # the disk fault is gone
    code, output, report = upload(dataset, s3, cli_env)
    assert code == 0, output
    assert s3.get("catalog.yaml") == old_catalog == (dataset / "catalog.yaml").read_bytes()
    assert s3.get("t18-f24-info.tsv") == b"new info\n"


def test_adding_a_file_keeps_the_dataset_online_throughout(dataset, s3, cli_env):
    assert upload(dataset, s3, cli_env)[0] == 0
    (dataset / "extra.tsv").write_text("added later\n")
    catalog = dataset / "catalog.yaml"
    catalog.write_text(catalog.read_text() + "extra: extra.tsv\n")

    code, output, report = upload(dataset, s3, cli_env, "--dry-run")
    assert code == 0 and "0 to delete" in output and not any(line.startswith("delete") for line in output.splitlines())

    code, output, report = upload(dataset, s3, cli_env)
    assert code == 0, output
    assert not any(entry["action"] == "delete" for entry in report["files"])
    assert s3.get("catalog.yaml") == catalog.read_bytes()


def test_the_boto3_engine_uploads_and_verifies_the_same(tmp_path, dataset, s3, cli_env):
    """Where awscrt cannot go (an HTTP proxy), the same requests go through boto3: same objects, same checks."""
    big = dataset / "genes_all.pmtiles"
    big.write_bytes(pmtiles_bytes(os.urandom(17 * 1024 * 1024)))  # three parts
    env = cli_env | {"CARTLOAD_UPLOADER_ENGINE": "boto3"}
    code, output, _ = upload(dataset, s3, env)
    assert code == 0, output
    assert s3.get("genes_all.pmtiles") == big.read_bytes()
    assert s3.head("genes_all.pmtiles")["ETag"].strip('"').endswith("-3")
    assert s3.names() == catalog_files(dataset) | {"catalog.yaml"}
    (dataset / "t18-f24-rgb.tsv").write_text("changed\n")
    poison_hash_cache(env, dataset / "t18-f24-rgb.tsv")  # the bytes sent will not match the Content-MD5
    code, output, _ = upload(dataset, s3, env)
    assert code == 6, output  # the file was refused; the catalog was withdrawn meanwhile
    # moto's server does not check Content-MD5; our own check after the upload refuses what it stored.
    assert ("verification failed" if s3.server.kind == "moto" else "BadDigest") in output


# -- cartloader's marker files ----------------------------------------------------------------------

OPTIONAL = {"t18-f24-umap.tsv.gz", "t18-f24.umap.png", "t18-f24.umap.single.prob.png", "t18-f24-umap.pmtiles",
            "t18-f24-alias.tsv"}


def markers(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir() if path.name.endswith(".aws.done")}


def test_markers_are_written_after_success_where_cartloader_writes_them(dataset, s3, cli_env):
    code, output, _ = upload(dataset, s3, cli_env)

    assert code == 0, output
    assert markers(dataset) == {"cartload.aws.done", "histology.pmtiles.aws.done"} | {
        f"{name}.aws.done" for name in OPTIONAL}
    assert all((dataset / name).stat().st_size == 0 for name in markers(dataset))
    assert s3.names() == catalog_files(dataset) | {"catalog.yaml"}  # never uploaded themselves


def test_no_markers_for_a_dry_run_a_failure_or_with_no_markers(dataset, s3, cli_env, s3_server):
    assert run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, "--dry-run", env=cli_env).code == 0
    assert markers(dataset) == set()

    reader = s3_server.reader
    if reader is not None:  # a read-only identity: refused before anything is sent
        env = cli_env | {"AWS_ACCESS_KEY_ID": reader.access_key, "AWS_SECRET_ACCESS_KEY": reader.secret_key}
        assert run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, env=env).code == 3
        assert markers(dataset) == set()

    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, "--no-markers", env=cli_env)
    assert result.code == 0, result.output
    assert markers(dataset) == set()
    assert s3.names() == catalog_files(dataset) | {"catalog.yaml"}


def test_a_read_only_in_dir_uploads_with_one_notice_and_no_markers(dataset, s3, cli_env):
    # A read-only bind mount, as `docker run -v DIR:/data:ro` or Apptainer give (root ignores chmod).
    read_only = ['mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"', "sh", str(dataset)]
    result = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", *read_only, sys.executable,
                             str(ENTRYPOINT), "upload_aws", "--in-dir", str(dataset), "--s3-dir", s3.uri],
                            env=cli_env, capture_output=True, text=True, timeout=300, cwd=REPO)

    assert result.returncode == 0, result.stderr
    assert s3.names() == catalog_files(dataset) | {"catalog.yaml"}
    assert markers(dataset) == set()
    notices = [line for line in result.stderr.splitlines() if "marker" in line]
    assert len(notices) == 1 and "Read-only file system" in notices[0], result.stderr
    assert "mount --in-dir writable" in notices[0] and "Traceback" not in result.stderr

"""--shard end to end: several upload_aws processes at once on one real S3 server, each sending its share.

What is asserted is what the server saw, from its own metadata log (SeaweedFS): every object written
exactly once, each catalog written only after every file of its dataset, the bytes exactly the local
files', and a worker killed mid-way re-run alone completing the set.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pytest

from tests.cartloader_collection import make_collection
from tests.conftest import ENTRYPOINT, REPO, S3Prefix, run_cli
from tests.pmtiles_files import pmtiles_bytes, write_random_pmtiles
from tests.proxy import Proxy

pytestmark = pytest.mark.e2e

WORKERS = 4


@pytest.fixture
def large_dataset(tmp_path: Path) -> Path:
    """One dataset of 40 files, ~30 MiB, two of them sent in parts."""
    directory = tmp_path / "large"
    directory.mkdir()
    write_random_pmtiles(directory / "genes_all.pmtiles", 17 * 1024 * 1024)
    write_random_pmtiles(directory / "genes_bin1.pmtiles", 9 * 1024 * 1024)
    (directory / "sge-mono-dark.pmtiles").write_bytes(pmtiles_bytes(os.urandom(900_000)))
    tables = [f"table-{index:02d}.tsv" for index in range(37)]
    for index, name in enumerate(tables):
        (directory / name).write_bytes(f"row {index}\t".encode() * (200 * (index % 9 + 1) ** 2))
    (directory / "catalog.yaml").write_text(
        "id: large\nassets:\n  sge:\n    all: genes_all.pmtiles\n    bins: [genes_bin1.pmtiles]\n"
        "  overview: sge-mono-dark.pmtiles\n  tables:\n" + "".join(f"    - {name}\n" for name in tables))
    (directory / "cartload.mk").write_text("# not named by the catalog: never uploaded\n")
    return directory


def dataset_objects(directory: Path) -> dict[str, bytes]:
    """What a complete upload of the dataset holds: every file but the Makefile and the marker files."""
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.name != "cartload.mk"
            and not p.name.endswith(".done")}


def command(in_dir: Path, s3: S3Prefix, *extra: str | Path) -> list[str]:
    return [sys.executable, str(ENTRYPOINT), "upload_aws", "--in-dir", str(in_dir), "--s3-dir", s3.uri,
            "--no-viewer-check", *map(str, extra)]


def start_workers(base: list[str], reports: Path, env: dict[str, str], indexes: Iterable[int]
                  ) -> dict[int, subprocess.Popen[str]]:
    """The workers, started side by side, each with its --shard and --report."""
    reports.mkdir(exist_ok=True)
    return {index: subprocess.Popen([*base, "--shard", f"{index}/{WORKERS}", "--report",
                                     str(reports / f"{index}.json")], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, cwd=REPO)
            for index in indexes}


def finish_workers(processes: dict[int, subprocess.Popen[str]], reports: Path) -> dict[int, tuple[int, str, dict]]:
    """Wait for every worker; (exit status, output, report) of each."""
    outcomes = {}
    for index, process in processes.items():
        output, _ = process.communicate(timeout=300)
        assert "Traceback" not in output, output
        outcomes[index] = (process.returncode, output, json.loads((reports / f"{index}.json").read_text()))
    return outcomes


def run_workers(base: list[str], reports: Path, env: dict[str, str], indexes: Iterable[int] = range(1, WORKERS + 1)
                ) -> dict[int, tuple[int, str, dict]]:
    return finish_workers(start_workers(base, reports, env, indexes), reports)


def uploaded_files(report: dict) -> list[str]:
    """The content files (not catalogs) a worker's report says it uploaded, by destination."""
    return [entry["destination"] for entry in report["files"] if entry["status"] == "uploaded" and not entry["catalog"]]


def assert_published_exactly_once(s3: S3Prefix, local: dict[str, bytes], catalogs: dict[str, set[str]]) -> None:
    """Every object there with the local bytes, written once; each catalog only after the files it names.

    `local`: key (relative to the prefix) -> bytes; `catalogs`: catalog key -> the keys it waits for.
    """
    assert s3.names() == set(local)
    for key, data in local.items():
        assert s3.get(key) == data, key
    # The runs' leases (written while a run owns multipart uploads, removed when it ends) are bookkeeping.
    writes = [w for w in s3.writes() if not w.key.startswith(".cartload-uploader/")]
    assert not [w for w in writes if w.kind == "delete"]
    counts = Counter(w.key for w in writes)
    content = set(local) - set(catalogs)
    assert {key: counts[key] for key in content} == dict.fromkeys(content, 1)  # no byte of a file sent twice
    assert all(w.kind == "create" for w in writes if w.key in content)
    for catalog, named in catalogs.items():
        first = next(w.ns for w in writes if w.key == catalog)
        # When each named object first appeared: a sample catalog that two workers finishing at the same moment
        # both publish is written again later, with the same bytes (checked above), and was in place meanwhile.
        in_place = max(next(w.ns for w in writes if w.key == key) for key in named)
        assert first > in_place, f"{catalog} was written before every file it names was in place"


def test_four_workers_publish_one_large_dataset_each_file_once_catalog_last(large_dataset, s3, cli_env, tmp_path):
    outcomes = run_workers(command(large_dataset, s3), tmp_path / "reports", cli_env)

    assert [code for code, _, _ in outcomes.values()] == [0] * WORKERS, [o for _, o, _ in outcomes.values()]
    local = dataset_objects(large_dataset)
    assert_published_exactly_once(s3, local, {"catalog.yaml": set(local) - {"catalog.yaml"}})
    reports = [report for _, _, report in outcomes.values()]
    sent = [name for report in reports for name in uploaded_files(report)]
    assert sorted(sent) == sorted(f"{s3.prefix}/{name}" for name in local if name != "catalog.yaml")  # each once
    for index, report in enumerate(reports, 1):
        share = report["shard"]
        assert share["shard"] == f"{index}/{WORKERS}" and share["plan_files"] == len(local) - 1
        assert share["files"] == len(uploaded_files(report)) and share["files"] > 0
        assert len({r["shard"]["plan_fingerprint"] for r in reports}) == 1
    statuses = Counter(next(e["status"] for e in r["files"] if e["catalog"]) for r in reports)
    assert statuses["uploaded"] >= 1 and set(statuses) <= {"uploaded", "waiting", "skipped"}
    assert s3.multipart_uploads() == []
    assert (large_dataset / "cartload.aws.done").exists()  # by a worker that found the catalog published


def test_four_workers_publish_a_collection_whole_samples_each_from_one_worker(tmp_path, s3, cli_env):
    collection = make_collection(tmp_path / "mydataset", tuple(f"s{n}" for n in range(1, 9)), tile_bytes=256 * 1024)

    outcomes = run_workers(command(collection.root, s3, "--in-list", collection.in_list), tmp_path / "reports",
                           cli_env)

    assert [code for code, _, _ in outcomes.values()] == [0] * WORKERS, [o for _, o, _ in outcomes.values()]
    local = {key: collection.local(key) for key in collection.objects()}
    catalogs = {f"{sample}/catalog.yaml": {f"{sample}/{name}" for name in names[:-1]}
                for sample, names in collection.samples.items()}
    catalogs["multi-catalog.yaml"] = set(local) - {"multi-catalog.yaml"}  # after every sample and shared file
    assert_published_exactly_once(s3, local, catalogs)
    assert [w.key for w in s3.writes()][-1] == "multi-catalog.yaml"
    reports = [report for _, _, report in outcomes.values()]
    for sample in collection.samples:  # 8 samples, 4 workers: each sample is sent by one worker
        senders = [r["shard"]["index"] for r in reports if any(f"/{sample}/" in n for n in uploaded_files(r))]
        assert len(senders) == 1, (sample, senders)
    assert sum(len(r["shard"]["datasets_whole"]) for r in reports) >= len(collection.samples)


def test_a_killed_worker_re_run_alone_completes_the_set(large_dataset, s3, cli_env, tmp_path):
    plans = {index: dry_run_share(large_dataset, s3, cli_env, index) for index in range(1, WORKERS + 1)}
    slow = max(plans, key=lambda index: len(plans[index]))  # the worker with the most files to send
    assert len(plans[slow]) >= 3
    reports = tmp_path / "reports"
    with Proxy(int(s3.server.endpoint_url.rsplit(":", 1)[1]), delay=0.3) as proxy:  # a slow link: time to kill
        slow_worker = subprocess.Popen(command(large_dataset, s3, "--n-jobs", "1", "--shard", f"{slow}/{WORKERS}"),
                                       env=cli_env | {"AWS_ENDPOINT_URL_S3": proxy.url}, stderr=subprocess.PIPE,
                                       text=True, cwd=REPO)
        others = start_workers(command(large_dataset, s3), reports, cli_env, [i for i in plans if i != slow])
        assert slow_worker.stderr is not None
        for line in slow_worker.stderr:
            if "] uploaded " in line:  # its first file is in place: kill it, as a node failure would
                slow_worker.send_signal(signal.SIGKILL)
                break
        slow_worker.wait(timeout=120)
        deadline = time.monotonic() + 10  # the proxy sees its connections close before it stops
        while len(proxy.behaviour.requests_seen) < proxy.behaviour.connections and time.monotonic() < deadline:
            time.sleep(0.05)
    outcomes = finish_workers(others, reports)
    assert slow_worker.returncode == -signal.SIGKILL
    assert [code for code, _, _ in outcomes.values()] == [0] * (WORKERS - 1)
    assert "catalog.yaml" not in s3.names()  # never published while a file it names is missing
    left = set(plans[slow]) - s3.names()
    assert left and left != set(plans[slow]), "killed after its first file, before its last"
    assert all(next(e["status"] for e in report["files"] if e["catalog"]) == "waiting"
               for _, _, report in outcomes.values())

    code, output, report = run_workers(command(large_dataset, s3), tmp_path / "again", cli_env, [slow])[slow]

    assert code == 0, output
    assert {name.split("/", 1)[1] for name in uploaded_files(report)} == left  # only what it had not sent
    local = dataset_objects(large_dataset)
    assert_published_exactly_once(s3, local, {"catalog.yaml": set(local) - {"catalog.yaml"}})
    assert s3.multipart_uploads() == []


def dry_run_share(in_dir: Path, s3: S3Prefix, env: dict[str, str], index: int, *extra: str) -> list[str]:
    """The files `--dry-run --shard index/4` would send (names relative to the prefix), in its order."""
    result = run_cli(*command(in_dir, s3, "--dry-run", "--shard", f"{index}/{WORKERS}", *extra)[2:], env=env)
    assert result.code == 0, result.output
    assert result.stdout.startswith(f"shard {index}/{WORKERS}: "), result.stdout
    return [line.split()[2].split("/", 1)[1] for line in result.stdout.splitlines()[1:-1]
            if line.startswith("upload") and not line.split()[2].endswith("catalog.yaml")]


def test_the_shares_are_stable_and_together_exactly_the_plan(tmp_path, s3, cli_env):
    collection = make_collection(tmp_path / "mydataset", tuple(f"s{n}" for n in range(1, 4)))
    shares = [dry_run_share(collection.root, s3, cli_env, index, "--in-list", str(collection.in_list))
              for index in range(1, WORKERS + 1)]
    again = [dry_run_share(collection.root, s3, cli_env, index, "--in-list", str(collection.in_list))
             for index in range(1, WORKERS + 1)]

    assert shares == again
    every = [name for share in shares for name in share]
    catalogs = {"multi-catalog.yaml", *(f"{sample}/catalog.yaml" for sample in collection.samples)}
    assert sorted(every) == sorted(collection.objects() - catalogs)  # each file in exactly one share
    assert all(shares)
    assert s3.names() == set()


@pytest.mark.parametrize(("shard", "environ", "shown"), [
    ("auto", {"SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "9",
              "SLURM_ARRAY_TASK_STEP": "3", "SLURM_ARRAY_TASK_COUNT": "4"}, "shard 3/4, Slurm array task 6 of 0-9:3"),
    ("auto/4", {"JOB_COMPLETION_INDEX": "0"}, "shard 1/4, Kubernetes completion index 0"),
])
def test_the_scheduler_numbers_the_worker(dataset, s3, cli_env, shard, environ, shown):
    result = run_cli(*command(dataset, s3, "--dry-run", "--shard", shard)[2:], env=cli_env | environ)

    assert result.code == 0, result.output
    assert result.stdout.startswith(f"{shown}: ")


@pytest.mark.parametrize(("args", "environ", "phrase"), [
    (["--shard", "5/4"], {}, "--shard 5/4: I must be from 1 to N (4)"),
    (["--shard", "auto"], {}, "--shard auto: SLURM_ARRAY_TASK_ID"),
    (["--shard", "auto"], {"JOB_COMPLETION_INDEX": "2"}, "give --shard auto/N"),
    (["--shard", "auto/4"], {"JOB_COMPLETION_INDEX": "7"}, "JOB_COMPLETION_INDEX=7 is not a completion index"),
])
def test_a_bad_shard_is_a_usage_error_and_nothing_is_sent(dataset, s3, cli_env, args, environ, phrase):
    result = run_cli(*command(dataset, s3, *args)[2:], env=cli_env | environ)

    assert result.code == 2, result.output
    assert phrase in result.stderr and len(result.stderr.splitlines()) == 2  # the error, then where help is
    assert s3.names() == set()


def test_upload_zenodo_has_no_shards(dataset, cli_env):
    result = run_cli("upload_zenodo", "--in-dir", dataset, "--shard", "1/2", env=cli_env)
    assert result.code == 2 and "--shard is an option of upload_aws, not of upload_zenodo" in result.stderr


def test_a_worker_re_run_after_all_finished_sends_nothing_and_writes_nothing(large_dataset, s3, cli_env, tmp_path):
    run_workers(command(large_dataset, s3), tmp_path / "first", cli_env)
    written = len(s3.writes())
    time.sleep(0.01)

    outcomes = run_workers(command(large_dataset, s3), tmp_path / "second", cli_env)

    assert [code for code, _, _ in outcomes.values()] == [0] * WORKERS
    assert len(s3.writes()) == written
    assert all({e["status"] for e in report["files"]} == {"skipped"} for _, _, report in outcomes.values())

"""--shard: reading the worker's share from the command line and the scheduler, the split, and several workers
publishing one plan through the runner (in-memory backend; tests/s3/test_upload_aws_shards.py runs real processes)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.cartloader_collection import make_collection
from tests.fake_backend import InMemoryBackend
from tests.pmtiles_files import pmtiles_bytes
from uploader.engine.operations import Action, Status
from uploader.engine.progress import Progress
from uploader.engine.runner import RunResult, run
from uploader.engine.settings import RunSettings
from uploader.errors import ExitStatus, UsageError
from uploader.local.hash_cache import HashCache
from uploader.local.plan import Dataset, LocalFile, Shard, UploadPlan, plan_collection, plan_from_catalog
from uploader.local.shards import PER_FILE_BYTES, SLACK, parse_shard, split, take_share

# -- which share: --shard I/N, auto (Slurm), auto/N (Kubernetes) -----------------------------------


def slurm(task: int, low: int, high: int, step: int, count: int) -> dict[str, str]:
    return {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_MIN": str(low), "SLURM_ARRAY_TASK_MAX": str(high),
            "SLURM_ARRAY_TASK_STEP": str(step), "SLURM_ARRAY_TASK_COUNT": str(count)}


@pytest.mark.parametrize(("spec", "environ", "expected"), [
    ("2/4", {}, (2, 4)),
    ("1/1", {}, (1, 1)),
    (" 4/4 ", slurm(0, 0, 3, 1, 4), (4, 4)),  # an explicit share wins over the scheduler's
    ("auto", slurm(2, 0, 3, 1, 4), (3, 4)),
    ("auto", slurm(5, 1, 7, 2, 4), (3, 4)),  # sbatch --array=1-7:2: tasks 1, 3, 5, 7
    ("auto", slurm(7, 7, 7, 1, 1), (1, 1)),  # one task re-submitted alone: the whole plan
    ("auto/4", slurm(3, 0, 3, 1, 4), (4, 4)),
    ("auto/4", {"JOB_COMPLETION_INDEX": "0"}, (1, 4)),
    ("auto/4", {"JOB_COMPLETION_INDEX": "3"}, (4, 4)),
])
def test_the_share_from_the_option_or_the_scheduler(spec, environ, expected):
    shard = parse_shard(spec, environ)
    assert (shard.index, shard.count) == expected


@pytest.mark.parametrize(("spec", "environ", "phrases"), [
    ("0/4", {}, ["I must be from 1 to N"]),
    ("5/4", {}, ["I must be from 1 to N (4)"]),
    ("1/0", {}, ["N must be from 1"]),
    ("2", {}, ["must be I/N", "auto/N"]),
    ("two/4", {}, ["must be I/N"]),
    ("-1/4", {}, ["must be I/N"]),
    ("auto", {}, ["SLURM_ARRAY_TASK_ID", "not set", "--shard I/N"]),
    ("auto", {"SLURM_ARRAY_TASK_ID": "3"}, ["SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT", "not set"]),
    ("auto", slurm(2, 0, 3, 1, 5), ["not one range", "COUNT=5"]),  # inconsistent count
    ("auto", slurm(9, 1, 9, 1, 3), ["not one range"]),  # --array=1,2,9: no position to take
    ("auto", slurm(4, 1, 7, 2, 4), ["not one range"]),  # not on the array's step
    ("auto", slurm(8, 0, 3, 1, 4), ["not one range"]),  # outside the array
    ("auto", slurm(2, 0, 3, 1, 4) | {"SLURM_ARRAY_TASK_STEP": "x"}, ["SLURM_ARRAY_TASK_STEP=x"]),
    ("auto", {"JOB_COMPLETION_INDEX": "1"}, ["give --shard auto/N"]),
    ("auto/4", {}, ["not set"]),
    ("auto/4", {"JOB_COMPLETION_INDEX": "4"}, ["JOB_COMPLETION_INDEX=4", "0 to 3"]),
    ("auto/4", {"JOB_COMPLETION_INDEX": "one"}, ["JOB_COMPLETION_INDEX=one"]),
    ("auto/4", {"JOB_COMPLETION_INDEX": "1"} | slurm(1, 0, 3, 1, 4), ["both"]),
    ("auto/3", slurm(1, 0, 3, 1, 4), ["4 tasks, not 3"]),
])
def test_missing_or_inconsistent_shares_are_refused(spec, environ, phrases):
    with pytest.raises(UsageError) as refused:
        parse_shard(spec, environ)
    assert all(phrase in str(refused.value) for phrase in phrases), str(refused.value)
    assert f"--shard {spec.strip()}" in str(refused.value)


# -- the split -------------------------------------------------------------------------------------


def dataset(subdir: str, sizes: list[int]) -> Dataset:
    files = tuple(LocalFile(f"f{i:03d}.bin", Path(f"/data/{subdir}/f{i}"), size, 0) for i, size in enumerate(sizes))
    return Dataset(Path("/data") / subdir, subdir, files, None)


def loads(datasets: list[Dataset], owner: dict[tuple[str, str], int], count: int) -> list[int]:
    totals = [0] * count
    for d in datasets:
        for f in d.files:
            totals[owner[d.subdir, f.name] - 1] += f.size + PER_FILE_BYTES
    return totals


def test_each_file_is_in_exactly_one_share_and_the_split_is_stable():
    rng = random.Random(7)
    datasets = [dataset(f"s{n}", [rng.randrange(1, 50_000_000) for _ in range(rng.randrange(1, 30))])
                for n in range(12)]

    owner = split(datasets, 4)

    assert set(owner) == {(d.subdir, f.name) for d in datasets for f in d.files}
    assert set(owner.values()) == {1, 2, 3, 4}
    assert split(datasets, 4) == owner  # the same inputs give the same split
    plan = UploadPlan(tuple(datasets))
    shares = [take_share(plan, Shard(i, 4)) for i in range(1, 5)]
    sent = [(d.subdir, f.name) for share in shares for d in share.datasets for f in d.files]
    assert sorted(sent) == sorted(owner)  # together exactly the plan, no file twice
    for share in shares:
        for mine, whole in zip(share.datasets, datasets, strict=True):
            # the rest is checked, not sent
            assert sorted(f.name for f in mine.files + mine.other_shares) == sorted(f.name for f in whole.files)


def test_whole_samples_first_when_there_are_enough_of_them():
    rng = random.Random(1)
    datasets = [dataset(f"s{n:02d}", [rng.randrange(1_000, 9_000_000) for _ in range(20)]) for n in range(40)]

    owner = split(datasets, 4)

    for d in datasets:  # every sample goes from one worker, which then publishes its catalog itself
        assert len({owner[d.subdir, f.name] for f in d.files}) == 1
    totals = loads(datasets, owner, 4)
    assert max(totals) <= sum(totals) / 4 * (1 + SLACK)


def test_a_sample_too_big_to_keep_whole_is_split_by_file_and_the_shares_stay_balanced():
    datasets = [dataset("big", [10_000_000] * 40), *(dataset(f"s{n}", [1_000_000] * 5) for n in range(6))]

    owner = split(datasets, 4)

    assert len({owner["big", f.name] for f in datasets[0].files}) == 4
    assert all(len({owner[d.subdir, f.name] for f in d.files}) == 1 for d in datasets[1:])
    totals = loads(datasets, owner, 4)
    assert max(totals) <= sum(totals) / 4 * (1 + SLACK)


def test_few_samples_are_split_rather_than_leave_workers_idle():
    datasets = [dataset(f"s{n}", [3_000_000] * 10) for n in range(5)]  # 5 samples, 4 workers

    totals = loads(datasets, split(datasets, 4), 4)

    assert max(totals) <= sum(totals) / 4 * (1 + SLACK)  # whole, one worker would carry two samples


def test_one_dataset_is_split_by_file_balanced_by_bytes():
    sizes = [64_000_000, *([1_000] * 30), 20_000_000, 20_000_000, 20_000_000]
    datasets = [dataset("", sizes)]

    owner = split(datasets, 4)

    totals = loads(datasets, owner, 4)
    assert max(totals) <= max(sum(totals) / 4, 64_000_000 + PER_FILE_BYTES) * (1 + SLACK)
    assert [owner["", f.name] for f in datasets[0].files if f.size >= 20_000_000] == [1, 2, 3, 4]


def test_empty_files_are_spread_too():
    datasets = [dataset("", [0] * 100)]  # a request costs time whatever its size

    owner = split(datasets, 4)

    assert sorted(list(owner.values()).count(index) for index in (1, 2, 3, 4)) == [25, 25, 25, 25]


def test_more_workers_than_files_leaves_some_shares_empty():
    datasets = [dataset("", [10, 20])]
    shares = [take_share(UploadPlan(tuple(datasets)), Shard(i, 5)) for i in range(1, 6)]
    assert sorted(len(share.datasets[0].files) for share in shares) == [0, 0, 0, 1, 1]
    assert [share.share.files for share in shares if share.share] == [1, 1, 0, 0, 0]


def test_the_share_says_what_it_holds_and_the_plan_it_was_cut_from(tmp_path):
    collection = make_collection(tmp_path / "mydataset", ("s1", "s2", "s3", "s4", "s5"))
    plan = plan_collection(collection.root, collection.in_list)

    shares = [take_share(plan, Shard(i, 4)) for i in range(1, 5)]

    reports = [share.share.as_report() for share in shares if share.share]
    assert sum(report["files"] for report in reports) == reports[0]["plan_files"] == sum(
        len(d.files) for d in plan.datasets)
    assert sum(report["bytes"] for report in reports) == reports[0]["plan_bytes"]
    assert len({report["plan_fingerprint"] for report in reports}) == 1
    whole = [name for report in reports for name in report["datasets_whole"]]
    partial = [name for report in reports for name in report["datasets_in_part"]]
    assert len(whole) == len(set(whole))  # a dataset held whole is held by one share
    assert all(partial.count(name) >= 2 for name in partial) and not set(whole) & set(partial)
    assert set(whole) | set(partial) == {d.subdir or "(root)" for d in plan.datasets}
    assert [report["shard"] for report in reports] == ["1/4", "2/4", "3/4", "4/4"]


# -- several workers, one store ---------------------------------------------------------------------

CATALOG = "id: ds\nassets:\n" + "".join(f"  t{i}: t{i}.tsv\n" for i in range(12)) + "  sge: {all: a.pmtiles}\n"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    directory.mkdir()
    (directory / "catalog.yaml").write_text(CATALOG)
    (directory / "a.pmtiles").write_bytes(pmtiles_bytes(b"a" * 5000))
    for i in range(12):
        (directory / f"t{i}.tsv").write_bytes(f"table {i}\n".encode() * (i + 1) * 40)
    return directory


def worker(data_dir: Path, backend: InMemoryBackend, index: int, count: int = 4) -> RunResult:
    plan = take_share(UploadPlan((plan_from_catalog(data_dir, data_dir / "catalog.yaml"),)), Shard(index, count))
    return run(plan, backend, RunSettings(n_jobs=4), HashCache(None), lambda total_bytes, total_files: Progress())


def catalog_status(result: RunResult) -> Status:
    return next(op.status for op in result.ops if op.is_catalog and op.action is not Action.DELETE)


def test_workers_one_after_another_send_each_file_once_and_the_last_publishes_the_catalog(data_dir):
    backend = InMemoryBackend()

    results = [worker(data_dir, backend, index) for index in (1, 2, 3, 4)]

    assert [catalog_status(result) for result in results] == [Status.WAITING] * 3 + [Status.UPLOADED]
    assert all(result.exit_status is ExitStatus.OK for result in results)  # waiting is no failure
    assert sorted(backend.sends) == sorted(["a.pmtiles", "catalog.yaml", *(f"t{i}.tsv" for i in range(12))])
    assert set(backend.sends.values()) == {1}  # every object written once
    puts = [name for kind, name in backend.events if kind == "put"]
    assert puts[-1] == "catalog.yaml"
    assert backend.objects["catalog.yaml"] == (data_dir / "catalog.yaml").read_bytes()


def test_a_failed_worker_re_run_alone_completes_the_set(data_dir):
    backend = InMemoryBackend()
    for index in (1, 3, 4):  # worker 2 never ran (killed before it sent anything)
        worker(data_dir, backend, index)
    assert "catalog.yaml" not in backend.objects

    again = worker(data_dir, backend, 2)

    assert catalog_status(again) is Status.UPLOADED
    assert set(backend.sends.values()) == {1}

    rerun = worker(data_dir, backend, 3)  # any worker once more: nothing left to send, nothing written
    assert catalog_status(rerun) is Status.SKIPPED and set(backend.sends.values()) == {1}


def test_a_catalog_withdrawn_by_another_worker_after_this_one_decided_is_published_again(data_dir):
    backend = InMemoryBackend()
    for index in (1, 2, 3, 4):
        worker(data_dir, backend, index)
    listed = backend.remote_files
    listings = []

    def withdrawn_once_decided(dataset):  # type: ignore[no-untyped-def]
        found = listed(dataset)
        if not listings:  # another worker withdraws the catalog just after this one found it unchanged
            backend.objects.pop("catalog.yaml")
        listings.append(dataset)
        return found

    backend.remote_files = withdrawn_once_decided  # type: ignore[method-assign]
    result = worker(data_dir, backend, 2)

    catalog = next(op for op in result.ops if op.is_catalog)
    assert catalog.status is Status.UPLOADED and catalog.action is Action.UPLOAD and "withdrawn" in catalog.reason
    assert backend.objects["catalog.yaml"] == (data_dir / "catalog.yaml").read_bytes()


def test_a_worker_that_withdrew_the_catalog_and_waits_for_the_others_has_not_failed(data_dir):
    backend = InMemoryBackend()
    for index in (1, 2, 3, 4):
        worker(data_dir, backend, index)
    plan = UploadPlan((plan_from_catalog(data_dir, data_dir / "catalog.yaml"),))
    owners = {f.name: index for index in (1, 2) for f in take_share(plan, Shard(index, 4)).datasets[0].files}
    first, second = (next(name for name, index in owners.items() if index == wanted) for wanted in (1, 2))
    for name in (first, second):  # one changed file in the share of worker 1, one in worker 2's; the same sizes,
        old = (data_dir / name).read_bytes()  # so the same split (it is made from names and sizes)
        (data_dir / name).write_bytes(old.upper())

    result = worker(data_dir, backend, 1)

    assert result.withdrawn == ["catalog.yaml"] and catalog_status(result) is Status.WAITING
    assert result.exit_status is ExitStatus.OK and result.offline == []  # offline until worker 2 is done: no failure
    assert "catalog.yaml" not in backend.objects

    result = worker(data_dir, backend, 2)

    assert catalog_status(result) is Status.UPLOADED and result.exit_status is ExitStatus.OK
    assert backend.objects["catalog.yaml"] == (data_dir / "catalog.yaml").read_bytes()


def test_a_worker_says_which_catalogs_wait_a_few_lines_at_most(tmp_path, capsys):
    from uploader.cli.commands import WAITING_SHOWN, tell_outcome
    from uploader.engine.operations import Operation

    collection = make_collection(tmp_path / "mydataset", tuple(f"s{n}" for n in range(WAITING_SHOWN + 3)))
    plan = plan_collection(collection.root, collection.in_list)
    ops = [Operation(Action.UPLOAD, d, d.catalog, f"x/{d.subdir}/catalog.yaml", "new", is_catalog=True,
                     status=Status.WAITING, error="not published yet: ...") for d in plan.datasets[:-1]]
    withdrawn = Operation(Action.DELETE, plan.datasets[0], None, ops[0].destination, "withdrawn first",
                          is_catalog=True, status=Status.DELETED)

    tell_outcome(RunResult([withdrawn, *ops], 1.0), quiet=True, resume_command="upload_aws ...")

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == WAITING_SHOWN + 1 and lines[-1].startswith("waiting: 3 more catalog(s)")
    assert lines[0].endswith("(this run withdrew the live one first: offline until then)")
    assert "offline:" not in "\n".join(lines)  # no failure line: offline only until another worker publishes it

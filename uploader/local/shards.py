"""--shard: one upload split over independent workers (a Slurm array, a Kubernetes indexed Job).

Every worker runs the same command and builds the same plan from the same
files; `--shard I/N` then keeps the I-th of N shares of it. The split is
deterministic (it depends only on the datasets, file names and sizes, never
on listing order, time or host), balanced by bytes, and puts each file in
exactly one share. In a collection, whole samples are handed out first, so
that one worker sends a sample and publishes its catalog itself; a sample
too big for that balance is split by file, as a single dataset is.

A worker sends only its share. The files of the other shares are checked,
never sent (`Dataset.other_shares`): a dataset's catalog is published by
whichever worker, after its own files, finds every file of the dataset in
place on the store; until then it waits. So the last worker to finish
publishes what is left, and a failed worker re-run alone completes the set.
"""

from __future__ import annotations

import hashlib
import heapq
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from uploader.errors import UsageError
from uploader.local.plan import Dataset, LocalFile, Shard, Share, UploadPlan

MAX_SHARES = 100_000  # Kubernetes caps an indexed Job's completions at 10^5; Slurm arrays are smaller
# What one request costs, counted in bytes when balancing: a share of many tiny files is not taken for empty.
PER_FILE_BYTES = 256 * 1024
# Whole samples are kept whole while the busiest share stays within this much of the best possible.
SLACK = 0.10

SLURM_VARIABLES = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP",
                   "SLURM_ARRAY_TASK_COUNT")
KUBERNETES_INDEX = "JOB_COMPLETION_INDEX"  # set in each pod of an indexed Job: 0 to completions - 1

SHARD_FORMS = ("I/N (the I-th of N workers, e.g. 2/4), auto (a Slurm array task) or auto/N"
               " (a Kubernetes indexed Job of N completions)")


def parse_shard(spec: str, environ: Mapping[str, str]) -> Shard:
    """The worker's shard from --shard SPEC (and, for `auto`, the scheduler's variables); UsageError if unusable."""
    spec = spec.strip()
    if spec == "auto":
        if environ.get(KUBERNETES_INDEX, "").strip() and not _slurm_present(environ):
            raise UsageError(f"--shard auto: {KUBERNETES_INDEX} is set (a Kubernetes indexed Job), which does not say"
                             " how many workers there are; give --shard auto/N, N being the Job's completions")
        return _from_slurm(environ, spec)
    if match := re.fullmatch(r"auto/(\d+)", spec):
        count = _count(match.group(1), spec)
        if environ.get(KUBERNETES_INDEX, "").strip():
            if _slurm_present(environ):
                raise UsageError(f"--shard {spec}: both {KUBERNETES_INDEX} and SLURM_ARRAY_TASK_ID are set; which one"
                                 " numbers this worker is unclear: give --shard I/N")
            return _from_kubernetes(environ[KUBERNETES_INDEX], count, spec)
        if not _slurm_present(environ):
            raise UsageError(f"--shard {spec}: {KUBERNETES_INDEX} is not set: this is not a pod of a Kubernetes"
                             " indexed Job (nor a Slurm array task: SLURM_ARRAY_TASK_ID is not set); run it as"
                             " one, or give --shard I/N")
        shard = _from_slurm(environ, spec)
        if shard.count != count:
            raise UsageError(f"--shard {spec}: the Slurm array has {shard.count} tasks, not {count}; give --shard auto"
                             " (the array's size) or make them agree")
        return shard
    if match := re.fullmatch(r"(\d+)/(\d+)", spec):
        index, count = int(match.group(1)), _count(match.group(2), spec)
        if not 1 <= index <= count:
            raise UsageError(f"--shard {spec}: I must be from 1 to N ({count}), e.g. --shard 1/{count}")
        return Shard(index, count, "--shard")
    raise UsageError(f"--shard {spec}: must be {SHARD_FORMS}")


def _count(text: str, spec: str) -> int:
    count = int(text)
    if not 1 <= count <= MAX_SHARES:
        raise UsageError(f"--shard {spec}: N must be from 1 to {MAX_SHARES:,d}")
    return count


def _slurm_present(environ: Mapping[str, str]) -> bool:
    return bool(environ.get("SLURM_ARRAY_TASK_ID", "").strip())


def _from_slurm(environ: Mapping[str, str], spec: str) -> Shard:
    """I is the task's position in MIN..MAX by STEP, N is the array's task count; refused when they disagree."""
    missing = [name for name in SLURM_VARIABLES if not environ.get(name, "").strip()]
    if missing:
        raise UsageError(f"--shard {spec}: {', '.join(missing)} not set: this is not a Slurm array task; submit it"
                         f" with sbatch --array=0-3, use --shard auto/N in a Kubernetes indexed Job, or give"
                         " --shard I/N")
    values = {}
    for name in SLURM_VARIABLES:
        text = environ[name].strip()
        if not text.isdigit():
            raise UsageError(f"--shard {spec}: {name}={text} is not a whole number; give --shard I/N")
        values[name] = int(text)
    task, low, high, step, count = (values[name] for name in SLURM_VARIABLES)
    described = f"SLURM_ARRAY_TASK_ID={task}, MIN={low}, MAX={high}, STEP={step}, COUNT={count}"
    if step < 1 or not low <= task <= high or (task - low) % step or (high - low) % step \
            or (high - low) // step + 1 != count or count > MAX_SHARES:
        raise UsageError(f"--shard {spec}: the Slurm array is not one range MIN-MAX:STEP holding this task"
                         f" ({described}); submit it as a range (sbatch --array=0-3, or 1-7:2) or give --shard I/N")
    return Shard((task - low) // step + 1, count, f"Slurm array task {task} of {low}-{high}:{step}")


def _from_kubernetes(text: str, count: int, spec: str) -> Shard:
    text = text.strip()
    if not text.isdigit() or int(text) >= count:
        raise UsageError(f"--shard {spec}: {KUBERNETES_INDEX}={text} is not a completion index from 0 to {count - 1};"
                         f" N must be the Job's spec.completions")
    return Shard(int(text) + 1, count, f"Kubernetes completion index {text}")


# -- the split ------------------------------------------------------------------------------------


def take_share(plan: UploadPlan, shard: Shard) -> UploadPlan:
    """The plan as worker `shard` runs it: its share of each dataset's files to send, the rest to check."""
    owner = split(plan.datasets, shard.count)
    datasets = []
    whole: list[str] = []
    partial: list[str] = []
    for dataset in plan.datasets:
        mine = tuple(file for file in dataset.files if owner[dataset.subdir, file.name] == shard.index)
        theirs = tuple(file for file in dataset.files if owner[dataset.subdir, file.name] != shard.index)
        if mine:
            (partial if theirs else whole).append(_label(dataset))
        datasets.append(replace(dataset, files=mine, other_shares=dataset.other_shares + theirs))
    planned = [file for dataset in plan.datasets for file in dataset.files]
    sent = [file for dataset in datasets for file in dataset.files]
    share = Share(shard, len(sent), sum(file.size for file in sent), len(planned), sum(file.size for file in planned),
                  tuple(whole), tuple(partial), fingerprint(plan.datasets))
    return replace(plan, datasets=tuple(datasets), share=share)


def _label(dataset: Dataset) -> str:
    return dataset.subdir or ("(root)" if dataset.collection_root else "(dataset)")


def split(datasets: Sequence[Dataset], count: int) -> dict[tuple[str, str], int]:
    """The share (1..count) of every file to send, by (dataset subdir, file name).

    Longest processing time first: units from the heaviest down, each to the
    least loaded share (the lowest-numbered one on a tie). Datasets start as
    whole units; while the busiest share is more than SLACK above the best
    possible (the fair share, or the largest file), the heaviest whole dataset
    is split into its files, and the units are dealt again.
    """
    weights = {(dataset.subdir, file.name): _weight(file) for dataset in datasets for file in dataset.files}
    if not weights:
        return {}
    totals = {dataset.subdir: sum(_weight(file) for file in dataset.files) for dataset in datasets}
    fair = sum(weights.values()) / count
    limit = max(fair, max(weights.values())) * (1 + SLACK)
    # A dataset heavier than a fair share cannot stay whole; one dataset alone is split from the start (kept
    # whole, it would leave every other worker idle).
    whole = {dataset.subdir for dataset in datasets if len(dataset.files) > 1 and totals[dataset.subdir] <= fair} \
        if len(datasets) > 1 else set()
    while True:
        owner, busiest = _deal(_units(datasets, whole, weights), count)
        if busiest <= limit or not whole:
            return owner
        whole.discard(max(whole, key=lambda subdir: (totals[subdir], subdir)))


def _weight(file: LocalFile) -> int:
    return file.size + PER_FILE_BYTES


def _units(datasets: Sequence[Dataset], whole: set[str], weights: dict[tuple[str, str], int]
           ) -> list[tuple[int, tuple[str, str], list[tuple[str, str]]]]:
    """(weight, sort key, members) of each unit: a whole dataset, or one file."""
    units = []
    for dataset in datasets:
        keys = [(dataset.subdir, file.name) for file in dataset.files]
        if dataset.subdir in whole:
            units.append((sum(weights[key] for key in keys), (dataset.subdir, ""), keys))
        else:
            units.extend((weights[key], key, [key]) for key in keys)
    return units


def _deal(units: list[tuple[int, tuple[str, str], list[tuple[str, str]]]], count: int
          ) -> tuple[dict[tuple[str, str], int], int]:
    loads = [(0, index) for index in range(1, count + 1)]  # a heap: the least loaded share, then the lowest number
    owner = {}
    for weight, _, members in sorted(units, key=lambda unit: (-unit[0], unit[1])):
        load, index = heapq.heappop(loads)
        owner.update(dict.fromkeys(members, index))
        heapq.heappush(loads, (load + weight, index))
    return owner, max(load for load, _ in loads)


def fingerprint(datasets: Sequence[Dataset]) -> str:
    """A short digest of what the split is made from: every worker must show the same one."""
    digest = hashlib.sha256()
    for subdir, name, size in sorted((d.subdir, f.name, f.size) for d in datasets for f in d.files):
        digest.update(f"{subdir}\0{name}\0{size}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:12]

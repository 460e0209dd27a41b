"""cartloader's marker files: empty files in --in-dir that tell its pipeline an upload is done.

cartloader's `upload_aws` touches `cartload.aws.done` once the basic files and the
catalog are up, and `<file>.aws.done` beside each optional or basemap file it
uploaded; `upload_zenodo --upload-method catalog` does the same with `.zenodo.done`.
Its pipeline (run_xenium, run_visiumhd) skips the Zenodo step when they exist, so
without them every re-run would open one more Zenodo draft.

They are written once, after a run that succeeded, and never after a failure
(cartloader writes the Zenodo one even then). A directory that cannot be written
(a read-only mount) costs one notice, never the upload.
"""

from __future__ import annotations

from pathlib import Path

from uploader.local.catalog import Group
from uploader.local.plan import UploadPlan


def marker_paths(plan: UploadPlan, kind: str, published: frozenset[str] = frozenset()) -> list[Path]:
    """Where cartloader puts the markers of `kind` ('aws' or 'zenodo') for the groups this plan uploads.

    With --shard, a dataset's basic group is done once its catalog is published (`published`: the subdirs of
    the datasets whose catalog is on the remote after this run), whichever worker published it.
    """
    paths = []
    for dataset in plan.datasets:
        if dataset.collection_root:
            continue  # cartloader marks the samples' uploads only
        basics_sent = not any(file.group is Group.BASICS for file in dataset.others) and (
            not dataset.other_shares or dataset.subdir in published)
        if dataset.catalog is not None and basics_sent:  # the basic group, whose last file is the catalog
            paths.append(dataset.in_dir / f"cartload.{kind}.done")
        paths.extend(dataset.in_dir / f"{file.name}.{kind}.done" for file in dataset.files
                     if file.group is not Group.BASICS)
    return paths


def write_markers(paths: list[Path]) -> str:
    """Touch each marker (make compares its time with the files'); a notice if some could not be written."""
    unwritten = []
    for path in paths:
        try:
            path.touch()
        except OSError as exc:
            unwritten.append((path, exc.strerror or exc.__class__.__name__))
    if not unwritten:
        return ""
    path, reason = unwritten[0]
    return (f"notice: {len(unwritten)} of cartloader's marker files could not be written (e.g. {path}: {reason});"
            " its pipeline will run this upload again. For the pipeline, mount --in-dir writable;"
            " otherwise pass --no-markers")

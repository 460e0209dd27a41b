"""cartloader's marker files: which, where, and what happens when they cannot be written (no server needed)."""

from __future__ import annotations

import os

from tests.conftest import EXAMPLE
from uploader.local.catalog import Group
from uploader.local.markers import marker_paths, write_markers
from uploader.local.plan import UploadPlan, plan_from_catalog

OPTIONAL = {"t18-f24-umap.tsv.gz", "t18-f24.umap.png", "t18-f24.umap.single.prob.png", "t18-f24-umap.pmtiles",
            "t18-f24-alias.tsv"}
BASEMAP = {"histology.pmtiles"}


def markers_for(groups: frozenset[Group], kind: str) -> set[str]:
    dataset = plan_from_catalog(EXAMPLE, EXAMPLE / "catalog.yaml", groups)
    paths = marker_paths(UploadPlan((dataset,)), kind)
    assert {path.parent for path in paths} == {EXAMPLE.absolute()}  # all in --in-dir, as cartloader puts them
    return {path.name for path in paths}


def test_every_group_has_cartloaders_markers():
    assert markers_for(frozenset(Group), "aws") == (
        {"cartload.aws.done"} | {f"{name}.aws.done" for name in OPTIONAL | BASEMAP})
    assert markers_for(frozenset(Group), "zenodo") == (
        {"cartload.zenodo.done"} | {f"{name}.zenodo.done" for name in OPTIONAL | BASEMAP})


def test_only_the_groups_uploaded_are_marked():
    assert markers_for(frozenset({Group.BASICS}), "aws") == {"cartload.aws.done"}
    assert markers_for(frozenset({Group.BASEMAP}), "aws") == {"histology.pmtiles.aws.done"}
    assert markers_for(frozenset({Group.OPTIONAL}), "aws") == {f"{name}.aws.done" for name in OPTIONAL}


def test_a_marker_is_renewed_so_make_sees_it_newer_than_the_files(tmp_path):
    marker = tmp_path / "cartload.aws.done"
    marker.touch()
    os.utime(marker, (1_000_000, 1_000_000))
    assert write_markers([marker]) == ""
    assert marker.stat().st_mtime > 1_000_000


def test_markers_that_cannot_be_written_are_one_notice(tmp_path):
    gone = tmp_path / "no-such-directory"
    notice = write_markers([gone / "cartload.aws.done", gone / "histology.pmtiles.aws.done", tmp_path / "ok.done"])
    assert notice.startswith("notice: 2 of cartloader's marker files could not be written (e.g. ")
    assert "mount --in-dir writable" in notice and "--no-markers" in notice
    assert (tmp_path / "ok.done").exists()


def test_a_sharded_dataset_is_marked_by_the_worker_that_found_its_catalog_published():
    from uploader.local.plan import Shard
    from uploader.local.shards import take_share

    plan = take_share(UploadPlan((plan_from_catalog(EXAMPLE, EXAMPLE / "catalog.yaml"),)), Shard(1, 2))
    mine = {f"{file.name}.aws.done" for file in plan.datasets[0].files if file.group is not Group.BASICS}

    assert {path.name for path in marker_paths(plan, "aws")} == mine  # its catalog waits: the basics are not done
    assert {path.name for path in marker_paths(plan, "aws", published=frozenset({""}))} == mine | {
        "cartload.aws.done"}


def test_a_collection_root_gets_no_marker(tmp_path):
    from tests.cartloader_collection import make_collection
    from uploader.local.plan import plan_collection

    collection = make_collection(tmp_path / "mydataset")
    paths = marker_paths(plan_collection(collection.root, collection.in_list), "aws")
    assert {path.parent for path in paths} == {collection.root / sample for sample in collection.samples}

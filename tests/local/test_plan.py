"""The upload plan: validation of every file before anything is sent, collections, groups."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cartloader_collection import make_collection
from tests.pmtiles_files import pmtiles_bytes
from uploader.errors import InputError, UsageError
from uploader.local.catalog import Group
from uploader.local.plan import collection_subdir, plan_collection, plan_from_catalog, plan_from_names

CATALOG = "id: ds\nassets:\n  sge: {all: a.pmtiles}\n  t: t.tsv\n  factors:\n    - {umap: {png: u.png}}\n"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    directory.mkdir()
    (directory / "catalog.yaml").write_text(CATALOG)
    (directory / "a.pmtiles").write_bytes(pmtiles_bytes(b"tile"))
    for name in ("t.tsv", "u.png"):
        (directory / name).write_bytes(name.encode())
    return directory


def names(dataset) -> list[str]:
    return [f.name for f in dataset.all_files]


def test_catalog_comes_last_and_sizes_are_known(data_dir):
    dataset = plan_from_catalog(data_dir, data_dir / "catalog.yaml")
    assert names(dataset) == ["a.pmtiles", "t.tsv", "u.png", "catalog.yaml"]
    assert dataset.catalog is not None and dataset.catalog.size == len(CATALOG)
    assert [f.size for f in dataset.files] == [len(pmtiles_bytes(b"tile")), 5, 5]


def test_groups_select_the_files_sent_and_every_group_publishes_the_catalog(data_dir):
    optional = plan_from_catalog(data_dir, data_dir / "catalog.yaml", frozenset({Group.OPTIONAL}))
    assert names(optional) == ["u.png", "catalog.yaml"]
    assert [f.name for f in optional.others] == ["a.pmtiles", "t.tsv"]  # checked in place, not sent
    basics = plan_from_catalog(data_dir, data_dir / "catalog.yaml", frozenset({Group.BASICS}))
    assert names(basics) == ["a.pmtiles", "t.tsv", "catalog.yaml"] and [f.name for f in basics.others] == ["u.png"]


def test_all_problems_are_reported_together(data_dir):
    (data_dir / "a.pmtiles").unlink()
    (data_dir / "t.tsv").unlink()
    os.symlink("/etc/hostname", data_dir / "t.tsv")
    with pytest.raises(InputError) as error:
        plan_from_catalog(data_dir, data_dir / "catalog.yaml")
    assert len(error.value.problems) == 2
    assert "a.pmtiles' is missing" in error.value.problems[0]
    assert "outside" in error.value.problems[1]


def test_symlink_inside_the_directory_is_fine(data_dir):
    (data_dir / "real").mkdir()
    (data_dir / "t.tsv").rename(data_dir / "real" / "t.tsv")
    os.symlink("real/t.tsv", data_dir / "t.tsv")
    dataset = plan_from_catalog(data_dir, data_dir / "catalog.yaml")
    assert dataset.files[1].path == (data_dir / "real" / "t.tsv").resolve()


def test_files_under_a_symlinked_directory_are_checked_by_where_they_really_are(tmp_path, data_dir):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.tsv").write_text("x")
    (data_dir / "real").mkdir()
    (data_dir / "real" / "y.tsv").write_text("y")
    os.symlink(outside, data_dir / "out")
    os.symlink("real", data_dir / "in")
    dataset = plan_from_names(data_dir, ["in/y.tsv", "t.tsv"], "--files")
    assert [f.path for f in dataset.files] == [(data_dir / "real" / "y.tsv").resolve(), (data_dir / "t.tsv").resolve()]
    with pytest.raises(InputError) as error:
        plan_from_names(data_dir, ["in/y.tsv", "out/x.tsv", "in/none.tsv", "t.tsv/z"], "--files")
    assert len(error.value.problems) == 3
    assert "out/x.tsv' is a symlink to" in error.value.problems[0] and "outside" in error.value.problems[0]
    assert "in/none.tsv' is missing" in error.value.problems[1]
    assert "t.tsv/z' cannot be read" in error.value.problems[2]


@pytest.mark.parametrize(
    ("name", "phrase"),
    [("/abs.tsv", "absolute path"), ("../x.tsv", "leaves the dataset"), ("a//b.tsv", "write it as 'a/b.tsv'"),
     ("./b.tsv", "has a '.' or empty path part, which the remote would keep in the file's name"),
     ("a\nb.tsv", "control character"), ("bad\udcff.tsv", "not a valid UTF-8")],
)
def test_bad_names(data_dir, name, phrase):
    with pytest.raises(InputError, match=phrase):
        plan_from_names(data_dir, [name], "--files")


def test_not_a_directory(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match=r"--in-dir .*not a directory"):
        plan_from_catalog(tmp_path / "file", tmp_path / "catalog.yaml")


def test_collection_uses_catalog_id_or_normalised_sample_id(tmp_path, data_dir):
    parent = data_dir.parent
    other = parent / "My_Sample"
    other.mkdir()
    (other / "catalog.yaml").write_text("assets: {x: x.tsv}\n")
    (other / "x.tsv").write_text("x")
    listing = tmp_path / "list.tsv"
    listing.write_text("# comment\ndata\tignored\nMy_Sample\n")
    plan = plan_collection(parent, listing)
    assert [d.subdir for d in plan.datasets] == ["ds", "my-sample"]
    assert sum(len(d.all_files) for d in plan.datasets) == 6


def test_collection_refuses_two_samples_with_one_destination(tmp_path, data_dir):
    twin = data_dir.parent / "twin"
    twin.mkdir()
    (twin / "catalog.yaml").write_text("id: ds\nassets: {}\n")
    listing = tmp_path / "list.tsv"
    listing.write_text("data\ntwin\n")
    with pytest.raises(InputError, match="would both upload to 'ds/'"):
        plan_collection(data_dir.parent, listing)


def test_collection_reports_missing_samples_and_bad_lists(tmp_path, data_dir):
    listing = tmp_path / "list.tsv"
    listing.write_text("data\nabsent\n../escape\n")
    with pytest.raises(InputError, match="not a sub-directory name"):
        plan_collection(data_dir.parent, listing)
    listing.write_text("data\nabsent\n")
    with pytest.raises(InputError, match="'absent' has no directory"):
        plan_collection(data_dir.parent, listing)
    listing.write_text("\n\n")
    with pytest.raises(UsageError, match="lists no samples"):
        plan_collection(data_dir.parent, listing)
    with pytest.raises(UsageError, match="file not found"):
        plan_collection(data_dir.parent, tmp_path / "nope.tsv")


def test_collection_subdir():
    assert collection_subdir("xenium-1", "S_1") == "xenium-1"
    assert collection_subdir(None, "Sample_A_1") == "sample-a-1"


# -- a collection's root (multi-catalog.yaml) ----------------------------------------------------


def test_a_collection_root_comes_last_with_its_shared_files_and_checks_the_samples(tmp_path):
    collection = make_collection(tmp_path / "mydataset", shape="shared")

    plan = plan_collection(collection.root, collection.in_list)

    *samples, root = plan.datasets
    assert [d.subdir for d in samples] == ["mydataset-s1", "mydataset-s2"] and not any(
        d.collection_root for d in samples)
    assert root.collection_root and root.subdir == "" and root.in_dir == collection.root
    assert root.catalog is not None and root.catalog.name == "multi-catalog.yaml"
    assert sorted(f.name for f in root.files) == sorted(collection.root_files)
    # sent with their samples, checked before the root catalog goes
    assert sorted(f.name for f in root.others) == ["mydataset-s1/catalog.yaml", "mydataset-s1/t12-f24-rgb.tsv",
                                                   "mydataset-s2/catalog.yaml"]


def test_the_root_names_a_sample_this_run_does_not_upload_it_waits_for_it(tmp_path):
    collection = make_collection(tmp_path / "mydataset")
    collection.in_list.write_text("mydataset-s2\n")

    *_, root = plan_collection(collection.root, collection.in_list).datasets

    assert "mydataset-s1/catalog.yaml" in {f.name for f in root.others}
    assert "mydataset-s1/catalog.yaml" not in {f.name for f in root.files}  # never sent without its sample


def test_a_root_naming_a_sample_published_elsewhere_is_refused(tmp_path):
    collection = make_collection(tmp_path / "mydataset")
    catalog = collection.root / "mydataset-s1" / "catalog.yaml"
    catalog.write_text(catalog.read_text().replace("id: mydataset-s1", "id: renamed"))

    with pytest.raises(InputError) as error:
        plan_collection(collection.root, collection.in_list)

    assert "'mydataset-s1/catalog.yaml'" in str(error.value) and "'renamed/'" in str(error.value)


def test_a_multi_catalog_without_samples_is_refused(tmp_path):
    collection = make_collection(tmp_path / "mydataset")
    (collection.root / "multi-catalog.yaml").write_text("id: x\nfactors: {}\n")

    with pytest.raises(InputError, match="no 'samples' section"):
        plan_collection(collection.root, collection.in_list)


def test_without_a_multi_catalog_a_collection_has_no_root(tmp_path):
    collection = make_collection(tmp_path / "mydataset")
    (collection.root / "multi-catalog.yaml").unlink()

    plan = plan_collection(collection.root, collection.in_list)

    assert not any(d.collection_root for d in plan.datasets) and len(plan.datasets) == 2

"""A collection's root (multi-catalog.yaml and the shared files it names), end to end against a real S3 server.

The collection is shaped like cartloader's run_together output (tests/cartloader_collection.py); the
order of writes is read from the server's own metadata log (SeaweedFS).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.cartloader_collection import Collection, make_collection
from tests.conftest import S3Prefix, run_cli
from tests.s3.test_upload_aws import poison_hash_cache

pytestmark = pytest.mark.e2e


def upload(collection: Collection, s3: S3Prefix, env: dict[str, str], *extra: str | Path,
           in_list: Path | None = None) -> tuple[int, str, dict]:
    report = collection.root.parent / f"report-{time.monotonic_ns()}.json"
    result = run_cli("upload_aws", "--in-dir", collection.root, "--in-list", in_list or collection.in_list,
                     "--s3-dir", s3.uri, "--report", report, "--no-viewer-check", *extra, env=env)
    return result.code, result.output, json.loads(report.read_text()) if report.exists() else {}


def statuses(report: dict) -> dict[str, str]:
    return {entry["destination"].split("/", 1)[1]: entry["status"] for entry in report["files"]
            if entry["action"] != "delete"}


def assert_published_in_order(collection: Collection, s3: S3Prefix, since: int = 0) -> None:
    """Each sample's catalog written (since `since`) after its files; multi-catalog.yaml once, last of all."""
    writes = [w for w in s3.writes() if w.ns >= since and w.kind != "delete"]
    order = [w.key for w in writes]
    assert order[-1] == "multi-catalog.yaml", order
    assert order.count("multi-catalog.yaml") == 1
    for sample, names in collection.samples.items():
        if f"{sample}/catalog.yaml" in order:
            catalog = order.index(f"{sample}/catalog.yaml")
            assert all(order.index(f"{sample}/{name}") < catalog for name in names[:-1]
                       if f"{sample}/{name}" in order), order


def test_the_root_goes_next_to_the_samples_last_of_all_with_exact_keys_and_bytes(tmp_path, s3, cli_env):
    collection = make_collection(tmp_path / "mydataset")

    code, output, report = upload(collection, s3, cli_env)

    assert code == 0, output
    assert s3.names() == collection.objects()  # no .bak copy, no *.shared.done flag, no Makefile
    assert {"t12-f24-model.tsv", "cells-xr-pseudobulk.tsv.gz", "cells-xr-heatmap.pdf",
            "mydataset-s1/catalog.yaml"} <= s3.names()
    for key in collection.objects():
        assert s3.get(key) == collection.local(key), key
    assert s3.head("multi-catalog.yaml")["ContentType"] == "application/yaml"
    assert s3.head("t12-f24-umap.pmtiles")["ContentType"] == "application/vnd.pmtiles"
    assert_published_in_order(collection, s3)
    assert all(w.kind == "create" for w in s3.writes())  # each object written once
    assert statuses(report)["multi-catalog.yaml"] == "uploaded"
    assert f"catalog: {s3.uri}/multi-catalog.yaml" in output
    # cartloader's markers go in the samples' directories only
    assert (collection.root / "mydataset-s1" / "cartload.aws.done").exists()
    assert not (collection.root / "cartload.aws.done").exists()

    code, output, report = upload(collection, s3, cli_env)  # the same command again: nothing is written
    assert code == 0 and set(statuses(report).values()) == {"skipped"}, output


@pytest.mark.parametrize("shape", ["assets", "shared"])
def test_the_newer_and_the_older_shapes_of_the_multi_catalog(tmp_path, s3, cli_env, shape):
    collection = make_collection(tmp_path / "mydataset", shape=shape)

    code, output, _ = upload(collection, s3, cli_env)

    assert code == 0, output
    assert s3.names() == collection.objects()
    assert s3.get("multi-catalog.yaml") == collection.local("multi-catalog.yaml")
    assert_published_in_order(collection, s3)
    # the older shape's shared file lives in the first sample's directory: sent once, with that sample
    assert [w.key for w in s3.writes()].count("mydataset-s1/t12-f24-rgb.tsv") == 1


def test_a_failed_sample_withholds_the_root_catalog_and_the_same_command_completes_it(tmp_path, s3, cli_env):
    collection = make_collection(tmp_path / "mydataset", ("s1", "s2", "s3"))
    poison_hash_cache(cli_env, collection.root / "mydataset-s2" / "table-1.tsv")  # its bytes will not match

    code, output, report = upload(collection, s3, cli_env)

    assert code == 1, output
    names = s3.names()
    assert "mydataset-s2/catalog.yaml" not in names and "multi-catalog.yaml" not in names
    assert {"mydataset-s1/catalog.yaml", "mydataset-s3/catalog.yaml", "t12-f24-model.tsv"} <= names
    assert statuses(report)["multi-catalog.yaml"] == "failed"  # withheld, not waiting: this run's own failure
    entry = next(e for e in report["files"] if e["name"] == "multi-catalog.yaml")
    assert "not published" in entry["reason"] and "mydataset-s2/catalog.yaml" in entry["reason"]
    assert "waiting:" not in output

    for item in Path(cli_env["CARTLOAD_UPLOADER_CACHE_DIR"]).iterdir():
        item.unlink()  # the disk fault is gone
    started = time.time_ns()
    code, output, report = upload(collection, s3, cli_env)

    assert code == 0, output
    assert s3.names() == collection.objects()
    sent = {name for name, status in statuses(report).items() if status == "uploaded"}
    assert sent == {"mydataset-s2/table-1.tsv", "mydataset-s2/catalog.yaml", "multi-catalog.yaml"}
    assert_published_in_order(collection, s3, since=started)


def test_the_root_waits_for_samples_another_run_uploads(tmp_path, s3, cli_env):
    collection = make_collection(tmp_path / "mydataset")
    first_only = tmp_path / "first.tsv"
    first_only.write_text("mydataset-s1\n")

    code, output, report = upload(collection, s3, cli_env, in_list=first_only)

    assert code == 0, output  # nothing failed: the rest is another run's
    assert "multi-catalog.yaml" not in s3.names() and "mydataset-s1/catalog.yaml" in s3.names()
    assert set(collection.root_files) <= s3.names()  # the shared files are in place, the catalog waits
    assert statuses(report)["multi-catalog.yaml"] == "waiting"
    assert "waiting:" in output and "mydataset-s2/" in output

    started = time.time_ns()
    code, output, _ = upload(collection, s3, cli_env)

    assert code == 0, output
    assert s3.names() == collection.objects()
    assert_published_in_order(collection, s3, since=started)


def test_a_live_root_catalog_is_withdrawn_while_a_shared_file_it_names_is_replaced(tmp_path, s3, cli_env):
    collection = make_collection(tmp_path / "mydataset")
    assert upload(collection, s3, cli_env)[0] == 0
    (collection.root / "t12-f24-rgb.tsv").write_text("new colours\n")
    started = time.time_ns()

    code, output, _ = upload(collection, s3, cli_env)

    assert code == 0, output
    writes = [(w.key, w.kind) for w in s3.writes() if w.ns >= started]
    assert writes == [("multi-catalog.yaml", "delete"), ("t12-f24-rgb.tsv", "replace"),
                      ("multi-catalog.yaml", "create")]
    assert s3.get("t12-f24-rgb.tsv") == b"new colours\n"
    assert s3.get("multi-catalog.yaml") == collection.local("multi-catalog.yaml")


def test_the_root_catalog_is_withdrawn_with_a_sample_catalog_it_names(tmp_path, s3, cli_env):
    collection = make_collection(tmp_path / "mydataset")
    assert upload(collection, s3, cli_env)[0] == 0
    (collection.root / "mydataset-s2" / "table-0.tsv").write_text("new table\n")
    started = time.time_ns()

    code, output, _ = upload(collection, s3, cli_env)

    assert code == 0, output
    writes = [(w.key, w.kind) for w in s3.writes() if w.ns >= started]
    # never a root catalog naming a sample catalog that is not there
    assert {writes[0], writes[1]} == {("mydataset-s2/catalog.yaml", "delete"), ("multi-catalog.yaml", "delete")}
    assert writes[2:] == [("mydataset-s2/table-0.tsv", "replace"), ("mydataset-s2/catalog.yaml", "create"),
                          ("multi-catalog.yaml", "create")]


def test_a_root_file_the_multi_catalog_names_must_be_there_before_anything_is_sent(tmp_path, s3, cli_env):
    collection = make_collection(tmp_path / "mydataset")
    (collection.root / "cells-xr-heatmap.tsv").unlink()

    code, output, _ = upload(collection, s3, cli_env)

    assert code == 2, output
    assert "multi-catalog.yaml" in output and "'cells-xr-heatmap.tsv' is missing" in output
    assert s3.names() == set()

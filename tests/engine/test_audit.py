"""The audit of verify_*: each planned file's verdict against an in-memory remote, and the one rule of equality."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fake_backend import InMemoryBackend
from tests.pmtiles_files import pmtiles_bytes
from uploader.engine.audit import FileAudit, Verdict, audit
from uploader.engine.decide import disagreeing_digest, vouched
from uploader.engine.progress import Progress
from uploader.engine.runner import run
from uploader.engine.settings import RunSettings
from uploader.local.hash_cache import HashCache
from uploader.local.plan import UploadPlan, plan_from_catalog


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    directory.mkdir()
    (directory / "catalog.yaml").write_text("id: ds\nassets:\n  sge: {all: a.pmtiles}\n  t: t.tsv\n  u: u.tsv\n")
    (directory / "a.pmtiles").write_bytes(pmtiles_bytes(b"a.pmtiles" * 100))
    for name in ("t.tsv", "u.tsv"):
        (directory / name).write_bytes(name.encode() * 100)
    return directory


def upload(data_dir: Path, backend: InMemoryBackend) -> bool:
    plan = UploadPlan((plan_from_catalog(data_dir, data_dir / "catalog.yaml"),))
    return run(plan, backend, RunSettings(data_dir, n_jobs=2), HashCache(None), lambda size, count: Progress()).ok


def verdicts(data_dir: Path, backend: InMemoryBackend, *, deep: bool = False) -> dict[str, tuple[Verdict, str]]:
    plan = UploadPlan((plan_from_catalog(data_dir, data_dir / "catalog.yaml"),))
    entries: list[FileAudit] = audit(plan, backend, HashCache(None), deep=deep, workers=2)
    return {entry.destination: (entry.verdict, entry.reason) for entry in entries}


@pytest.fixture
def published(data_dir: Path) -> InMemoryBackend:
    backend = InMemoryBackend()
    assert upload(data_dir, backend)
    return backend


def test_every_digest_the_remote_vouches_for_must_agree():
    """The audit judges by decide.py's one rule (the same the upload skips by)."""
    local = {"md5": "aa", "sha256": "bb"}
    assert disagreeing_digest({"md5": "aa", "sha256": "bb"}, local) is None
    assert disagreeing_digest({"md5": "aa", "sha256": "xx"}, local) == "sha256"  # one agreeing is not enough
    assert vouched({"handle": "x", "md5": "aa"}) == {"md5": "aa"}


def test_an_equal_remote_is_the_same_by_its_listing_alone(data_dir, published):
    found = verdicts(data_dir, published)

    assert {name: verdict for name, (verdict, _) in found.items()} == dict.fromkeys(
        ["a.pmtiles", "t.tsv", "u.tsv", "catalog.yaml"], Verdict.SAME)
    assert found["t.tsv"][1] == "same size and md5 (the remote's)"
    assert published.requests_for_digests == 0


def test_changed_missing_and_extra_files_each_get_their_verdict(data_dir, published):
    published.objects["t.tsv"] = published.objects["t.tsv"][:-1] + b"!"  # same size
    published.objects["u.tsv"] += b"more"
    del published.objects["a.pmtiles"]
    published.objects["notes.txt"] = b"left over"
    published.objects["other/catalog.yaml"] = b"id: other\n"  # a dataset of its own below: not this one's
    published.objects["other/x.tsv"] = b"x"

    found = verdicts(data_dir, published)

    assert found["t.tsv"] == (Verdict.DIFFERENT, "content differs (same size; the remote's digest disagrees)")
    assert found["u.tsv"] == (Verdict.DIFFERENT, "size differs (remote 504 bytes, local 500)")
    assert found["a.pmtiles"] == (Verdict.MISSING, "not on the remote")
    assert found["notes.txt"] == (Verdict.EXTRA, "on the remote, but no catalog names it")
    assert "other/x.tsv" not in found and "other/catalog.yaml" not in found
    assert found["catalog.yaml"][0] is Verdict.SAME


def test_a_listing_that_vouches_for_nothing_costs_a_request_and_else_stays_unproven(data_dir):
    backend = InMemoryBackend(sha256_on_request=True)  # its listing carries no digest
    assert upload(data_dir, backend)
    backend.requests_for_digests = 0

    assert verdicts(data_dir, backend)["t.tsv"] == (Verdict.SAME, "same size and sha256 (the remote's)")
    assert backend.requests_for_digests == 4

    backend.sha256_on_request = False  # now nothing is vouched for at all
    reason = "same size, but the remote vouches for no digest this tool can compute; --deep reads it"
    listing_without_digests = {name: (Verdict.UNPROVEN, reason) for name in ("a.pmtiles", "t.tsv", "u.tsv")}
    # The live catalog is not left unknown: it is small, so it is read.
    listing_without_digests["catalog.yaml"] = (Verdict.SAME, "same size and sha256 (downloaded and hashed)")
    backend.remote_files = lambda dataset: {  # type: ignore[method-assign]
        name: type(remote)(remote.name, remote.size, {}) for name, remote in
        InMemoryBackend.remote_files(backend, dataset).items()}
    assert verdicts(data_dir, backend) == listing_without_digests
    assert [name for event, name in backend.events if event == "download"] == ["catalog.yaml"]


def test_deep_trusts_only_the_downloaded_bytes(data_dir, published):
    # The listing still vouches for the old MD5: only reading the bytes finds the change.
    original = published.remote_files
    stale = original(plan_from_catalog(data_dir, data_dir / "catalog.yaml"))
    published.objects["t.tsv"] = published.objects["t.tsv"][:-1] + b"!"
    published.remote_files = lambda dataset: stale  # type: ignore[method-assign]

    assert verdicts(data_dir, published)["t.tsv"][0] is Verdict.SAME  # what trusting the listing says
    found = verdicts(data_dir, published, deep=True)

    assert found["t.tsv"] == (Verdict.DIFFERENT, "content differs (same size; downloaded and hashed digest disagrees)")
    assert found["u.tsv"] == (Verdict.SAME, "same size and sha256 (downloaded and hashed)")
    assert sorted(name for event, name in published.events if event == "download") == sorted(
        ["a.pmtiles", "t.tsv", "u.tsv", "catalog.yaml"])

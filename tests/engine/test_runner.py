"""The runner against an in-memory backend: order, decisions, verification, retries, interrupts; no server."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import pytest

from tests.fake_backend import Faults, InMemoryBackend
from tests.pmtiles_files import pmtiles_bytes
from uploader.engine.operations import Action, Status
from uploader.engine.progress import Progress
from uploader.engine.runner import RunResult, run
from uploader.engine.settings import RunSettings
from uploader.errors import ExitStatus
from uploader.local.hash_cache import HashCache
from uploader.local.plan import UploadPlan, plan_from_catalog

CATALOG = "id: ds\nassets:\n  sge: {all: a.pmtiles}\n  t: t.tsv\n  u: u.tsv\n"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    directory.mkdir()
    (directory / "catalog.yaml").write_text(CATALOG)
    (directory / "a.pmtiles").write_bytes(pmtiles_bytes(b"a.pmtiles" * 100))
    for name in ("t.tsv", "u.tsv"):
        (directory / name).write_bytes(name.encode() * 100)
    return directory


def upload(data_dir: Path, backend: InMemoryBackend, **options: object) -> RunResult:
    plan = UploadPlan((plan_from_catalog(data_dir, data_dir / "catalog.yaml"),))
    backend.overwrite = bool(options.pop("overwrite", False))  # the backend's own options
    backend.deletes_unnamed = bool(options.pop("delete", False))
    backend.wanted_options = dict(options.pop("stored_options", {}))  # type: ignore[call-overload]
    settings = RunSettings(data_dir, **options)  # type: ignore[arg-type]
    return run(plan, backend, settings, HashCache(None), lambda total_bytes, total_files: Progress())


def statuses(result: RunResult) -> dict[str, Status]:
    return {op.destination: op.status for op in result.ops}


def last_run(backend: InMemoryBackend) -> list[tuple[str, str]]:
    """The events since the last run began writing."""
    return backend.events[len(backend.events) - backend.events[::-1].index(("begin", "")):]


def local_bytes(data_dir: Path) -> dict[str, bytes]:
    return {name: (data_dir / name).read_bytes() for name in ("a.pmtiles", "t.tsv", "u.tsv", "catalog.yaml")}


def test_every_file_is_sent_and_the_catalog_comes_last(data_dir):
    backend = InMemoryBackend()
    result = upload(data_dir, backend)

    assert result.exit_status is ExitStatus.OK
    assert backend.objects == local_bytes(data_dir)
    puts = [name for kind, name in backend.events if kind == "put"]
    assert puts[-1] == "catalog.yaml" and sorted(puts[:-1]) == ["a.pmtiles", "t.tsv", "u.tsv"]
    # the catalog goes only after a fresh listing showed every other file in place
    assert backend.events.index(("list", "")) < backend.events.index(("put", "a.pmtiles"))
    assert ("list", "") in backend.events[backend.events.index(("put", puts[-2])):]
    assert backend.events[-1] == ("finish", "ok")
    by_name = {op.destination: op for op in result.ops}
    assert by_name["t.tsv"].checksum == "sha256:" + hashlib.sha256(b"t.tsv" * 100).hexdigest()


def test_second_run_sends_nothing(data_dir):
    backend = InMemoryBackend()
    upload(data_dir, backend)
    result = upload(data_dir, backend)
    assert set(statuses(result).values()) == {Status.SKIPPED}
    assert all(count == 1 for count in backend.sends.values())
    assert {op.reason for op in result.ops} == {"unchanged (same size and MD5)"}


def test_same_size_change_is_replaced_and_size_change_says_so(data_dir):
    backend = InMemoryBackend()
    upload(data_dir, backend)
    (data_dir / "t.tsv").write_bytes(b"T" + (b"t.tsv" * 100)[1:])  # same size, other content
    (data_dir / "u.tsv").write_bytes(b"short")

    result = upload(data_dir, backend)

    reasons = {op.destination: (op.action, op.reason) for op in result.ops}
    assert reasons["t.tsv"] == (Action.REPLACE, "content differs (same size)")
    assert reasons["u.tsv"] == (Action.REPLACE, "size differs (remote 500 bytes)")
    assert reasons["a.pmtiles"][0] is Action.SKIP
    assert backend.objects["t.tsv"] == (data_dir / "t.tsv").read_bytes()
    assert backend.objects["u.tsv"] == b"short"


def test_a_digest_that_costs_a_request_is_asked_for_only_when_the_listing_does_not_tell(data_dir):
    backend = InMemoryBackend(sha256_on_request=True)  # the listing vouches for nothing
    upload(data_dir, backend)
    assert backend.requests_for_digests == 0  # nothing was there: no comparison needed

    result = upload(data_dir, backend)

    assert set(statuses(result).values()) == {Status.SKIPPED}
    assert backend.requests_for_digests == 4
    assert {op.reason for op in result.ops} == {"unchanged (same size and SHA-256)"}


class TwoDigestListing(InMemoryBackend):
    """A listing that vouches for an MD5 and a SHA-256 of t.tsv: the SHA-256 the one given (None: the right one)."""

    def __init__(self, sha256_of_t: str | None) -> None:
        super().__init__()
        self.sha256_of_t = sha256_of_t

    def remote_files(self, dataset):  # type: ignore[no-untyped-def]
        listing = super().remote_files(dataset)
        held = listing["t.tsv"]
        sha256 = self.sha256_of_t or hashlib.sha256(self.objects["t.tsv"]).hexdigest()
        listing["t.tsv"] = type(held)(held.name, held.size, {**held.digests, "sha256": sha256})
        return listing


def test_a_file_is_unchanged_only_when_every_digest_the_remote_vouches_for_agrees(data_dir):
    agreeing = TwoDigestListing(sha256_of_t=None)
    agreeing.objects["t.tsv"] = (data_dir / "t.tsv").read_bytes()
    one_differs = TwoDigestListing(sha256_of_t="0" * 64)  # the MD5 agrees, the SHA-256 does not
    one_differs.objects["t.tsv"] = (data_dir / "t.tsv").read_bytes()

    same = next(op for op in upload(data_dir, agreeing, dry_run=True).ops if op.destination == "t.tsv")
    replaced = next(op for op in upload(data_dir, one_differs, dry_run=True).ops if op.destination == "t.tsv")

    assert (same.action, same.reason) == (Action.SKIP, "unchanged (same size and MD5)")
    assert (replaced.action, replaced.reason) == (Action.REPLACE, "content differs (same size)")


def test_dry_run_decides_and_writes_nothing(data_dir):
    backend = InMemoryBackend()
    backend.objects["t.tsv"] = (data_dir / "t.tsv").read_bytes()
    result = upload(data_dir, backend, dry_run=True)

    assert result.dry_run and set(statuses(result).values()) == {Status.PLANNED}
    assert {op.destination: op.action for op in result.ops} == {
        "a.pmtiles": Action.UPLOAD, "t.tsv": Action.SKIP, "u.tsv": Action.UPLOAD, "catalog.yaml": Action.UPLOAD}
    assert not any(kind in ("put", "delete", "begin") for kind, _ in backend.events)


def test_restart_sends_everything_and_empties_the_remote_where_the_backend_says_so(data_dir):
    keep = InMemoryBackend()
    upload(data_dir, keep)
    keep.objects["other.tsv"] = b"someone's"
    result = upload(data_dir, keep, restart=True)
    assert set(statuses(result).values()) == {Status.UPLOADED}
    assert "other.tsv" in keep.objects

    empty = InMemoryBackend(restart_empties_remote=True)
    upload(data_dir, empty)
    empty.objects["old.tsv"] = b"old"
    result = upload(data_dir, empty, restart=True)
    assert statuses(result)["old.tsv"] is Status.DELETED
    assert empty.objects == local_bytes(data_dir)
    writes = [kind for kind, _ in last_run(empty) if kind in ("put", "delete")]
    assert writes == ["delete"] * 5 + ["put"] * 4  # the remote is emptied first


def test_a_remote_that_holds_only_the_plan_loses_files_the_dataset_does_not_have(data_dir):
    exact = InMemoryBackend(holds_only_the_plan=True, catalogs_go_live=False)
    upload(data_dir, exact)
    exact.objects["old.tsv"] = b"old"

    dry = upload(data_dir, exact, dry_run=True)
    result = upload(data_dir, exact)

    removal = [(op.action, op.reason) for op in dry.ops if op.destination == "old.tsv"]
    assert removal == [(Action.DELETE, "on the remote, not in this dataset")]
    assert statuses(result)["old.tsv"] is Status.DELETED and exact.objects == local_bytes(data_dir)
    writes = [kind for kind, _ in last_run(exact) if kind in ("put", "delete")]
    assert writes == ["delete"]  # before anything is sent; the unchanged files stay as they are

    others_stay = InMemoryBackend()
    upload(data_dir, others_stay)
    others_stay.objects["other.tsv"] = b"someone's"
    upload(data_dir, others_stay)
    assert "other.tsv" in others_stay.objects


def test_overwrite_replaces_unchanged_files(data_dir):
    backend = InMemoryBackend()
    upload(data_dir, backend)
    result = upload(data_dir, backend, overwrite=True)
    assert {op.reason for op in result.ops if op.transfers_bytes} == {"--overwrite"}
    assert all(count == 2 for count in backend.sends.values())


def test_a_failed_file_withholds_the_catalog_and_the_others_go_on(data_dir):
    backend = InMemoryBackend(faults=Faults(refuse={"t.tsv"}))
    result = upload(data_dir, backend)

    assert result.exit_status is ExitStatus.FILES_FAILED
    assert set(backend.objects) == {"a.pmtiles", "u.tsv"}
    assert statuses(result)["catalog.yaml"] is Status.FAILED
    assert "1 file(s) of this dataset failed" in {op.destination: op for op in result.ops}["catalog.yaml"].error
    assert backend.sends["t.tsv"] == 1  # a final refusal is not retried
    assert backend.events[-1] == ("finish", "failed")


def test_bytes_that_arrive_wrong_are_sent_again(data_dir):
    backend = InMemoryBackend(faults=Faults(corrupt={"a.pmtiles": 2}))
    result = upload(data_dir, backend)
    assert result.exit_status is ExitStatus.OK
    assert backend.sends["a.pmtiles"] == 3
    assert backend.objects["a.pmtiles"] == (data_dir / "a.pmtiles").read_bytes()


def test_bytes_that_keep_arriving_wrong_fail_the_file_after_three_attempts(data_dir):
    backend = InMemoryBackend(faults=Faults(corrupt={"a.pmtiles": 10}))
    result = upload(data_dir, backend)
    assert backend.sends["a.pmtiles"] == 3
    failed = {op.destination: op for op in result.ops}["a.pmtiles"]
    assert failed.status is Status.FAILED and "verification failed" in failed.error
    assert "catalog.yaml" not in backend.objects


def test_a_file_changed_in_the_remote_before_the_catalog_withholds_it(data_dir):
    backend = InMemoryBackend()

    def meddle() -> None:
        backend.objects["t.tsv"] = b"someone else wrote this" * 30

    # Someone else writes just before the listing the runner takes ahead of the catalog.
    real_remote_files = backend.remote_files
    calls = []

    def listing_after_meddling(dataset):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            meddle()
        return real_remote_files(dataset)

    backend.remote_files = listing_after_meddling  # type: ignore[method-assign]
    result = upload(data_dir, backend)

    catalog = {op.destination: op for op in result.ops}["catalog.yaml"]
    assert catalog.status is Status.FAILED and "not in place as uploaded (e.g. t.tsv)" in catalog.error
    assert "catalog.yaml" not in backend.objects


def test_a_file_changed_on_disk_after_planning_is_not_sent(data_dir):
    backend = InMemoryBackend()
    plan = UploadPlan((plan_from_catalog(data_dir, data_dir / "catalog.yaml"),))
    (data_dir / "u.tsv").write_bytes(b"changed after planning")
    result = run(plan, backend, RunSettings(n_jobs=2), HashCache(None), lambda b, f: Progress())
    op = {op.destination: op for op in result.ops}["u.tsv"]
    assert op.status is Status.FAILED and "changed on disk" in op.error
    assert "u.tsv" not in backend.objects and "catalog.yaml" not in backend.objects


def test_a_cached_digest_never_skips_a_file_that_changed_since_it_was_planned(data_dir, tmp_path):
    """The cache answers for the file as planned; a file rewritten since then (same size) is not skipped."""
    backend = InMemoryBackend()
    cache = HashCache(tmp_path / "cache")
    plan = UploadPlan((plan_from_catalog(data_dir, data_dir / "catalog.yaml"),))
    assert run(plan, backend, RunSettings(n_jobs=2), cache, lambda b, f: Progress()).ok
    planned_again = UploadPlan((plan_from_catalog(data_dir, data_dir / "catalog.yaml"),))
    (data_dir / "t.tsv").write_bytes(b"T" + (b"t.tsv" * 100)[1:])  # same size, new content, after planning

    result = run(planned_again, backend, RunSettings(n_jobs=2), cache, lambda b, f: Progress())

    op = {op.destination: op for op in result.ops}["t.tsv"]
    assert op.action is Action.REPLACE and op.reason == "changed on disk since it was planned"
    assert op.status is Status.FAILED and "changed on disk" in op.error
    assert result.exit_status is ExitStatus.FILES_FAILED  # not "skipped", not published over the old bytes
    assert statuses(result)["a.pmtiles"] is Status.SKIPPED
    assert backend.objects["t.tsv"] == b"t.tsv" * 100  # the old bytes stay, and the run says so


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_an_interrupt_stops_at_once_keeps_finished_files_and_withholds_the_catalog(data_dir, sig):
    from uploader.cli.main import _raise_keyboard_interrupt

    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        backend = InMemoryBackend(faults=Faults(slow={"u.tsv": 30.0}))
        backend.faults.on_send["t.tsv"] = lambda: os.kill(os.getpid(), sig)
        result = upload(data_dir, backend, n_jobs=1)
    finally:
        signal.signal(signal.SIGTERM, previous)

    assert result.interrupted and result.exit_status is ExitStatus.INTERRUPTED
    assert backend.cancelled
    assert result.elapsed < 10  # the 30-second send was stopped, not waited for
    assert "catalog.yaml" not in backend.objects
    assert statuses(result)["catalog.yaml"] is Status.NOT_RUN
    assert not any(kind == "finish" for kind, _ in backend.events)


def test_collection_datasets_go_under_their_subdirs(tmp_path, data_dir):
    from uploader.local.plan import plan_collection

    (tmp_path / "samples.tsv").write_text("data\n")
    plan = plan_collection(tmp_path, tmp_path / "samples.tsv")
    backend = InMemoryBackend()
    result = run(plan, backend, RunSettings(n_jobs=2), HashCache(None), lambda b, f: Progress())
    assert result.ok
    assert set(backend.objects) == {"ds/a.pmtiles", "ds/t.tsv", "ds/u.tsv", "ds/catalog.yaml"}


# -- a live catalog is never over a mix of versions -------------------------------------------------


class LiveCatalogWatch:
    """Checks, at every write, that a catalog on the remote names only files with the bytes it was published with."""

    def __init__(self, backend: InMemoryBackend) -> None:
        self.backend = backend
        self.published: dict[str, bytes] = {}
        self.violations: list[str] = []

    def publish_now(self) -> None:
        """Record the remote as it is now as the published version."""
        self.published = dict(self.backend.objects)

    def check(self) -> None:
        from uploader.local.catalog import file_names_in

        objects = self.backend.objects
        if "catalog.yaml" not in objects:
            return
        names = file_names_in(objects["catalog.yaml"]) or frozenset()
        if objects["catalog.yaml"] == self.published.get("catalog.yaml"):
            self.violations += [name for name in names if objects.get(name) != self.published.get(name)]


def watched(backend: InMemoryBackend) -> LiveCatalogWatch:
    watch = LiveCatalogWatch(backend)
    real_send, real_delete = backend.send, backend.delete

    def send(op, digests, progress, stop):  # type: ignore[no-untyped-def]
        stored = real_send(op, digests, progress, stop)
        if op.is_catalog:
            watch.publish_now()  # storing the catalog is what publishes the files as they are now
        watch.check()
        return stored

    def delete(op):  # type: ignore[no-untyped-def]
        real_delete(op)
        watch.check()

    backend.send, backend.delete = send, delete  # type: ignore[method-assign]
    return watch


def test_an_update_withdraws_the_live_catalog_first_and_publishes_it_last(data_dir):
    backend = InMemoryBackend()
    upload(data_dir, backend)
    watch = watched(backend)
    watch.publish_now()
    (data_dir / "t.tsv").write_bytes(b"new table")

    result = upload(data_dir, backend)

    assert result.exit_status is ExitStatus.OK and not result.offline
    writes = [event for event in last_run(backend) if event[0] in ("put", "delete")]
    assert writes == [("delete", "catalog.yaml"), ("put", "t.tsv"), ("put", "catalog.yaml")]
    assert watch.violations == []
    assert backend.objects == local_bytes(data_dir)


def test_a_failed_update_leaves_the_dataset_offline_and_says_so(data_dir):
    backend = InMemoryBackend()
    upload(data_dir, backend)
    watch = watched(backend)
    watch.publish_now()
    (data_dir / "t.tsv").write_bytes(b"new table")
    (data_dir / "u.tsv").write_bytes(b"new other table")
    backend.faults.refuse = {"u.tsv"}

    result = upload(data_dir, backend)

    assert result.exit_status is ExitStatus.OFFLINE
    assert result.offline == ["catalog.yaml"]
    assert "catalog.yaml" not in backend.objects  # never a catalog over 1 new and 1 old file
    assert watch.violations == []

    backend.faults.refuse = set()
    again = upload(data_dir, backend)  # the re-run completes it
    assert again.exit_status is ExitStatus.OK and backend.objects == local_bytes(data_dir)


def test_additions_the_live_catalog_does_not_name_need_no_withdrawal(data_dir):
    backend = InMemoryBackend()
    upload(data_dir, backend)
    (data_dir / "new.tsv").write_text("added later\n")
    (data_dir / "catalog.yaml").write_text(CATALOG + "  v: new.tsv\n")

    result = upload(data_dir, backend)

    assert result.exit_status is ExitStatus.OK
    assert not any(op.action is Action.DELETE for op in result.ops)
    assert backend.objects["catalog.yaml"] == (data_dir / "catalog.yaml").read_bytes()


def test_a_run_with_nothing_to_replace_does_not_read_the_live_catalog(data_dir):
    backend = InMemoryBackend()
    upload(data_dir, backend)
    upload(data_dir, backend)
    assert not any(kind == "read" for kind, _ in backend.events)


def test_a_live_catalog_that_cannot_be_withdrawn_keeps_its_files(data_dir):
    backend = InMemoryBackend()
    upload(data_dir, backend)
    published = dict(backend.objects)
    (data_dir / "t.tsv").write_bytes(b"new table")
    (data_dir / "new.tsv").write_text("added\n")
    (data_dir / "catalog.yaml").write_text(CATALOG + "  v: new.tsv\n")
    backend.faults.refuse = {"catalog.yaml"}

    result = upload(data_dir, backend)

    assert result.exit_status is ExitStatus.FILES_FAILED and not result.offline
    assert backend.objects["t.tsv"] == published["t.tsv"]
    assert backend.objects["catalog.yaml"] == published["catalog.yaml"]
    assert "could not be withdrawn" in {op.destination: op for op in result.ops if op.file}["t.tsv"].error


def test_an_interrupt_after_the_withdrawal_says_the_dataset_is_offline(data_dir):
    backend = InMemoryBackend()
    upload(data_dir, backend)
    (data_dir / "t.tsv").write_bytes(b"new table")
    backend.faults.on_send["t.tsv"] = lambda: os.kill(os.getpid(), signal.SIGINT)

    result = upload(data_dir, backend)

    assert result.exit_status is ExitStatus.INTERRUPTED  # 130 comes first in the table
    assert result.offline == ["catalog.yaml"]


# -- object options given on a re-run, and --delete ----------------------------------------------


def test_options_are_compared_only_when_given_and_a_difference_updates_in_place(data_dir):
    backend = InMemoryBackend(object_options={"--cache-control": "max-age=60"})
    upload(data_dir, backend)
    upload(data_dir, backend)
    assert backend.requests_for_options == 0  # a plain re-run: one listing, no request per file

    result = upload(data_dir, backend, stored_options={"--cache-control": "no-cache"})

    assert backend.requests_for_options == 4
    assert {op.action for op in result.ops} == {Action.UPDATE}
    assert {op.reason for op in result.ops} == {"update in place: --cache-control no-cache (remote: max-age=60)"}
    assert set(statuses(result).values()) == {Status.UPDATED} and result.exit_status is ExitStatus.OK
    assert set(backend.sends.values()) == {1}  # no byte sent again...
    assert [kind for kind, _ in last_run(backend) if kind in ("put", "delete")] == []
    assert {name: held["--cache-control"] for name, held in backend.options.items()} == dict.fromkeys(
        local_bytes(data_dir), "no-cache")  # ...and every object holds the new value
    assert [name for kind, name in last_run(backend) if kind == "update"][-1] == "catalog.yaml"  # the catalog last

    again = upload(data_dir, backend, stored_options={"--cache-control": "no-cache"})
    assert set(statuses(again).values()) == {Status.SKIPPED}


def test_headers_readers_depend_on_are_compared_on_every_run_and_repaired_in_place(data_dir):
    backend = InMemoryBackend()
    backend.archive_headers = {"Content-Encoding": ""}  # as S3: none on an archive the viewer reads by ranges
    upload(data_dir, backend)
    backend.options["a.pmtiles"]["Content-Encoding"] = "gzip"  # another tool stored the same bytes so

    result = upload(data_dir, backend)  # a plain re-run: no option given

    assert backend.requests_for_options == 1  # the one archive asked, no other file
    actions = {op.destination: (op.action, op.reason) for op in result.ops}
    assert actions["a.pmtiles"] == (Action.UPDATE, "update in place: Content-Encoding none (remote: gzip)")
    assert {action for name, (action, _) in actions.items() if name != "a.pmtiles"} == {Action.SKIP}
    assert backend.options["a.pmtiles"]["Content-Encoding"] == "" and backend.sends["a.pmtiles"] == 1  # no bytes
    again = upload(data_dir, backend)
    assert set(statuses(again).values()) == {Status.SKIPPED}


def test_a_changed_file_is_sent_with_its_options_not_updated(data_dir):
    backend = InMemoryBackend()
    upload(data_dir, backend)
    (data_dir / "t.tsv").write_bytes(b"new content")
    backend.object_options = {"--acl": "public-read"}

    result = upload(data_dir, backend, stored_options={"--acl": "public-read"})

    actions = {op.destination: op.action for op in result.ops}
    assert actions["t.tsv"] is Action.REPLACE and actions["a.pmtiles"] is Action.UPDATE
    assert actions["catalog.yaml"] is Action.REPLACE  # it names a replaced file: published again, not updated
    assert backend.options["t.tsv"] == {"--acl": "public-read"} == backend.options["a.pmtiles"]


def test_dry_run_shows_updates_and_changes_nothing(data_dir):
    import io

    from uploader.engine.report import print_plan

    backend = InMemoryBackend()
    upload(data_dir, backend)
    result = upload(data_dir, backend, dry_run=True, stored_options={"--storage-class": "STANDARD_IA"})

    assert {op.action for op in result.ops} == {Action.UPDATE} and backend.options["t.tsv"] == {}
    shown = io.StringIO()
    print_plan(result.ops, shown)
    out = shown.getvalue()
    assert "update              500  t.tsv  (update in place: --storage-class STANDARD_IA (remote: none))" in out
    assert "0 file(s) to upload (0 B), 4 to update in place, 0 unchanged, 0 to delete" in out


def stray_objects(backend: InMemoryBackend) -> None:
    backend.objects.update({"old.pmtiles": b"old", "tmp/scratch.tsv": b"x", "histology.pmtiles": b"h",
                            "nested/catalog.yaml": b"assets: {}", "nested/n.pmtiles": b"n"})


def test_delete_removes_what_the_catalog_does_not_name_after_it_is_published(data_dir):
    (data_dir / "catalog.yaml").write_text(CATALOG + "later: histology.pmtiles\n")  # named, not a file here
    backend = InMemoryBackend()
    stray_objects(backend)

    result = upload(data_dir, backend, delete=True)

    assert result.exit_status is ExitStatus.OK
    deleted = [name for kind, name in backend.events if kind == "delete"]
    assert sorted(deleted) == ["old.pmtiles", "tmp/scratch.tsv"]
    assert backend.events.index(("put", "catalog.yaml")) < backend.events.index(("delete", deleted[0]))
    # kept: every file the catalog names (a present one or not), and a dataset nested below with its own catalog
    assert set(backend.objects) == {*local_bytes(data_dir), "histology.pmtiles", "nested/catalog.yaml",
                                    "nested/n.pmtiles"}
    removals = [op for op in result.ops if op.action is Action.DELETE]
    assert {op.status for op in removals} == {Status.DELETED}
    assert {op.reason for op in removals} == {
        "not named by the catalog (--delete): deleted once the catalog is published"}


def test_delete_waits_for_the_catalog_and_deletes_nothing_when_it_is_not_published(data_dir):
    backend = InMemoryBackend(faults=Faults(refuse={"t.tsv"}))
    stray_objects(backend)

    result = upload(data_dir, backend, delete=True)

    assert statuses(result)["catalog.yaml"] is Status.FAILED
    assert {statuses(result)[name] for name in ("old.pmtiles", "tmp/scratch.tsv")} == {Status.NOT_RUN}
    assert "old.pmtiles" in backend.objects and not any(kind == "delete" for kind, _ in backend.events)


def test_delete_in_a_dry_run_lists_the_deletions_last_and_deletes_nothing(data_dir):
    backend = InMemoryBackend()
    upload(data_dir, backend)
    stray_objects(backend)

    result = upload(data_dir, backend, delete=True, dry_run=True)

    assert [op.destination for op in result.ops if op.action is Action.DELETE] == [
        "histology.pmtiles", "old.pmtiles", "tmp/scratch.tsv"]
    assert [op.action for op in result.ops][-3:] == [Action.DELETE] * 3
    assert "old.pmtiles" in backend.objects


def test_delete_in_a_collection_never_reaches_another_samples_prefix(tmp_path):
    parent = tmp_path / "collection"
    for sample, catalog_id in (("A", "lung"), ("B", "lung/part2")):  # one sample's prefix inside the other's
        directory = parent / sample
        directory.mkdir(parents=True)
        (directory / "catalog.yaml").write_text(f"id: {catalog_id}\nassets:\n  t: t.tsv\n")
        (directory / "t.tsv").write_text(sample)
    samples = tmp_path / "samples.tsv"
    samples.write_text("A\nB\n")
    backend = InMemoryBackend()
    backend.objects.update({"lung/old.tsv": b"x", "lung/part2/old.tsv": b"y", "other/x.tsv": b"z"})
    from uploader.local.plan import plan_collection

    plan = plan_collection(parent, samples)
    backend.deletes_unnamed = True  # --delete
    result = run(plan, backend, RunSettings(n_jobs=2), HashCache(None), lambda b, f: Progress())

    assert result.exit_status is ExitStatus.OK
    assert sorted(name for kind, name in backend.events if kind == "delete") == ["lung/old.tsv", "lung/part2/old.tsv"]
    assert set(backend.objects) == {"lung/t.tsv", "lung/catalog.yaml", "lung/part2/t.tsv", "lung/part2/catalog.yaml",
                                    "other/x.tsv"}


def test_a_deletion_that_fails_fails_the_run_but_leaves_the_catalog_published(data_dir):
    from uploader.engine.report import report_document

    backend = InMemoryBackend(faults=Faults(refuse={"old.pmtiles"}))
    stray_objects(backend)

    result = upload(data_dir, backend, delete=True)

    assert statuses(result)["catalog.yaml"] is Status.UPLOADED and statuses(result)["old.pmtiles"] is Status.FAILED
    assert result.exit_status is ExitStatus.FILES_FAILED and result.catalogs_published
    assert report_document(result, "cmd", "dest")["error"] == "1 file(s) failed; the catalog is published"

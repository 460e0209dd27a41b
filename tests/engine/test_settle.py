"""A catalog update cut short takes the store's word (engine/settle.py), with the in-memory backend."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.fake_backend import InMemoryBackend
from uploader.engine.operations import Action, Operation, RemoteFile, Status
from uploader.engine.settle import BEFORE, NONE, OTHER, OURS, UNKNOWN, settle_catalogs_in_doubt
from uploader.local.hash_cache import HashCache
from uploader.local.plan import Dataset, LocalFile


def catalog_op(tmp_path: Path, action: Action, before: bytes | None) -> Operation:
    path = tmp_path / "catalog.yaml"
    path.write_bytes(b"assets: {new: 1}\n")
    info = path.stat()
    file = LocalFile("catalog.yaml", path, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)
    dataset = Dataset(tmp_path, "", (), file)
    remote = None if before is None else RemoteFile("catalog.yaml", len(before),
                                                    {"md5": hashlib.md5(before).hexdigest()})
    op = Operation(action, dataset, file if action is not Action.DELETE else None, "catalog.yaml", "x",
                   is_catalog=True, remote=remote, status=Status.NOT_RUN)
    op.in_doubt = True
    return op


@pytest.mark.parametrize(("action", "held", "said", "status"), [
    (Action.REPLACE, b"assets: {new: 1}\n", OURS, Status.UPLOADED),
    (Action.REPLACE, b"assets: {old: 1}\n", BEFORE, Status.NOT_RUN),
    (Action.REPLACE, None, NONE, Status.NOT_RUN),
    (Action.REPLACE, b"assets: {someone: else}\n", OTHER, Status.NOT_RUN),
    (Action.DELETE, None, NONE, Status.DELETED),
    (Action.DELETE, b"assets: {old: 1}\n", BEFORE, Status.NOT_RUN),
], ids=["ours", "before", "none", "other", "withdrawn", "not-withdrawn"])
def test_the_store_says_what_is_there(tmp_path, action, held, said, status):
    backend = InMemoryBackend()
    if held is not None:
        backend.objects["catalog.yaml"] = held
    op = catalog_op(tmp_path, action, before=b"assets: {old: 1}\n")

    settle_catalogs_in_doubt([op], backend, HashCache(None))

    assert (op.store_says, op.status) == (said, status)
    assert backend.events.count(("now_at", "catalog.yaml")) == 1  # one question


def test_a_store_that_does_not_answer_in_time_leaves_it_unknown(tmp_path):
    backend = InMemoryBackend()
    backend.now_at = lambda name: __import__("time").sleep(5)  # type: ignore[method-assign]
    op = catalog_op(tmp_path, Action.REPLACE, before=None)

    settle_catalogs_in_doubt([op], backend, HashCache(None), wait=0.2)

    assert op.store_says.startswith(UNKNOWN) and "no answer within 0.2 s" in op.store_says
    assert op.status is Status.NOT_RUN and op.in_doubt


def test_only_catalogs_in_doubt_are_asked_about_and_never_where_catalogs_are_not_live(tmp_path):
    backend = InMemoryBackend(catalogs_go_live=False)
    op = catalog_op(tmp_path, Action.REPLACE, before=None)
    settle_catalogs_in_doubt([op], backend, HashCache(None))
    assert op.store_says == "" and ("now_at", "catalog.yaml") not in backend.events
    live = InMemoryBackend()
    op.in_doubt = False
    settle_catalogs_in_doubt([op], live, HashCache(None))
    assert ("now_at", "catalog.yaml") not in live.events

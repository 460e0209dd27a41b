"""Deciding what to send: each planned file against what the remote holds, in one place for every backend.

The rule of "unchanged": the remote copy has the same size and a digest the
remote vouches for equals the local file's (a same-size change is caught, an
older mtime fools nothing). The listing's digests are tried first; only when
they do not settle it is a request spent on more (e.g. a HEAD for the stored
SHA-256). `--restart` and `--overwrite` are applied here too.

A catalog that is live (public the moment it is on the remote, as on S3)
vouches for the bytes of every file it names. When this run would replace
or delete one of those files, the live catalog is withdrawn first (a DELETE
that runs before any file is sent) and the new one published last, so that
whenever a catalog is there, its files are the ones it was published with.

Object options given on the run (e.g. --cache-control) are compared with
what each unchanged file is stored with, a request each, and only when
given: a plain re-run stays one listing. A file stored with other values is
updated in place (UPDATE), its bytes not sent again.

A remote that must hold exactly the plan (a Zenodo record: a new version
inherits every file of the previous one) gets a DELETE, run before anything is
sent, for each file there the plan does not name: "in version 1, not in this
dataset".

`--delete` adds a DELETE for every remote file under a dataset's prefix that
its catalog does not name; they run after the catalog is published.

A collection's root catalog names the samples' catalogs: it is withdrawn
too when one of them is.

With --shard, another worker may withdraw or publish a catalog while this
one runs: each catalog is then decided again from the listing taken just
before it would be published (`Operation.recheck`).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from uploader.engine.backend import Backend
from uploader.engine.operations import Action, Operation, RemoteFile
from uploader.errors import InputError
from uploader.local.catalog import file_names_in
from uploader.local.hashing import HashCache, digest_files, digests, is_digest_name
from uploader.local.plan import CATALOG_NAME, Dataset, UploadPlan

DIGEST_LABELS = {"md5": "MD5", "sha256": "SHA-256", "multipart-etag": "MD5"}


def decide(plan: UploadPlan, listings: dict[str, dict[str, RemoteFile]], backend: Backend,
           restart: bool, cache: HashCache, workers: int) -> list[Operation]:
    """One operation per planned file (and per remote file to delete), in the plan's order.

    `listings` holds the remote files of each dataset, by the dataset's subdir; `restart`: send every file again.
    """
    by_dataset = [_dataset_operations(dataset, listings[dataset.subdir], backend, restart)
                  for dataset in plan.datasets]
    same_size = [op for ops in by_dataset for op in ops if op.action is Action.REPLACE and op.reason == SAME_SIZE]
    _settle_by_content(same_size, backend, cache, workers)
    if wanted := backend.wanted_options:
        unchanged = [op for ops in by_dataset for op in ops if op.action is Action.SKIP]
        _update_where_options_differ(unchanged, backend, wanted, workers)
    if backend.catalogs_go_live:
        by_dataset = [ops if ops and ops[0].dataset.collection_root else _withdraw_live_catalog(ops, backend)
                      for ops in by_dataset]
        # The root's catalog names the samples' catalogs: it goes when they do (after them in the plan).
        changing = {op.destination for ops in by_dataset for op in ops if _changes(op)}
        by_dataset = [_withdraw_live_catalog(ops, backend, changing) if ops and ops[0].dataset.collection_root
                      else ops for ops in by_dataset]
    if plan.share is not None:
        for ops in by_dataset:
            for op in ops:
                op.recheck = op.is_catalog and op.action is not Action.DELETE
    if backend.deletes_unnamed:
        by_dataset = [ops + _removals(dataset, listings[dataset.subdir], backend, plan)
                      for dataset, ops in zip(plan.datasets, by_dataset, strict=True)]
    return [op for ops in by_dataset for op in ops]


SAME_SIZE = "same size"


def not_in_this_dataset(remote: RemoteFile) -> str:
    """Why a file on a remote that must hold exactly the plan is removed: e.g. 'in version 1, not in this dataset'."""
    return f"{remote.origin or 'on the remote'}, not in this dataset"


def _dataset_operations(dataset: Dataset, remote: dict[str, RemoteFile], backend: Backend,
                        restart: bool) -> list[Operation]:
    ops: list[Operation] = []
    if restart and backend.restart_empties_remote:
        ops += [Operation(Action.DELETE, dataset, None, name, "--restart: empty the remote first", remote=found)
                for name, found in remote.items()]
        remote = {}
    elif backend.holds_only_the_plan:
        planned = {backend.destination(dataset, file.name) for file in dataset.all_files}
        ops += [Operation(Action.DELETE, dataset, None, name, not_in_this_dataset(found), remote=found)
                for name, found in sorted(remote.items()) if name not in planned]
    for file in dataset.all_files:
        destination = backend.destination(dataset, file.name)
        found = remote.get(destination)
        op = Operation(Action.UPLOAD, dataset, file, destination, "new", is_catalog=file is dataset.catalog,
                       remote=found)
        if found is None:
            op.reason = "--restart" if restart else "new"
        elif restart or backend.overwrite:
            op.action, op.reason = Action.REPLACE, "--restart" if restart else "--overwrite"
        elif found.size != file.size:
            op.action, op.reason = Action.REPLACE, f"size differs (remote {found.size:,d} bytes)"
        else:
            op.action, op.reason = Action.REPLACE, SAME_SIZE  # settled by content below
        ops.append(op)
    return ops


def _settle_by_content(ops: list[Operation], backend: Backend, cache: HashCache, workers: int) -> None:
    """Same size on both sides: skip the file if a digest proves the content equal, else replace it."""
    jobs = []
    for op in ops:
        assert op.file is not None and op.remote is not None
        vouched = [name for name in op.remote.digests if is_digest_name(name)]
        jobs.append((op.file, (*backend.digests_to_send(op.file), *vouched)))
    for op, local in zip(ops, digest_files(jobs, cache, workers), strict=True):
        op.digests.update(local)
        assert op.remote is not None and op.file is not None
        proof = _equal_digest(op.remote.digests, local)
        if proof is None:
            more = backend.digests_on_request(op.remote)
            if more:
                local = op.digests | _local_digests(op, more, cache)
                proof = _equal_digest(more, local)
        if proof is None:
            op.reason = "content differs (same size)"
        elif not op.file.unchanged_on_disk():
            # The local digest may be the cache's, for the file as planned: it proves nothing about
            # the file now. Sending it again finds the change (and fails it: re-run).
            op.reason = "changed on disk since it was planned"
        else:
            op.action, op.reason = Action.SKIP, f"unchanged (same size and {DIGEST_LABELS[proof.split(':')[0]]})"


def _update_where_options_differ(ops: list[Operation], backend: Backend, wanted: Mapping[str, str],
                                 workers: int) -> None:
    """Unchanged files stored with other values of the options given: updated in place (asked side by side)."""
    if not ops:
        return
    with ThreadPoolExecutor(min(workers, len(ops)), thread_name_prefix="options") as pool:
        stored = list(pool.map(lambda op: backend.stored_options(_remote_of(op), wanted), ops))
    for op, found in zip(ops, stored, strict=True):
        differing = {name: value for name, value in wanted.items() if found.get(name) != value}
        if differing:
            op.action, op.changes = Action.UPDATE, differing
            op.reason = "update in place: " + "; ".join(f"{name} {value} (remote: {found.get(name) or 'none'})"
                                                        for name, value in differing.items())


def _remote_of(op: Operation) -> RemoteFile:
    assert op.remote is not None
    return op.remote


REMOVED = "not named by the catalog (--delete): deleted once the catalog is published"


def _removals(dataset: Dataset, remote: Mapping[str, RemoteFile], backend: Backend,
              plan: UploadPlan) -> list[Operation]:
    """A DELETE, run after the catalog is published, for each remote file of the dataset its catalog does not name.

    Only under the dataset's own prefix, and never under another dataset's: another sample of the plan,
    or a sub-directory holding a catalog of its own (a dataset nested there).
    """
    root = _key_prefix(dataset, backend)
    named = {backend.destination(dataset, name) for name in _names_in_catalog(dataset)}
    nested = {key[:-len(CATALOG_NAME)] for key in remote if key.endswith(f"/{CATALOG_NAME}")} - {root}
    inside = {_key_prefix(other, backend) for other in plan.datasets if other is not dataset}
    kept_below = nested | {prefix for prefix in inside if prefix.startswith(root) and prefix != root}
    return [Operation(Action.DELETE, dataset, None, key, REMOVED, remote=found, after_publish=True)
            for key, found in sorted(remote.items())
            if key not in named and key.startswith(root) and not any(key.startswith(kept) for kept in kept_below)]


def _key_prefix(dataset: Dataset, backend: Backend) -> str:
    """What every destination name of the dataset starts with: where a file '-' would go, less that name."""
    return backend.destination(dataset, "-")[:-1]


def _names_in_catalog(dataset: Dataset) -> set[str]:
    """Every name the dataset's catalog names, in any group, whether or not it is a file here."""
    names = {file.name for file in (*dataset.all_files, *dataset.others)}
    if dataset.catalog is not None:
        try:
            text = dataset.catalog.path.read_bytes()
        except OSError as exc:
            raise InputError([f"{dataset.catalog.path}: cannot be read again ({exc.strerror or exc})"]) from None
        names |= file_names_in(text) or set()
    return names


def _local_digests(op: Operation, remote_digests: Mapping[str, str], cache: HashCache) -> dict[str, str]:
    assert op.file is not None
    names = [name for name in remote_digests if is_digest_name(name) and name not in op.digests]
    found = digests(op.file, names, cache) if names else {}
    op.digests.update(found)
    return found


def _equal_digest(remote: Mapping[str, str], local: Mapping[str, str]) -> str | None:
    """The name of a digest both sides have with the same value, if any."""
    return next((name for name, value in remote.items() if local.get(name) == value), None)


WITHDRAWN = "withdrawn first: files it names are replaced; published again last"


def _changes(op: Operation) -> bool:
    """Whether `op` replaces or removes what is on the remote: a file, or a catalog (withdrawn or replaced)."""
    if op.is_catalog:
        return op.action in (Action.REPLACE, Action.DELETE)
    # A file that changed on disk since it was planned will not be sent (the runner fails it): it changes nothing.
    return op.action in (Action.REPLACE, Action.DELETE) and (op.file is None or op.file.unchanged_on_disk())


def _withdraw_live_catalog(ops: list[Operation], backend: Backend, elsewhere: set[str] | None = None
                           ) -> list[Operation]:
    """Prepend the withdrawal of a live catalog whose files this run replaces or deletes.

    `elsewhere`: what the run changes in other datasets, for a catalog that names their files (the root's).
    """
    catalog = next((op for op in ops if op.is_catalog), None)
    own = {op.destination for op in ops if not op.is_catalog and _changes(op)}
    changing = own | (elsewhere or set())
    if catalog is None or catalog.remote is None or not changing:
        return ops
    named = file_names_in(backend.read(catalog.remote))
    dataset = catalog.dataset
    vouched_for = None if named is None else {backend.destination(dataset, name) for name in named}
    if vouched_for is None and not own:
        return ops  # an unreadable live catalog is withdrawn for changes to its own dataset only
    if vouched_for is not None and not changing & vouched_for:
        return ops  # only additions: the live catalog stays right all along
    withdrawal = Operation(Action.DELETE, dataset, None, catalog.destination, WITHDRAWN, is_catalog=True,
                           remote=catalog.remote)
    if catalog.action in (Action.SKIP, Action.UPDATE):
        catalog.action, catalog.reason = Action.REPLACE, "published again after the files it names"
    return [withdrawal, *ops]

"""Every decision of what a run does with each file, before and during the run: the one module that decides.

Before the run, `decide` turns each planned file into an Operation against what
the remote holds: UPLOAD, REPLACE, SKIP, UPDATE or DELETE, with its reason
(the list --dry-run prints). During the run, the runner asks it which
operations each phase carries out, which are held back, and the executor asks
it, just before a catalog is sent, whether to publish it, let it wait, or skip
it; the executor itself only carries out, verifies and retries.

The one rule of "the same content": every digest the remote vouches for (in a
listing, a HEAD, a send's answer) equals the local file's, and a proof needs at
least one (`disagreeing_digest`); a same-size change is caught, an older mtime
fools nothing. The listing's digests are used first; only when it vouches for
none is a request spent on more (e.g. a HEAD for the stored SHA-256).
`--restart` and `--overwrite` are applied here too.

A catalog that is live (public the moment it is on the remote, as on S3)
vouches for the bytes of every file it names. When this run would replace
or delete one of those files, the live catalog is withdrawn first (a DELETE
that runs before any file is sent) and the new one published last, so that
whenever a catalog is there, its files are the ones it was published with.
A live catalog that could not be withdrawn holds back the replacement of its
files.

Object options given on the run (e.g. --cache-control) are compared with
what each unchanged file is stored with, a request each, and only when
given; so are the headers readers depend on (`Backend.published_headers`:
on S3, the Content-Type and no Content-Encoding of the catalog and the
PMTiles archives the viewer reads by ranges), a request per such file on
every run: another tool may have stored the same bytes with a
`Content-Encoding: gzip` no browser can read. A file stored with other
values is updated in place (UPDATE), its bytes not sent again.

A remote that must hold exactly the plan (a Zenodo record: a new version
inherits every file of the previous one) gets a DELETE, run before anything is
sent, for each file there the plan does not name: "in version 1, not in this
dataset".

A catalog is published only when every other file of its dataset succeeded and
a fresh listing shows every file it names in place; a collection's root
catalog, after the samples' (and it is withdrawn too when one of them is).

`--delete` adds a DELETE for every remote file under a dataset's prefix that
its catalog does not name; they run once that catalog is published.

With --shard, another worker may withdraw or publish a catalog while this
one runs: each catalog is then decided again from the listing taken just
before it would be published (`Operation.recheck`).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from uploader.engine.backend import Backend
from uploader.engine.operations import PUBLISHED, Action, Operation, RemoteFile, Status
from uploader.errors import CatalogInPlace, CatalogWaits, FileUploadError, InputError
from uploader.local.catalog import file_names_in
from uploader.local.digests import digest_files, digests, is_digest_name
from uploader.local.hash_cache import HashCache
from uploader.local.plan import CATALOG_NAME, Dataset, LocalFile, UploadPlan

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
    unchanged = [op for ops in by_dataset for op in ops if op.action is Action.SKIP]
    _update_where_stored_differs(unchanged, backend, backend.wanted_options, workers)
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
    """Same size on both sides: skip the file if the digests prove the content equal, else replace it.

    The listing's digests are hashed side by side; only a file whose listing vouches for none costs a request
    for more (e.g. a HEAD's SHA-256).
    """
    jobs = []
    for op in ops:
        assert op.file is not None and op.remote is not None
        jobs.append((op.file, (*backend.digests_to_send(op.file), *vouched(op.remote.digests))))
    for op, local in zip(ops, digest_files(jobs, cache, workers), strict=True):
        op.digests.update(local)
        assert op.remote is not None and op.file is not None
        remote = vouched(op.remote.digests) or vouched(backend.digests_on_request(op.remote))
        _local_digests(op, remote, cache)
        if not remote or disagreeing_digest(remote, op.digests) is not None:
            op.reason = "content differs (same size)"
        elif not op.file.unchanged_on_disk():
            # The local digest may be the cache's, for the file as planned: it proves nothing about
            # the file now. Sending it again finds the change (and fails it: re-run).
            op.reason = "changed on disk since it was planned"
        else:
            label = DIGEST_LABELS[next(iter(remote)).split(":")[0]]
            op.action, op.reason = Action.SKIP, f"unchanged (same size and {label})"


def _update_where_stored_differs(ops: list[Operation], backend: Backend, options: Mapping[str, str],
                                 workers: int) -> None:
    """Unchanged files stored with other values of the options given, or other headers than this tool publishes
    (a Content-Encoding another tool set): updated in place, their bytes not sent again (asked side by side)."""
    wanted = {id(op): {**options, **backend.published_headers(_file_of(op))} for op in ops}
    asked = [op for op in ops if wanted[id(op)]]
    if not asked:
        return
    with ThreadPoolExecutor(min(workers, len(asked)), thread_name_prefix="options") as pool:
        stored = list(pool.map(lambda op: backend.stored_options(_remote_of(op), wanted[id(op)]), asked))
    for op, found in zip(asked, stored, strict=True):
        differing = {name: value for name, value in wanted[id(op)].items() if found.get(name, "") != value}
        if differing:
            op.action, op.changes = Action.UPDATE, differing
            op.reason = "update in place: " + "; ".join(
                f"{name} {value or 'none'} (remote: {found.get(name) or 'none'})" for name, value in differing.items())


def _file_of(op: Operation) -> LocalFile:
    assert op.file is not None
    return op.file


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


def _local_digests(op: Operation, remote_digests: Mapping[str, str], cache: HashCache) -> None:
    """The local file's digests of the names the remote vouches for that are not known yet, into `op.digests`."""
    assert op.file is not None
    names = [name for name in vouched(remote_digests) if name not in op.digests]
    if names:
        op.digests.update(digests(op.file, names, cache))


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


# -- the one equality rule ------------------------------------------------------------------------------


def vouched(remote_digests: Mapping[str, str]) -> dict[str, str]:
    """The digests among what the remote shows of a file (a listing, a HEAD, a send's answer)."""
    return {name: value for name, value in remote_digests.items() if is_digest_name(name)}


def disagreeing_digest(remote_digests: Mapping[str, str], local: Mapping[str, str]) -> str | None:
    """The rule of "the same content": every digest the remote vouches for equals the local file's.

    The first one that does not (by name), or None when all agree; `local` must hold each of them.
    """
    return next((name for name, value in vouched(remote_digests).items() if local[name] != value), None)


def _agrees(remote_digests: Mapping[str, str], file: LocalFile, cache: HashCache) -> bool:
    """No digest the remote vouches for differs from the local file's (hashed as needed)."""
    names = list(vouched(remote_digests))
    return disagreeing_digest(remote_digests, digests(file, names, cache) if names else {}) is None


def _proven_equal(remote_digests: Mapping[str, str], file: LocalFile, cache: HashCache) -> bool:
    """The remote vouches for at least one digest, and the rule holds."""
    return bool(vouched(remote_digests)) and _agrees(remote_digests, file, cache)


# -- during the run: what each phase carries out ---------------------------------------------------------


def work_of_the_run(ops: list[Operation]) -> list[Operation]:
    """The operations the run carries out; an unchanged file that needs no second look is skipped here."""
    for op in ops:
        if op.action is Action.SKIP and not op.recheck:
            op.status = Status.SKIPPED
    return [op for op in ops if op.action is not Action.SKIP or op.recheck]


def withdrawals(work: list[Operation]) -> list[Operation]:
    """What goes first: the deletions that do not wait for a catalog (live catalogs withdrawn, --restart)."""
    return [op for op in work if op.action is Action.DELETE and not op.after_publish]


def files_to_send(work: list[Operation]) -> list[Operation]:
    """Every file but the catalogs, still pending (not held back): sent, replaced or updated."""
    return [op for op in work if op.writes_file and not op.is_catalog and op.status is Status.PENDING]


def hold_back_where_withdrawal_failed(ops: list[Operation]) -> None:
    """A live catalog that could not be withdrawn keeps vouching for its files: replace none of them."""
    stuck = {op.dataset.subdir for op in ops if op.is_catalog and op.action is Action.DELETE
             and op.status is Status.FAILED}
    for op in ops:
        if op.dataset.subdir in stuck and op.action is Action.REPLACE:
            op.fail("not replaced: the live catalog naming it could not be withdrawn first; re-run")


def catalogs_ready_to_publish(ops: list[Operation], *, roots: bool) -> list[Operation]:
    """Each dataset's catalog (or, `roots`, a collection's root catalog), if every other file of that dataset
    succeeded, and for a root every sample's file and catalog it names; the rest are withheld.

    A root never waits for a sample of its own run that failed: that is the run's failure, told as one, and
    the same command resumes it.
    """
    ready = []
    for op in ops:
        if not op.is_catalog or not (op.writes_file or op.recheck) or op.dataset.collection_root is not roots:
            continue
        failed = [o for o in ops if o.dataset is op.dataset and not o.is_catalog and o.status is Status.FAILED]
        named = {file.name for file in op.dataset.others} if roots else set()
        withheld = [o for o in ops if o.file is not None and o.status is Status.FAILED
                    and f"{o.dataset.subdir}/{o.file.name}" in named]
        if failed:
            op.fail(f"not published: {len(failed)} file(s) of this dataset failed")
        elif withheld:
            op.fail(f"not published: {len(withheld)} file(s) of the samples it names failed or were not published"
                    f" (e.g. {withheld[0].destination})")
        else:
            ready.append(op)
    return ready


def removals_once_published(ops: list[Operation]) -> list[Operation]:
    """--delete's deletions of each dataset whose catalog is published; the others are left as they are."""
    published = [op.dataset for op in ops if op.is_catalog and op.action is not Action.DELETE
                 and op.status in PUBLISHED]
    ready = []
    for op in ops:
        if not op.after_publish:
            continue
        if any(op.dataset is dataset for dataset in published):
            ready.append(op)
        else:
            op.status, op.error = Status.NOT_RUN, "not deleted: the catalog was not published"
    return ready


# -- just before a catalog is sent -----------------------------------------------------------------------


def publish_or_wait(op: Operation, backend: Backend, cache: HashCache) -> None:
    """A catalog is sent only when a fresh listing shows every file it names in place (see confirm_in_place).

    With --shard (`op.recheck`) it is decided again from that listing: CatalogInPlace when another worker
    already published it as it is here, else it is sent, even if it was unchanged when this run began.
    """
    listing = confirm_in_place(op.dataset, backend, cache)
    if op.recheck:
        _decide_again(op, listing, cache)


def _decide_again(op: Operation, listing: dict[str, RemoteFile], cache: HashCache) -> None:
    """A catalog another worker may have published or withdrawn: skipped if there as it is here, else sent."""
    assert op.file is not None
    found = listing.get(op.destination)
    if found is not None and found.size == op.file.size and _proven_equal(found.digests, op.file, cache):
        raise CatalogInPlace("already published, as it is here (by another worker or an earlier run)")
    if op.action is Action.SKIP:  # there when this run began; withdrawn or replaced since
        op.action = Action.REPLACE if found else Action.UPLOAD
        op.reason = "published again: it was " + ("replaced" if found else "withdrawn") + " while this run went on"


def confirm_in_place(dataset: Dataset, backend: Backend, cache: HashCache) -> dict[str, RemoteFile]:
    """A fresh listing shows every file of a catalog's dataset with the size and digests it was verified with.

    Raises FileUploadError when a file this run sent is not in place as sent, CatalogWaits when a file another
    run sends is not there yet; returns the listing. Sizes are compared first: a file not sent yet is found
    without reading a single local file.
    """
    try:
        listing = backend.remote_files(dataset)
    except Exception as exc:  # the catalog waits: a listing that failed proves nothing
        raise FileUploadError(f"not published: cannot list the remote ({exc})", retryable=True) from None

    def missing(files: tuple[LocalFile, ...]) -> list[LocalFile]:
        return [file for file in files if (found := listing.get(backend.destination(dataset, file.name))) is None
                or found.size != file.size]

    def different(files: tuple[LocalFile, ...]) -> list[LocalFile]:
        return [file for file in files
                if not _agrees(listing[backend.destination(dataset, file.name)].digests, file, cache)]

    rewritten = [file.name for file in missing(dataset.files) if "\\" in file.name
                 and backend.destination(dataset, file.name.replace("\\", "/")) in listing]
    if rewritten:  # re-running never repairs this: the store itself changes the name
        key = backend.destination(dataset, rewritten[0])
        raise FileUploadError(f"not published: the store saved '{key}' as '{key.replace(chr(92), '/')}' (it turns"
                              " '\\' in keys into '/'), so the catalog's name would not be found; rename the file"
                              " without '\\' (and fix the catalog)")
    if wrong := missing(dataset.files) or different(dataset.files):
        raise FileUploadError(f"not published: {len(wrong)} file(s) are not in place as uploaded (e.g."
                              f" {wrong[0].name}); is something else writing there? Re-run to repair")
    if elsewhere := missing(dataset.checked_only):
        raise CatalogWaits(_waiting_reason(dataset, elsewhere))
    cache.read_again(dataset.checked_only)  # what the runs that sent them hashed meanwhile, in a shared cache
    if elsewhere := different(dataset.checked_only):
        raise CatalogWaits(_waiting_reason(dataset, elsewhere))
    return listing


def _waiting_reason(dataset: Dataset, missing: list[LocalFile]) -> str:
    first = missing[0]
    reason = (f"not published yet: {len(missing)} file(s) it names are not on the remote as they are here"
              f" (e.g. {first.name})")
    if first in dataset.other_shares:
        return (f"{reason}; other --shard workers send them: the last worker to finish publishes it (if a worker"
                " failed, re-run that one alone)")
    if dataset.collection_root and "/" in first.name:
        return f"{reason}; they are the samples': it is published after them, by the run that publishes the last"
    return (f"{reason} and belong to another upload group; it is published by the run that uploads them, or by the"
            " full upload (without --upload-*-only)")

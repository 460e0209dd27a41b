"""The last word on a catalog is the store's: a catalog update cut short is settled by asking what is there.

When a catalog's PUT or DELETE went out and no answer tells what the store
did (the run was interrupted, the request timed out or was cut), the store is
asked once (Backend.now_at, within CATALOG_ASK_SECONDS), and the operation
takes what it says: this run's catalog is live (published after all), the
one there before is live (never withdrawn), none is there (withdrawn), another
version is live, or the store did not tell (unknown, and said so).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping

from uploader.engine.backend import Backend
from uploader.engine.operations import Action, Operation, RemoteFile, Status
from uploader.local.digests import digests, is_digest_name
from uploader.local.hash_cache import HashCache

CATALOG_ASK_SECONDS = float(os.environ.get("CARTLOAD_UPLOADER_CATALOG_ASK_SECONDS", "5"))
OURS = "live: this run's catalog"
BEFORE = "live: the catalog that was there before this run (not withdrawn)"
OTHER = "live: another catalog (neither this run's nor the one there before)"
NONE = "withdrawn: no catalog is there"
UNKNOWN = "unknown: the store did not say what is there"


def settle_catalogs_in_doubt(ops: list[Operation], backend: Backend, cache: HashCache,
                             wait: float = CATALOG_ASK_SECONDS) -> None:
    """Each catalog whose update is in doubt takes the store's word (op.store_says, and its status)."""
    if not backend.catalogs_go_live:
        return
    for op in ops:
        if op.is_catalog and op.in_doubt and op.status not in (Status.UPLOADED, Status.DELETED):
            _settle(op, _ask(backend, op.destination, wait), cache)


def _ask(backend: Backend, name: str, wait: float) -> RemoteFile | Exception | None:
    """The store's answer, within `wait` seconds (a dead endpoint must not hold the end of the run)."""
    answer: list[RemoteFile | Exception | None] = [TimeoutError(f"no answer within {wait:g} s")]

    def ask() -> None:
        try:
            answer[0] = backend.now_at(name)
        except Exception as exc:
            answer[0] = exc

    asking = threading.Thread(target=ask, name="ask-the-store", daemon=True)
    asking.start()
    with contextlib.suppress(KeyboardInterrupt):  # asked to stop again: what is there stays unknown
        asking.join(wait)
    return answer[0]


def _settle(op: Operation, found: RemoteFile | Exception | None, cache: HashCache) -> None:
    if isinstance(found, Exception):
        op.store_says = f"{UNKNOWN} ({found})"
    elif found is None:
        op.store_says = NONE
        if op.action is Action.DELETE:
            op.status, op.error = Status.DELETED, ""
    elif op.file is not None and _same(found.digests, digests(op.file, _names(found.digests), cache)):
        op.store_says = OURS
        op.status, op.error = Status.UPLOADED, ""
    elif op.remote is not None and _same(found.digests, op.remote.digests):
        op.store_says = BEFORE
    else:
        op.store_says = OTHER
    op.in_doubt = isinstance(found, Exception)


def _names(vouched: Mapping[str, str]) -> list[str]:
    return [name for name in vouched if is_digest_name(name)]


def _same(vouched: Mapping[str, str], known: Mapping[str, str]) -> bool:
    """At least one digest the store vouches for, and every one of those, equal to the known ones."""
    names = [name for name in _names(vouched) if name in known]
    return bool(names) and all(vouched[name] == known[name] for name in names)

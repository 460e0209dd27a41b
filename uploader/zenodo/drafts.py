"""Finding a draft Zenodo has made, though its search index does not show it yet.

Zenodo's search lags seconds (sometimes more) behind a draft just made, so
"not found" right after a lost POST means little: these look again with
backoff for up to CARTLOAD_UPLOADER_ZENODO_SEARCH_WAIT seconds (searches are
paced at 30 a minute) before concluding that nothing was made.
"""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from uploader.errors import RemoteError
from uploader.zenodo import metadata
from uploader.zenodo.client import ZenodoClient
from uploader.zenodo.records import ZenodoDeposition

CLOCK_SLACK = timedelta(minutes=2)  # between this machine's clock and Zenodo's


def open_draft(client: ZenodoClient, record: ZenodoDeposition, *, wait: bool) -> ZenodoDeposition | None:
    """The unpublished draft of `record`'s concept: by the record's `latest_draft` link, else by a search."""
    deadline = time.monotonic() + (client.timing.search_wait if wait else 0.0)
    for attempt in itertools.count(1):
        linked = client.linked_draft(record)
        if linked is not None:
            return linked
        found = client.concept_drafts(record.conceptrecid)
        if found:
            return client.deposition(found[0].id)  # search results carry no bucket link
        if not _wait_again(client, attempt, deadline):
            return None
    raise AssertionError("unreachable")


def made_by_a_lost_create(client: ZenodoClient, title: str, since: datetime,
                          sent: dict[str, Any]) -> ZenodoDeposition | None:
    """The draft a create whose answer was lost made: unpublished, this title, made since `since`, holding no
    file and the metadata `sent` (a fresh same-title draft of other files or metadata is another run's).

    None when the search shows none within the wait (nothing was made: the create may be sent again). Several
    are a RemoteError naming them: which one this run made cannot be told.
    """
    deadline = time.monotonic() + client.timing.search_wait
    seen: dict[int, ZenodoDeposition] = {}
    for attempt in itertools.count(1):
        seen |= {d.id: d for d in client.drafts_titled(title) if _created(d) >= since - CLOCK_SLACK}
        if len(seen) == 1:
            found = client.deposition(next(iter(seen)))
            return None if found.files or metadata.changes(found.metadata, sent) else found
        if not _wait_again(client, attempt, deadline):
            break  # several: keep looking until the deadline, so that the message names them all
    if len(seen) > 1:
        ids = ", ".join(str(i) for i in sorted(seen))
        raise RemoteError(f"creating the deposition failed without an answer, and Zenodo now shows {len(seen)}"
                          f" unpublished depositions titled '{title}' made in the last minutes ({ids}); one is this"
                          " run's, and which cannot be told: keep one, pass its id with --zenodo-id, and delete the"
                          f" others on {client.host}/me/uploads")
    return None


def _wait_again(client: ZenodoClient, attempt: int, deadline: float) -> bool:
    left = deadline - time.monotonic()
    if left <= 0:
        return False
    client.http.wait(min(client.timing.backoff_delay(attempt), left))
    return True


def _created(deposition: ZenodoDeposition) -> datetime:
    try:
        created = datetime.fromisoformat(deposition.created)
    except ValueError:
        return datetime.now(timezone.utc)  # unknown: count it as recent
    return created if created.tzinfo else created.replace(tzinfo=timezone.utc)

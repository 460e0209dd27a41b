"""Which deposition is this dataset's, when no --zenodo-id names one.

A run goes on with an existing deposition only when it is provably this
dataset's (a title is not an identity: two datasets may share one):
- the deposition an earlier run of this command made, remembered in the cache
  directory under the Zenodo URL and the input directory (not the title: a
  re-run with a corrected title, e.g. after Zenodo refused a too-short one,
  goes on with the draft the first run made);
- else your one unpublished draft with the same title whose every file has the
  name and MD5 of a file this run plans (an earlier partial upload of the same
  data, e.g. from a machine without the cache). A catalog.yaml among them has
  our catalog's MD5, so its `id` is ours too. An empty draft (a first run that
  uploaded nothing) holds nothing of another dataset: it is filled.
Any other same-title draft is left untouched: a new deposition is made, and
the run says which draft it did not touch (pass --zenodo-id N to use it).
"""

from __future__ import annotations

import logging
from pathlib import Path

from uploader.errors import UsageError
from uploader.local.digests import digests
from uploader.local.hash_cache import HashCache
from uploader.local.plan import LocalFile, UploadPlan
from uploader.zenodo.client import ZenodoClient
from uploader.zenodo.records import ZenodoDeposition
from uploader.zenodo.resume import ResumeRecords

log = logging.getLogger("uploader.zenodo")


def made_earlier(client: ZenodoClient, records: ResumeRecords, key: str, plan: UploadPlan,
                 title: str) -> ZenodoDeposition | None:
    """The deposition an earlier run made for this dataset: remembered, else a same-title draft of its files only."""
    remembered = _remembered(client, records, key)
    if remembered is not None:
        return remembered
    # Search results may carry no file list: each same-title draft is read by its id.
    same_title = [client.deposition(d.id) for d in client.drafts_titled(title)] if title else []
    planned = {file.name: file for dataset in plan.datasets for file in dataset.all_files}
    ours = [draft for draft in same_title if holds_only(draft, planned)]
    others = [draft for draft in same_title if draft not in ours]
    if len(ours) > 1:
        ids = ", ".join(str(d.id) for d in ours)
        raise UsageError(f"you have {len(ours)} unpublished depositions titled '{title}' holding only files of this"
                         f" dataset ({ids}): pass the one to upload into with --zenodo-id (and delete the others on"
                         " the web page)")
    for draft in others:
        log.warning(f"note: your unpublished deposition {draft.id} is also titled '{title}', but it holds files this"
                    " dataset does not have: it is not this dataset's and was not touched; a new deposition"
                    f" is made (pass --zenodo-id {draft.id} to upload into it instead)")
    if not ours:
        return None
    found = ours[0]
    log.warning(f"going on with your unpublished deposition {found.id} ({found.page}) titled '{title}': every file in"
                " it is a file of this dataset, with the same MD5 (an earlier partial upload; pass --zenodo-id to"
                " choose another)")
    return found


def resume_key(api_url: str, in_dir: Path) -> str:
    """This command's key in the cache: the Zenodo URL and the input directory, not the title."""
    return ResumeRecords.key(api_url, in_dir.resolve())


def holds_only(draft: ZenodoDeposition, planned: dict[str, LocalFile]) -> bool:
    """Whether every file the draft holds has the name, size and MD5 of a planned file."""
    cache = HashCache(None)
    for name, held in draft.files.items():
        local = planned.get(name)
        if local is None or local.size != held.size:
            return False
        if digests(local, ["md5"], cache)["md5"] != held.md5:
            return False
    return True


def _remembered(client: ZenodoClient, records: ResumeRecords, key: str) -> ZenodoDeposition | None:
    deposition_id = records.lookup(key)
    if deposition_id is None:
        return None
    try:
        found = client.deposition(deposition_id)
    except UsageError:  # deleted since: start afresh
        records.forget(key)
        return None
    log.warning(f"going on with deposition {found.id} ({found.page}), made by an earlier run of this command (pass"
                " --zenodo-id to choose another)")
    return found


def origin_of(client: ZenodoClient, where: ZenodoDeposition) -> str:
    """Where the files a deposition holds came from, for messages: a published version (by number), or a draft."""
    if where.submitted and where.state != "inprogress":
        index = client.records.version_index(where)
        return f"in version {index}" if index else f"in record {where.id}"
    return f"in draft {where.id}"

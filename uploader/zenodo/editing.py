"""Changing a deposition's metadata: only what the options change, never losing what the record holds.

- What changes is decided in Zenodo's normal form (metadata.py, normal.py):
  a value Zenodo only rewrote ("Doe,Jane" stored as "Doe, Jane") is no change,
  so no edit is opened and nothing is sent for it.
- Before anything is created or opened, a deposition whose metadata would
  change is read through the records API, which shows all of it: when it
  holds what the deposit API's view cannot carry (rdm.py: ROR ids, several
  licenses, vocabulary subjects, ...), the run stops (exit 2) naming those
  fields, since the PUT would drop them. Change such a record on its web page.
- A new version does not carry the previous version's `version` (Zenodo's
  new_version_skip_fields): the run warns when the previous version had one
  and the options give none.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from uploader.errors import InputError, RemoteError
from uploader.zenodo import metadata, rdm
from uploader.zenodo.client import ZenodoClient
from uploader.zenodo.records import ZenodoDeposition

log = logging.getLogger("uploader.zenodo")


class MetadataEditor:
    """The options' metadata, applied to one deposition."""

    def __init__(self, client: ZenodoClient, wanted: dict[str, Any]) -> None:
        self.client = client
        self.wanted = wanted

    def changes(self, current: dict[str, Any]) -> dict[str, Any]:
        return metadata.changes(current, self.wanted)

    def check(self, where: ZenodoDeposition, *, new_version: bool = False) -> None:
        """Before anything is sent: refuse a change that would lose metadata; warn of a version number dropped."""
        if new_version:
            self._warn_version_dropped(where)
        changed = self.changes(where.metadata)
        if not changed:
            return
        lost = rdm.legacy_losses(self.client.records.full_metadata(where))
        if lost:
            raise InputError([f"{where.page} holds metadata that Zenodo's deposit API cannot carry: {'; '.join(lost)}."
                              f" Changing {', '.join(sorted(changed))} through it would drop that, so nothing was"
                              " changed: make the change on the record's web page, or re-run without"
                              f" {', '.join('--' + key.replace('_', '-') for key in sorted(changed))}"])

    def update(self, target: ZenodoDeposition) -> ZenodoDeposition:
        """PUT the options' changes merged into the whole metadata, and check that Zenodo kept all of it."""
        changed = self.changes(target.metadata)
        if not changed:
            return target
        sent = metadata.merged(target.metadata, changed)
        answer = self.client.update_metadata(target, sent)
        lost = metadata.not_kept(sent, answer.metadata, changed)
        if lost:
            raise RemoteError(f"Zenodo did not keep {', '.join(lost)} of the metadata of {answer.page} after the"
                              " update; nothing was uploaded or published: check them on that page, then re-run")
        return replace(answer, links=answer.links or target.links)

    def _warn_version_dropped(self, record: ZenodoDeposition) -> None:
        previous = str(record.metadata.get("version") or "")
        if previous and not self.wanted.get("version"):
            log.warning(f"warning: the new version will have no version number: Zenodo does not carry the previous"
                        f" version's ('{previous}') into a new one; set it on the draft's web page before publishing")

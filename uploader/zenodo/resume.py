"""Which deposition a command made, kept where its next run looks: the cache directory.

A run that creates a deposition and then fails must not make a second one
when the very same command is run again. Its id is kept here, under the
Zenodo URL and the input directory (not the title: a re-run with a corrected
title goes on with the same draft); the next run of that command goes on with
that deposition. Without a cache directory (a read-only HOME) nothing is kept,
and the next run goes on with a same-title draft only when every file in it is
one of the dataset's (identity.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RECORD_FILE = "zenodo-depositions.json"


class ResumeRecords:
    """Deposition ids by command, in one small JSON file."""

    def __init__(self, directory: Path | None) -> None:
        self.path = directory / RECORD_FILE if directory else None

    @staticmethod
    def key(api_url: str, in_dir: Path) -> str:
        return hashlib.sha256(json.dumps([api_url, str(in_dir)]).encode()).hexdigest()

    def lookup(self, key: str) -> int | None:
        entry = self._read().get(key)
        return int(entry["id"]) if isinstance(entry, dict) and str(entry.get("id", "")).isdigit() else None

    def remember(self, key: str, deposition_id: int, **details: str) -> None:
        records = self._read()
        records[key] = {"id": deposition_id, "saved": datetime.now(timezone.utc).isoformat(), **details}
        self._write(records)

    def forget(self, key: str) -> None:
        records = self._read()
        if records.pop(key, None) is not None:
            self._write(records)

    def _read(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        try:
            found = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # none yet, or damaged: the title search still finds a draft
        return found if isinstance(found, dict) else {}

    def _write(self, records: dict[str, Any]) -> None:
        if self.path is None:
            return
        temporary = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        # Only a convenience: a cache that cannot be written leaves the title search to find the draft.
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(records, indent=1), encoding="utf-8")
            os.replace(temporary, self.path)

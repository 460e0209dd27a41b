"""Can the readers of a published dataset use it? What a backend found out after publishing (e.g. the viewer).

The upload itself can succeed while its readers still cannot open the
result (a bucket without public read or CORS). That is reported apart from
the upload's own outcome: the data is safe, so the exit status stays 0
unless the user asked for readiness to be enforced (exit 5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from uploader.engine.operations import Operation


@dataclass
class Readiness:
    """What a reader check found: links to give the user, whether readers can use the data, and the fixes."""

    ready: bool | None  # None: not checked (e.g. --no-viewer-check)
    lines: list[str] = field(default_factory=list)  # for the user: links, the table of checks
    problem: str = ""  # one line: why readers cannot use it yet ("" when ready or not checked)
    report: dict[str, Any] = field(default_factory=dict)  # for the JSON report
    required: bool = False  # readiness is enforced: not ready means exit 5
    fixes: list[str] = field(default_factory=list)  # what makes it ready: shown even with --quiet


# A check runs once after a successful, non-dry run, on its finished operations; None when it has nothing to
# say (e.g. no catalog published).
ReaderCheck = Callable[[list[Operation]], "Readiness | None"]

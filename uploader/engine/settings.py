"""The options every command shares, read once into the run's settings; and how any settings type reads its options.

A settings type is a frozen dataclass whose fields are declared with
`option(reader, "--name", ...)`: the options the field is read from, and the
one function that reads and checks them (a converter per field, never picked
by the field's type). `read_settings` builds the type from a command's parsed
usage text, field by field in declaration order, so a bad value is reported by
its option's name before anything else happens.

`RunSettings` holds the options both commands share (the usage texts'
"Common options"); the runner reads it directly. The backends' own options
are their settings types (uploader/s3/settings.py, uploader/zenodo/settings.py).
A new shared option is its line in the common usage text and one field here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from uploader.errors import UsageError
from uploader.local.plan import CATALOG_NAME

MAX_JOBS = 256  # cartloader sets no limit; its users pass up to a few hundred on HPC nodes


@dataclass
class Given:
    """One command's parsed usage text (option -> value), the command's own defaults, and the notes its options
    leave for the summary (e.g. about cartloader's options accepted and ignored)."""

    values: Mapping[str, Any]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, option: str) -> Any:
        return self.values.get(option)


Reader = Callable[[Given], Any]
Settings = TypeVar("Settings")


def option(reader: Reader, *names: str, default: Any = None, default_factory: Callable[[], Any] | None = None,
           required: bool = False) -> Any:
    """A settings field read by `reader` from the options `names` (none: a value not given on the command line).

    `default` (or `default_factory`): its value in settings made in code without it; `required`: none.
    """
    metadata = {"options": names, "read": reader}
    if required:
        return field(metadata=metadata)
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def read_settings(kind: type[Settings], given: Given, **known: Any) -> Settings:
    """`kind` from a parsed usage text: each field by its own reader, in declaration order; `known` as given."""
    values = dict(known)
    for spec in fields(kind):  # type: ignore[arg-type]
        if spec.name not in values and "read" in spec.metadata:
            values[spec.name] = spec.metadata["read"](given)
    return kind(**values)


def options_read_by(kind: type) -> set[str]:
    """Every option the fields of settings type `kind` are read from."""
    return {name for spec in fields(kind) for name in spec.metadata.get("options", ())}


# -- readers of one option --------------------------------------------------------------------------


def flag(name: str) -> Reader:
    return lambda given: bool(given[name])


def text(name: str) -> Reader:
    return lambda given: given[name]


def path(name: str) -> Reader:
    return lambda given: Path(given[name]) if given[name] else None


def whole_number(name: str, maximum: int) -> Reader:
    """A whole number from 1 to `maximum`; absent, the command's default for it."""
    return lambda given: positive_int(given[name], name, maximum) if given[name] else given.defaults[name]


def positive_int(text: str, option: str, maximum: int) -> int:
    """Parse a whole number from 1 to `maximum` or raise a UsageError naming the option."""
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{option} {text}: must be a whole number from 1 to {maximum}") from None
    if not 1 <= value <= maximum:
        raise UsageError(f"{option} {text}: must be a whole number from 1 to {maximum}")
    return value


def seconds(text: str, name: str, at_most: float = 3600) -> float:
    """A number of seconds, more than 0 and at most `at_most`, from an option or an environment variable."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= at_most:
        separator = "=" if name.isupper() else " "  # an environment variable, or an option
        raise UsageError(f"{name}{separator}{text}: must be a number of seconds, more than 0 and at most"
                         f" {at_most:g}")
    return value


def choice(value: str | None, option: str, choices: tuple[str, ...]) -> str | None:
    """`value` as spelled in `choices` (any letter case), None when not given; else a UsageError naming them."""
    if value is None:
        return None
    found = next((one for one in choices if one.lower() == value.lower()), None)
    if found is None:
        raise UsageError(f"{option} {value}: choose one of {', '.join(choices)}")
    return found


def _report_path(given: Given) -> Path | None:
    report = given["--report"]
    if not report:
        return None
    if report != "-":
        parent = Path(report).absolute().parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise UsageError(f"--report {report}: directory {parent} does not exist or is not writable")
    return Path(report)


# -- the shared options -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSettings:
    """The options every upload command shares (the usage texts' "Common options"), one field per option."""

    in_dir: Path = option(path("--in-dir"), "--in-dir", default=Path("."))
    catalog_yaml: Path | None = option(path("--catalog-yaml"), "--catalog-yaml")
    n_jobs: int = option(whole_number("--n-jobs", MAX_JOBS), "--n-jobs", default=4)
    dry_run: bool = option(flag("--dry-run"), "--dry-run", default=False)
    restart: bool = option(flag("--restart"), "--restart", default=False)
    report: Path | None = option(_report_path, "--report")
    quiet: bool = option(flag("--quiet"), "--quiet", default=False)
    no_progress: bool = option(flag("--no-progress"), "--no-progress", default=False)
    no_markers: bool = option(flag("--no-markers"), "--no-markers", default=False)

    @property
    def catalog_path(self) -> Path:
        return self.catalog_yaml or self.in_dir / CATALOG_NAME

"""The docs say what `--help` says: every default and range they state for an option or variable.

The usage texts are the spec (`cartload-uploader --help`, `... upload_aws --help`, `... upload_zenodo
--help`, read from the real entrypoint); a variable that --help does not list is read from the code's
own `os.environ.get(NAME, "DEFAULT")`. The docs are README.md, docs/*.md and benchmarks/RESULTS.md:
in their tables (a row naming an option or variable) and their sentences, each "default X" and
"A to B" is compared with the option's or variable's own. Also: README.md is a front door of at most
250 lines, its exit codes are --help's, and every relative link in the docs leads to a file (and a
heading) that exists.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = [README, *sorted((REPO / "docs").glob("*.md")), REPO / "benchmarks" / "RESULTS.md"]
COMMANDS = ("upload_aws", "upload_zenodo")
# Which command a file documents, when its tables and sentences name an option both commands have.
FILE_COMMAND = {"docs/s3.md": "upload_aws", "docs/zenodo.md": "upload_zenodo"}
NAME = re.compile(r"`(--[a-z][\w-]*|CARTLOAD_UPLOADER_[A-Z_]+)[^`]*`")
DEFAULT = re.compile(r"default:?\s+(?:`([^`]+)`|(\d[\d,]*(?:\.\d+)?))")
RANGE = re.compile(r"\b(\d+) to (\d+)\b")
NOT_A_VALUE = {"", "unset"}


# -- what --help and the code say ---------------------------------------------------------------


@cache
def help_text(command: str | None) -> str:
    args = [sys.executable, str(REPO / "entrypoint.py"), *([command] if command else []), "--help"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def entries(text: str, starts: re.Pattern[str]) -> list[str]:
    """The entries of a --help listing: a line matching `starts`, and the more-indented lines after it."""
    found: list[str] = []
    for line in text.splitlines():
        if starts.match(line):
            found.append(line.strip())
        elif found and line.startswith("    ") and line.strip():
            found[-1] += " " + line.strip()
        elif not line.strip():
            found and found.append("")
    return [entry for entry in found if entry]


def option_names(entry: str) -> list[str]:
    """`--n-jobs N  Requests in flight ...` -> ["--n-jobs"]: the options before the description."""
    names = []
    for word in entry.split():
        if word.startswith("-"):
            names.append(word)
        elif not re.fullmatch(r"[A-Z][A-Z0-9_]*|<[\w-]+>", word):
            break
    return [name for name in names if name.startswith("--")]


@cache
def options(command: str) -> dict[str, str]:
    """Each option of a command's --help, with its whole entry."""
    return {name: entry for entry in entries(help_text(command), re.compile(r"^  -"))
            for name in option_names(entry)}


@cache
def variables() -> dict[str, str]:
    """Each CARTLOAD_UPLOADER_* variable: its --help entry, else `=DEFAULT` as the code reads it."""
    listed = {re.split(r"[= ]", entry, maxsplit=1)[0]: entry
              for entry in entries(help_text(None), re.compile(r"^  CARTLOAD_UPLOADER_"))}
    return {**source_defaults(), **listed}


def source_defaults() -> dict[str, str]:
    """`os.environ.get("CARTLOAD_UPLOADER_X", "V")` (or through a `NAME_ENV = "..."` constant) in uploader/."""
    found = {}
    for path in (REPO / "uploader").rglob("*.py"):
        text = path.read_text()
        constants = dict(re.findall(r'^(\w+) = "(CARTLOAD_UPLOADER_\w+)"', text, re.M))
        for name, value in re.findall(r'os\.environ\.get\(\s*"?(\w+)"?,\s*"([^"]*)"\)', text):
            variable = constants.get(name, name)
            if variable.startswith("CARTLOAD_UPLOADER_"):
                found[variable] = f"{variable}={value}"
    return found


def stated_default(entry: str) -> str | None:
    """What an entry gives as its default: `NAME=VALUE`, or the text of its `(default...)`."""
    if match := re.match(r"CARTLOAD_UPLOADER_\w+=(\S+)", entry):
        return match.group(1)
    if not (match := re.search(r"\(default\b([^)]*)\)", entry)):
        return None
    inner = match.group(1)
    return (inner.split(":", 1)[1] if re.match(r"(:|\s[\w ]*:)", inner) else inner).strip()


def authority(name: str, command: str | None) -> list[str]:
    """The --help (or code) entries that define `name` for `command` (for either, when not known)."""
    if name.startswith("CARTLOAD_UPLOADER_"):
        return [variables()[name]] if name in variables() else []
    commands = [command] if command else list(COMMANDS)
    return [options(each)[name] for each in commands if name in options(each)]


# -- what the docs say --------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A number or default the docs state for one of `names`."""

    where: str  # file:line
    names: tuple[str, ...]
    command: str | None
    kind: str  # "default" or "range"
    value: str


def claims(path: Path, text: str) -> list[Claim]:
    found: list[Claim] = []
    command, header, fenced, paragraph, start = FILE_COMMAND.get(relative(path)), "", False, "", ""
    for number, line in enumerate([*text.splitlines(), ""], 1):
        where = f"{relative(path)}:{number}"
        fenced ^= line.startswith("```")
        if line.strip() and not (fenced or line.startswith(("```", "#", "|"))):
            start = start if paragraph else where
            paragraph += " " + line  # a sentence may run over several lines
            continue
        found += sentence_claims(start, paragraph, command) if paragraph else []
        paragraph = ""
        if fenced or line.startswith("```"):
            continue
        if line.startswith("#"):
            command = heading_command(line) or FILE_COMMAND.get(relative(path))
        if not line.startswith("|"):
            header = ""
        elif not header:
            header = line
        elif not re.fullmatch(r"[|\s:-]+", line):
            found += row_claims(where, header, line, heading_command(header) or command)
    return found


def heading_command(text: str) -> str | None:
    if "upload_zenodo" in text or "Zenodo" in text:
        return "upload_zenodo"
    return "upload_aws" if "upload_aws" in text or "S3" in text else None


def row_claims(where: str, header: str, row: str, command: str | None) -> list[Claim]:
    titles = [cell.strip().lower() for cell in header.strip("|").split("|")]
    cells = [cell.strip() for cell in row.strip().strip("|").split(" | ")]
    names = tuple(dict.fromkeys(match.group(1) for match in NAME.finditer(cells[0])))
    if not names:
        return []
    if "default" in titles and len(cells) == len(titles):
        value = cells[titles.index("default")].strip("`")
        return [] if value in NOT_A_VALUE else [Claim(where, names, command, "default", value)]
    ours = cells[1:] if titles[0].startswith("cartloader") else cells  # that column is cartloader's own
    return stated(where, names, command, " ".join(ours))


def sentence_claims(where: str, line: str, command: str | None) -> list[Claim]:
    found = []
    for sentence in re.split(r"(?<=[.;])\s+", line):
        names = tuple(dict.fromkeys(match.group(1) for match in NAME.finditer(sentence)))
        if len(names) == 1:
            found += stated(where, names, command, sentence)
    return found


def stated(where: str, names: tuple[str, ...], command: str | None, text: str) -> list[Claim]:
    defaults = [(quoted or number).rstrip(",") for quoted, number in DEFAULT.findall(text)]
    ranges = [f"{low} to {high}" for low, high in RANGE.findall(text)]
    return ([Claim(where, names, command, "default", value) for value in defaults]
            + [Claim(where, names, command, "range", value) for value in ranges])


def relative(path: Path) -> str:
    return str(path.relative_to(REPO))


def all_claims() -> list[Claim]:
    return [claim for path in DOCS for claim in claims(path, path.read_text())]


# -- comparing ----------------------------------------------------------------------------------


def same_value(claimed: str, entry: str, kind: str) -> bool:
    if kind == "range":
        return claimed in entry
    given = stated_default(entry)
    if given is None:
        return False
    number = claimed.replace(",", "")
    if re.fullmatch(r"\d+(\.\d+)?", number):
        first = re.match(r"\s*(\d[\d,]*(?:\.\d+)?)", given)
        return first is not None and float(first.group(1).replace(",", "")) == float(number)
    return claimed in given


def wrong(claim: Claim) -> str | None:
    """Why a claim disagrees with --help, or None when one of its names' entries agrees."""
    entries_ = [entry for name in claim.names for entry in authority(name, claim.command)]
    if any(same_value(claim.value, entry, claim.kind) for entry in entries_):
        return None
    shown = "; ".join(entries_) or "no --help entry (nor a default in the code)"
    return f"{claim.where}: {'/'.join(claim.names)} {claim.kind} {claim.value!r}, but --help: {shown}"


def test_every_default_and_range_in_the_docs_is_the_one_help_gives():
    found = all_claims()

    assert [problem for claim in found if (problem := wrong(claim))] == []
    checked = {(claim.where.split(":")[0], name, claim.value) for claim in found for name in claim.names}
    assert {("docs/s3.md", "--n-jobs", "256"), ("docs/s3.md", "--n-jobs", "1 to 256"),
            ("docs/zenodo.md", "--n-jobs", "4"), ("docs/pipelines.md", "--n-jobs", "256"),
            ("docs/s3.md", "--stall-timeout", "120"), ("docs/zenodo.md", "--max-record-bytes", "50,000,000,000"),
            ("docs/s3.md", "CARTLOAD_UPLOADER_CONNECT_TIMEOUT", "10"),
            ("docs/s3.md", "CARTLOAD_UPLOADER_LEASE_STALE", "600"),
            ("docs/zenodo.md", "CARTLOAD_UPLOADER_ZENODO_RATE", "100/60,5000/3600")} <= checked


@pytest.mark.parametrize(("doc", "why"), [
    ("## S3\n\n| option | meaning |\n| --- | --- |\n| `--n-jobs N` | requests in flight (default 8) |\n",
     "--n-jobs default '8'"),
    ("## Zenodo\n\n| option | meaning |\n| --- | --- |\n| `--n-jobs N` | files at once (default 256) |\n",
     "--n-jobs default '256'"),
    ("Each request may take `CARTLOAD_UPLOADER_VIEWER_TIMEOUT` seconds (default 30).\n",
     "CARTLOAD_UPLOADER_VIEWER_TIMEOUT default '30'"),
    ("| variable | default | meaning |\n| --- | --- | --- |\n| `CARTLOAD_UPLOADER_READ_TIMEOUT` | 60 | x |\n",
     "CARTLOAD_UPLOADER_READ_TIMEOUT default '60'"),
    ("| cartloader `upload_aws` | here |\n| --- | --- |\n| `--n-jobs N` (default 2) | 1 to 64 |\n",
     "--n-jobs range '1 to 64'"),
    ("Set `--shard` (default 3).\n", "--shard default '3', but --help: --shard SPEC"),
])
def test_a_drifted_doc_is_caught(doc, why):
    problems = [problem for claim in claims(REPO / "docs" / "drifted.md", doc) if (problem := wrong(claim))]

    assert len(problems) == 1 and why in problems[0]


def test_help_and_the_code_agree_on_each_variable_default():
    for name, assignment in source_defaults().items():
        listed = [entry for entry in entries(help_text(None), re.compile(r"^  CARTLOAD_UPLOADER_"))
                  if re.split(r"[= ]", entry, maxsplit=1)[0] == name]
        given = stated_default(listed[0]) if listed else None
        if given is not None:
            assert same_value(assignment.split("=", 1)[1], listed[0], "default"), (name, assignment, listed)


# -- the front door and the links ---------------------------------------------------------------


def test_the_readme_is_a_front_door_of_at_most_250_lines():
    assert len(README.read_text().splitlines()) <= 250


def test_the_readme_exit_codes_are_those_of_help():
    section = README.read_text().split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| (\d+) \|", section, re.M)
    listed = re.findall(r"^  (\d+) ", help_text(None).split("Exit codes:", 1)[1].split("\n\n", 1)[0], re.M)

    assert documented == listed == ["0", "1", "2", "3", "4", "5", "6", "130"]


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a file's headings (fenced code left out)."""
    found, fenced = set(), False
    for line in text.splitlines():
        fenced ^= line.startswith("```")
        if not fenced and (match := re.match(r"#{1,6} (.+)", line)):
            found.add(re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-"))
    return found


@pytest.mark.parametrize("path", DOCS, ids=relative)
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(path):
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text())):
            broken.append(target)

    assert broken == []


def test_the_module_map_names_every_module_and_only_modules_that_exist():
    architecture = (REPO / "docs" / "architecture.md").read_text()
    modules = {path.name for path in (REPO / "uploader").rglob("*.py") if path.name != "__init__.py"}
    named = set(re.findall(r"`(?:[a-z]+/)*([a-z_]+\.py)`", architecture)) - {"entrypoint.py"}

    helpers = {path.name for path in (REPO / "tests").rglob("*.py")}

    assert sorted(modules - named) == []
    assert sorted(named - modules - helpers) == []

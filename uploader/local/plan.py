"""The upload plan: which local files go where, validated before any byte is sent.

Building a plan touches only the local file system (stat, read the catalog).
It collects every problem it finds and raises them together, so a user fixes
a broken dataset in one round instead of one error per run.
"""

from __future__ import annotations

import csv
import os
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from uploader.errors import InputError, UsageError
from uploader.local.catalog import Catalog, Group, Mention, load_catalog, load_collection_catalog
from uploader.local.pmtiles import archive_problem, is_pmtiles_name

CATALOG_NAME = "catalog.yaml"
COLLECTION_CATALOG_NAME = "multi-catalog.yaml"  # at a collection's root, next to the sample directories


@dataclass(frozen=True)
class LocalFile:
    """One file to publish: its name at the destination, where it is, and its size."""

    name: str  # relative name as the catalog gives it; the destination key suffix
    path: Path  # the resolved path on disk
    size: int
    mtime_ns: int
    # ctime and inode cannot be set back by `touch -r` or `cp -p`: with them a
    # same-size rewrite that restored the old mtime still misses the hash cache.
    ctime_ns: int = 0
    inode: int = 0
    group: Group = Group.BASICS

    @property
    def identity(self) -> tuple[int, int, int, int]:
        """What must be unchanged for a cached digest (and a planned upload) to stay valid."""
        return (self.size, self.mtime_ns, self.ctime_ns, self.inode)

    @cached_property
    def cache_key(self) -> tuple[str, str]:
        """(path, identity) as the hash cache stores them; asked for several times per file, made once."""
        return str(self.path), ":".join(map(str, self.identity))

    def unchanged_on_disk(self) -> bool:
        """True while the file on disk is still the one that was planned (and hashed)."""
        try:
            info = os.stat(self.path)
        except OSError:
            return False
        return (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino) == self.identity


@dataclass(frozen=True)
class Dataset:
    """One cartload output directory and the files to publish from it.

    `catalog` is published last, after every file in `files` is verified and
    every file in `others` is found in place; it is None when the dataset is
    a bare list of files (Zenodo's --upload-method all/files).
    """

    in_dir: Path
    subdir: str  # "" for a single dataset; the dataset id in collection mode
    files: tuple[LocalFile, ...]
    catalog: LocalFile | None
    warnings: tuple[str, ...] = ()  # catalog values that may name a missing file (outside `assets`)
    # Files the catalog names that this run does not send (another upload group; at a collection's root, the
    # samples' files): not re-sent, but the catalog waits until a listing shows each of them on the remote as
    # it is here.
    others: tuple[LocalFile, ...] = ()
    # Files of this dataset that other --shard workers send: checked like `others`, never sent by this run.
    other_shares: tuple[LocalFile, ...] = ()
    # The collection's root: multi-catalog.yaml (its `catalog`) and the shared files it names, published
    # after every sample of the run.
    collection_root: bool = False

    @property
    def all_files(self) -> tuple[LocalFile, ...]:
        return self.files + ((self.catalog,) if self.catalog else ())

    @property
    def checked_only(self) -> tuple[LocalFile, ...]:
        """The files its catalog names that other runs send: in place before the catalog goes, never sent here."""
        return self.others + self.other_shares


@dataclass(frozen=True)
class UploadPlan:
    """Everything a run will publish: one dataset, or a collection of them (its root, if any, last)."""

    datasets: tuple[Dataset, ...]
    share: Share | None = None  # with --shard: this worker's share of the files (shards.take_share)


ALL_GROUPS = frozenset(Group)


def plan_from_catalog(in_dir: Path, catalog_path: Path, groups: frozenset[Group] = ALL_GROUPS) -> Dataset:
    """A dataset from a cartload catalog: the files it names in `groups` (the rest checked only), then the catalog."""
    in_dir = _existing_dir(in_dir, "--in-dir")
    return _dataset(in_dir, load_catalog(catalog_path), groups, subdir="")


def plan_collection(in_dir: Path, in_list: Path, groups: frozenset[Group] = ALL_GROUPS) -> UploadPlan:
    """One dataset per sample sub-directory listed in the first column of `in_list`, then the collection's root.

    The root (multi-catalog.yaml and the shared files it names, when --in-dir has one) comes last: its
    catalog is published after every sample's.
    """
    in_dir = _existing_dir(in_dir, "--in-dir")
    samples: dict[str, Dataset] = {}
    problems: list[str] = []
    owners: dict[str, str] = {}
    for sample in read_sample_list(in_list):
        sample_dir = in_dir / sample
        if not sample_dir.is_dir():
            problems.append(f"{in_list}: sample '{sample}' has no directory {sample_dir}; fix the list or --in-dir")
            continue
        try:
            catalog = load_catalog(sample_dir / CATALOG_NAME)
            subdir = collection_subdir(catalog.id, sample)
            if subdir in owners:
                raise InputError([f"{in_list}: samples '{owners[subdir]}' and '{sample}' would both upload to "
                                  f"'{subdir}/'; give their catalogs distinct ids"])
            owners[subdir] = sample
            samples[sample] = _dataset(sample_dir.absolute(), catalog, groups, subdir)
        except InputError as exc:
            problems.extend(exc.problems)
    root = None
    if os.path.lexists(in_dir / COLLECTION_CATALOG_NAME) and not problems:
        try:
            root = _collection_root(in_dir, load_collection_catalog(in_dir / COLLECTION_CATALOG_NAME), samples, groups)
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    return UploadPlan((*samples.values(), *((root,) if root else ())))


def _collection_root(in_dir: Path, catalog: Catalog, samples: dict[str, Dataset], groups: frozenset[Group]
                     ) -> Dataset:
    """The collection's root as a dataset of its own: the shared files it names, then multi-catalog.yaml.

    cartloader's run_together uploads them next to the sample directories, so the multi-catalog's relative
    names (`mydataset-s1/catalog.yaml`, `t12-f24-model.tsv`) resolve on the store. A name inside a sample
    directory belongs to that sample: published with it (checked here, not sent twice); inside a sample
    directory this run does not upload, it is another run's, and the root catalog waits for it.
    """
    def sent_elsewhere(local: LocalFile, where: str, problems: list[str]) -> bool:
        return _published_with_a_sample(local.name, samples, in_dir, where, problems)

    files, others, warnings = _named_files(in_dir, catalog, groups, sent_elsewhere)
    return Dataset(in_dir=in_dir, subdir="", files=tuple(files),
                   catalog=_catalog_file(catalog.path, COLLECTION_CATALOG_NAME), warnings=tuple(warnings),
                   others=tuple(others), collection_root=True)


def _published_with_a_sample(name: str, samples: dict[str, Dataset], in_dir: Path, where: str,
                             problems: list[str]) -> bool:
    """Whether a file the root names is a sample's: published with it by this run, or by the run that uploads
    that sample; a problem if the sample goes where the root's name does not lead."""
    sample = next((directory for directory in samples if name.startswith(f"{directory}/")), None)
    if sample is None:
        return _in_sample_directory(in_dir, name)  # a sample directory this run does not upload
    if not _sample_publishes(samples[sample], name[len(sample) + 1:]):
        return False  # in a sample's directory, but named by the root alone: the root sends it
    if samples[sample].subdir != sample:
        problems.append(f"{where}: '{name}' is in sample directory '{sample}', which is published under"
                        f" '{samples[sample].subdir}/' (its catalog id): that name would not resolve on the"
                        f" store; give the sample's catalog the id '{sample}', as cartloader does")
    return True


def _sample_publishes(sample: Dataset, name: str) -> bool:
    return any(file.name == name for file in (*sample.all_files, *sample.checked_only))


def _in_sample_directory(in_dir: Path, name: str) -> bool:
    """Whether `name` lies inside a sample directory (one with its own catalog.yaml) of the collection."""
    parts = name.split("/")
    return any((in_dir.joinpath(*parts[:depth]) / CATALOG_NAME).is_file() for depth in range(1, len(parts)))


def _dataset(in_dir: Path, catalog: Catalog, groups: frozenset[Group], subdir: str) -> Dataset:
    files, others, warnings = _named_files(in_dir, catalog, groups, lambda *_: False)
    # Every group mode publishes the catalog, last: a layer added later must appear in the viewer.
    return Dataset(in_dir=in_dir, subdir=subdir, files=tuple(files), catalog=_catalog_file(catalog.path),
                   warnings=tuple(warnings), others=tuple(others))


def _named_files(in_dir: Path, catalog: Catalog, groups: frozenset[Group],
                 sent_elsewhere: Callable[[LocalFile, str, list[str]], bool]
                 ) -> tuple[list[LocalFile], list[LocalFile], list[str]]:
    """The files a catalog names: those this run sends (its groups), those only checked, and warnings.

    Every problem found is raised together (InputError); `sent_elsewhere` moves a file to the checked ones.
    """
    problems: list[str] = []
    warnings: list[str] = []
    files: list[LocalFile] = []
    others: list[LocalFile] = []
    real_dirs: dict[str, str] = {}
    for ref in catalog.files:
        where = f"{catalog.path} ({ref.where})"
        if ref.mention is not Mention.FILE and not _present(in_dir, ref.name):
            if ref.mention is Mention.WARN_IF_MISSING:
                warnings.append(f"{where}: '{_printable(ref.name)}' looks like a file name but is not in {in_dir};"
                                " it is left as text (fix the catalog if it names a file)")
            continue
        local = resolve_local_file(in_dir, ref.name, ref.group, where, problems, real_dirs)
        if local is None or not _readable_by_the_viewer(local, where, problems):
            continue
        if sent_elsewhere(local, where, problems):
            others.append(local)  # checked before this catalog goes, never sent twice
        else:
            (files if ref.group in groups else others).append(local)
    if problems:
        raise InputError(problems)
    return files, others, warnings


def _present(in_dir: Path, name: str) -> bool:
    """Whether a value that may name a file names something in the dataset directory (not a directory)."""
    try:
        return os.path.lexists(in_dir / name) and not (in_dir / name).is_dir()
    except (OSError, ValueError):  # e.g. a NUL byte, or a name too long to be a file
        return False


def _readable_by_the_viewer(file: LocalFile, where: str, problems: list[str]) -> bool:
    """A .pmtiles file the catalog names must be a PMTiles v3 archive; record a problem if it is not."""
    if not is_pmtiles_name(file.name):
        return True
    try:
        problem = archive_problem(file.path, file.size)
    except OSError as exc:
        problem = f"cannot be read ({_reason(exc)})"
    if problem:
        problems.append(f"{where}: '{file.name}' {problem}")
    return not problem


def plan_from_names(in_dir: Path, names: Iterable[str], what: str) -> Dataset:
    """A dataset of exactly the named files, no catalog ordering (Zenodo --upload-method files/all)."""
    in_dir = _existing_dir(in_dir, "--in-dir")
    problems: list[str] = []
    real_dirs: dict[str, str] = {}
    files = [f for name in names if (f := resolve_local_file(in_dir, name, Group.BASICS, what, problems, real_dirs))]
    if problems:
        raise InputError(problems)
    return Dataset(in_dir=in_dir, subdir="", files=tuple(files), catalog=None)


def regular_files_in(in_dir: Path) -> list[str]:
    """Names of the regular files (or symlinks to them) directly inside `in_dir`, sorted."""
    in_dir = _existing_dir(in_dir, "--in-dir")
    return sorted(entry.name for entry in os.scandir(in_dir) if entry.is_file())


def read_sample_list(in_list: Path) -> list[str]:
    """Sample sub-directory names from the first column of a header-less TSV."""
    try:
        with open(in_list, encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t"))
    except FileNotFoundError:
        raise UsageError(f"--in-list {in_list}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--in-list {in_list}: cannot read it ({_reason(exc)})") from None
    samples = [row[0].strip() for row in rows if row and row[0].strip() and not row[0].startswith("#")]
    if not samples:
        raise UsageError(f"--in-list {in_list}: lists no samples; put one sample directory per line, first column")
    problems = [f"--in-list {in_list}: '{s}' is not a sub-directory name of --in-dir" for s in samples
                if not _is_safe_relative(s)]
    if problems:
        raise InputError(problems)
    return samples


def collection_subdir(catalog_id: str | None, sample: str) -> str:
    """Where a sample goes inside a collection: its catalog id, else its normalised sample id."""
    subdir = catalog_id if catalog_id else sample.lower().replace("_", "-")
    return subdir.strip("/")


def resolve_local_file(in_dir: Path, name: str, group: Group, where: str, problems: list[str],
                       real_dirs: dict[str, str] | None = None) -> LocalFile | None:
    """Check that `name` is a regular file inside `in_dir`; record a problem and return None if not.

    `real_dirs` remembers resolved directories between calls for one plan: a
    catalog of 2,000 files in one directory then costs one lstat each, not two
    symlink walks each.
    """
    problem = _name_problem(name)
    if problem:
        problems.append(f"{where}: '{_printable(name)}' {problem}")
        return None
    real_dirs = {} if real_dirs is None else real_dirs
    # Strings, not Paths, until the end: a catalog names thousands of files, and pathlib parsed each name
    # three times (two thirds of planning 20,000 files).
    path = os.path.join(in_dir, name)
    try:
        resolved, info = _resolved(path, real_dirs)
    except FileNotFoundError:
        broken = " (a broken symlink)" if os.path.islink(path) else ""
        problems.append(f"{where}: '{name}' is missing from {in_dir}{broken}; re-run the pipeline or fix the catalog")
        return None
    except OSError as exc:
        problems.append(f"{where}: '{name}' cannot be read ({_reason(exc)})")
        return None
    if not _is_inside(resolved, _real_dir(str(in_dir), real_dirs)):
        problems.append(f"{where}: '{name}' is a symlink to {resolved}, outside {in_dir}; copy the file in instead")
        return None
    if not stat.S_ISREG(info.st_mode):
        problems.append(f"{where}: '{name}' is not a regular file; only files can be uploaded")
        return None
    if not os.access(resolved, os.R_OK):
        problems.append(f"{where}: '{name}' is not readable (check its permissions)")
        return None
    return LocalFile(name=name, path=Path(resolved), size=info.st_size, mtime_ns=info.st_mtime_ns,
                     ctime_ns=info.st_ctime_ns, inode=info.st_ino, group=group)


def _resolved(path: str, real_dirs: dict[str, str]) -> tuple[str, os.stat_result]:
    """Where `path` really is (its directory's symlinks, and its own, followed) and its stat there."""
    parent, base = os.path.split(path)
    resolved = os.path.join(_real_dir(parent, real_dirs), base)
    info = os.lstat(resolved)
    if stat.S_ISLNK(info.st_mode):
        resolved = os.path.realpath(resolved, strict=True)
        info = os.stat(resolved)
    return resolved, info


def _is_inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _real_dir(directory: str, known: dict[str, str]) -> str:
    if directory not in known:
        known[directory] = os.path.realpath(directory)
    return known[directory]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _name_problem(name: str) -> str:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not a valid UTF-8 file name; rename the file"
    if _CONTROL.search(name):
        return "contains a control character; rename the file"
    if name.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", name):
        return "is an absolute path; the catalog must name files relative to --in-dir"
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        return "leaves the dataset directory ('..'); name files inside --in-dir"
    if "." in parts or "" in parts:
        plain = "/".join(part for part in parts if part not in ("", "."))
        return (f"has a '.' or empty path part, which the remote would keep in the file's name (so the viewer"
                f" would not find it); write it as '{plain}'")
    return ""


def _is_safe_relative(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return all(part not in ("", ".", "..") for part in parts)


def _catalog_file(catalog_path: Path, name: str = CATALOG_NAME) -> LocalFile:
    # The catalog is published under its conventional name, wherever it was read from.
    info = catalog_path.stat()
    return LocalFile(name=name, path=catalog_path.resolve(), size=info.st_size,
                     mtime_ns=info.st_mtime_ns, ctime_ns=info.st_ctime_ns, inode=info.st_ino)


def _existing_dir(path: Path, option: str) -> Path:
    if not path.exists():
        raise UsageError(f"{option} {path}: directory not found")
    if not path.is_dir():
        raise UsageError(f"{option} {path}: not a directory")
    return path.absolute()


def _printable(name: str) -> str:
    """The name as one readable line: undecodable bytes and control characters (a tab) as escapes."""
    text = name.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or exc.__class__.__name__


# -- a worker's share (--shard; split in shards.py) --------------------------------------------------


@dataclass(frozen=True)
class Shard:
    """Which share a worker takes: `index` of `count`, from 1."""

    index: int
    count: int
    origin: str = ""  # where the index came from, for the report (e.g. "Slurm array task 7 of 4-10:2")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Share:
    """What one worker sends, told in its report and by --dry-run."""

    shard: Shard
    files: int
    bytes: int
    plan_files: int  # what every worker's share adds up to: the whole plan
    plan_bytes: int
    whole: tuple[str, ...]  # datasets this share holds whole (their sub-directories, or "(root)", "(dataset)")
    partial: tuple[str, ...]  # datasets this share holds some files of, other shares the rest
    fingerprint: str  # of the plan the split was made from: the same on every worker, or they split differently

    def as_report(self) -> dict[str, object]:
        return {"shard": str(self.shard), "index": self.shard.index, "count": self.shard.count,
                "from": self.shard.origin, "files": self.files, "bytes": self.bytes,
                "plan_files": self.plan_files, "plan_bytes": self.plan_bytes,
                "datasets_whole": list(self.whole), "datasets_in_part": list(self.partial),
                "plan_fingerprint": self.fingerprint}

"""Digests in one pass, part MD5s, and the cache keyed by stat identity."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from uploader.catalog import Group
from uploader.hashing import Cancelled, HashCache, digests, part_md5_name
from uploader.plan import LocalFile, resolve_local_file


def local(path: Path) -> LocalFile:
    found = resolve_local_file(path.parent, path.name, Group.BASICS, "test", [])
    assert found is not None
    return found


def test_whole_and_part_digests_in_one_pass(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 5)
    (tmp_path / "f").write_bytes(data)
    part = 1024 * 1024
    sums = digests(local(tmp_path / "f"), ["sha256", "md5", part_md5_name(part)], HashCache(None))
    assert sums["sha256"] == hashlib.sha256(data).hexdigest()
    assert sums["md5"] == hashlib.md5(data).hexdigest()
    expected = [hashlib.md5(data[i:i + part]).hexdigest() for i in range(0, len(data), part)]
    assert sums[part_md5_name(part)].split(",") == expected
    assert len(expected) == 4


def test_part_size_not_a_multiple_of_the_read_size(tmp_path):
    data = os.urandom(2_500_001)
    (tmp_path / "f").write_bytes(data)
    part = 700_001
    sums = digests(local(tmp_path / "f"), [part_md5_name(part)], HashCache(None))
    assert sums[part_md5_name(part)].split(",") == [
        hashlib.md5(data[i:i + part]).hexdigest() for i in range(0, len(data), part)]


def test_empty_file_is_one_empty_part(tmp_path):
    (tmp_path / "f").write_bytes(b"")
    sums = digests(local(tmp_path / "f"), [part_md5_name(8)], HashCache(None))
    assert sums[part_md5_name(8)] == hashlib.md5(b"").hexdigest()


def test_cache_hit_skips_reading_and_any_stat_change_misses(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"first")
    cache = HashCache(tmp_path / "cache")
    cache.store(local(path), {"sha256": "sentinel"})
    assert digests(local(path), ["sha256"], cache)["sha256"] == "sentinel"  # served without reading
    old = path.stat()
    path.write_bytes(b"other")  # same size
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))  # mtime restored; ctime cannot be
    assert digests(local(path), ["sha256"], cache)["sha256"] == hashlib.sha256(b"other").hexdigest()


def test_cache_survives_reopening(tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    first = HashCache(tmp_path / "c")
    first.store(local(tmp_path / "f"), {"sha256": "cached-value"})
    first.close()
    assert HashCache(tmp_path / "c").lookup(local(tmp_path / "f"), "sha256") == "cached-value"


def test_a_large_plan_is_cached_in_batches_and_preloaded_whole(tmp_path):
    files = []
    for i in range(2500):  # more than one flush batch and several preload queries
        (tmp_path / f"t{i}").write_bytes(b"x")
        files.append(local(tmp_path / f"t{i}"))
    first = HashCache(tmp_path / "c")
    for i, file in enumerate(files):
        first.store(file, {"md5": f"value-{i}"})
    first.close()
    second = HashCache(tmp_path / "c")
    second.preload(files)
    assert [second.lookup(file, "md5") for file in files] == [f"value-{i}" for i in range(2500)]
    (tmp_path / "t7").write_bytes(b"y")  # a changed file is a miss, not a stale hit
    assert second.lookup(local(tmp_path / "t7"), "md5") is None


def test_unwritable_cache_is_off_with_a_notice(tmp_path):
    (tmp_path / "file").write_text("")
    cache = HashCache(tmp_path / "file" / "cache")
    assert "hash cache off" in cache.notice
    (tmp_path / "f").write_bytes(b"x")
    assert digests(local(tmp_path / "f"), ["md5"], cache)["md5"] == hashlib.md5(b"x").hexdigest()


def test_no_home_means_no_cache_and_says_so(monkeypatch):
    for name in ("HOME", "XDG_CACHE_HOME", "CARTLOAD_UPLOADER_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    assert "no HOME" in HashCache.default().notice


def test_damaged_cache_file_is_ignored(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "hashes.sqlite3").write_bytes(b"not a database at all" * 100)
    cache = HashCache(tmp_path / "c")
    (tmp_path / "f").write_bytes(b"x")
    assert digests(local(tmp_path / "f"), ["md5"], cache)["md5"] == hashlib.md5(b"x").hexdigest()


def test_hashing_stops_when_asked(tmp_path):
    (tmp_path / "f").write_bytes(os.urandom(4 * 1024 * 1024))
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        digests(local(tmp_path / "f"), ["sha256"], HashCache(None), stop)


@pytest.mark.parametrize("side_by_side", [False, True])
def test_every_digest_of_one_read_is_right_whether_or_not_hashed_side_by_side(tmp_path, monkeypatch, side_by_side):
    import uploader.hashing as hashing

    monkeypatch.setattr(hashing, "PARALLEL_MIN_SIZE", 1 if side_by_side else 1 << 40)
    data = os.urandom(3 * hashing.READ_SIZE + 12345)
    (tmp_path / "f").write_bytes(data)
    part = hashing.READ_SIZE + 7  # parts that straddle read blocks
    found = digests(local(tmp_path / "f"), ["sha256", "md5", part_md5_name(part)], HashCache(None))
    assert found["sha256"] == hashlib.sha256(data).hexdigest()
    assert found["md5"] == hashlib.md5(data).hexdigest()
    assert found[part_md5_name(part)].split(",") == [
        hashlib.md5(data[start:start + part]).hexdigest() for start in range(0, len(data), part)]
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        digests(local(tmp_path / "f"), ["sha256", "md5"], HashCache(None), stop)


def test_a_file_bigger_than_when_it_was_planned_is_hashed_whole(tmp_path):
    from dataclasses import replace

    data = os.urandom(200 * 1024)  # over the buffer a small file is given
    (tmp_path / "f").write_bytes(data)
    planned_small = replace(local(tmp_path / "f"), size=10)
    assert digests(planned_small, ["md5"], HashCache(None))["md5"] == hashlib.md5(data).hexdigest()

"""Digests in one pass, part MD5s, and the cache keyed by stat identity."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

import uploader.local.digests
from uploader.local.catalog import Group
from uploader.local.digests import Cancelled, digest_files, digests, multipart_etag_name, part_md5_name
from uploader.local.hash_cache import HashCache
from uploader.local.plan import LocalFile, resolve_local_file


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


def test_many_files_the_cache_knows_are_answered_without_a_read_the_others_hashed(tmp_path, monkeypatch):
    files = []
    for number in range(5):
        (tmp_path / f"f{number}").write_bytes(f"content {number}".encode())
        files.append(local(tmp_path / f"f{number}"))
    cache = HashCache(None)
    cache.store(files[1], {"sha256": "cached one", part_md5_name(8): "aa,bb"})
    cache.store(files[3], {"sha256": "cached three", part_md5_name(8): "cc"})
    read = []
    compute = uploader.local.digests._compute
    monkeypatch.setattr(uploader.local.digests, "_compute", lambda file, names, stop: read.append(file) or compute(
        file, names, stop))
    found = digest_files([(file, ["sha256", multipart_etag_name(8)]) for file in files], cache, workers=3)
    assert sorted(file.name for file in read) == ["f0", "f2", "f4"]
    assert [sums["sha256"] for sums in found] == [
        hashlib.sha256(b"content 0").hexdigest(), "cached one", hashlib.sha256(b"content 2").hexdigest(),
        "cached three", hashlib.sha256(b"content 4").hexdigest()]
    assert found[1][multipart_etag_name(8)] == hashlib.md5(bytes.fromhex("aa") + bytes.fromhex("bb")).hexdigest() \
        + "-2"
    assert found[3][multipart_etag_name(8)] == hashlib.md5(bytes.fromhex("cc")).hexdigest() + "-1"


def test_cache_survives_reopening(tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    first = HashCache(tmp_path / "c")
    first.store(local(tmp_path / "f"), {"sha256": "cached-value"})
    first.close()
    assert HashCache(tmp_path / "c").lookup(local(tmp_path / "f"), "sha256") == "cached-value"


def test_digests_another_process_stored_meanwhile_are_read_again_on_request(tmp_path):
    (tmp_path / "f").write_bytes(b"sent by another worker")
    file = local(tmp_path / "f")
    mine = HashCache(tmp_path / "cache")
    mine.preload([file])  # nothing known yet
    theirs = HashCache(tmp_path / "cache")  # another --shard worker, the same cache
    theirs.store(file, {"md5": "0" * 32})  # a value no read of the file gives: proves it came from the cache
    theirs.close()
    assert mine.lookup(file, "md5") is None  # what preload saw stands...

    mine.read_again([file])

    assert mine.lookup(file, "md5") == "0" * 32  # ...until read again
    mine.close()


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


def test_a_damaged_cache_file_is_moved_aside_once_and_a_new_one_started(tmp_path):
    (tmp_path / "c").mkdir()
    garbage = b"not a database at all" * 100
    (tmp_path / "c" / "hashes.sqlite3").write_bytes(garbage)
    (tmp_path / "f").write_bytes(b"x")

    cache = HashCache(tmp_path / "c")

    assert cache.notice.startswith("hash cache: ") and "was damaged" in cache.notice
    assert "moved it to hashes.sqlite3.damaged and started a new one" in cache.notice
    assert "cannot write" not in cache.notice and "off" not in cache.notice
    assert (tmp_path / "c" / "hashes.sqlite3.damaged").read_bytes() == garbage
    assert digests(local(tmp_path / "f"), ["md5"], cache)["md5"] == hashlib.md5(b"x").hexdigest()
    cache.close()
    again = HashCache(tmp_path / "c")  # the new file works: the next run is quiet and served from it
    assert again.notice == ""
    assert again.lookup(local(tmp_path / "f"), "md5") == hashlib.md5(b"x").hexdigest()


def test_damage_deep_in_the_cache_file_is_found_when_read_and_healed(tmp_path, caplog):
    files = []
    for i in range(300):
        (tmp_path / f"t{i}").write_bytes(b"x")
        files.append(local(tmp_path / f"t{i}"))
    first = HashCache(tmp_path / "c")
    for file in files:
        first.store(file, {"md5": "m" * 32, "sha256": "s" * 64})
    first.close()
    path = tmp_path / "c" / "hashes.sqlite3"
    data = bytearray(path.read_bytes())
    assert len(data) > 20 * 4096
    data[10 * 4096:] = os.urandom(len(data) - 10 * 4096)  # leaf pages; the header, schema and roots read fine
    path.write_bytes(bytes(data))

    second = HashCache(tmp_path / "c")
    assert second.notice == ""  # the header and the schema read fine
    with caplog.at_level("WARNING", logger="uploader.local.hash_cache"):
        second.preload(files)
    assert "was damaged" in caplog.text and "started a new one" in caplog.text
    assert (tmp_path / "c" / "hashes.sqlite3.damaged").exists()
    assert digests(files[0], ["md5"], second)["md5"] == hashlib.md5(b"x").hexdigest()  # re-hashed, not garbage
    second.close()
    assert HashCache(tmp_path / "c").lookup(files[0], "md5") == hashlib.md5(b"x").hexdigest()


def test_a_network_file_system_gets_the_rollback_journal_not_wal(tmp_path, monkeypatch):
    import uploader.local.hash_cache as hashing

    local_cache = HashCache(tmp_path / "local")
    assert local_cache._db is not None
    assert local_cache._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    local_cache.close()
    monkeypatch.setattr(hashing, "filesystem_type", lambda path: "nfs4")
    nfs = HashCache(tmp_path / "local")  # the same file, now seen on NFS: converted out of WAL
    assert nfs.notice == "" and nfs._db is not None
    assert nfs._db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    (tmp_path / "f").write_bytes(b"x")
    nfs.store(local(tmp_path / "f"), {"md5": "cached"})
    nfs.close()
    assert not (tmp_path / "local" / "hashes.sqlite3-wal").exists()
    assert HashCache(tmp_path / "local").lookup(local(tmp_path / "f"), "md5") == "cached"


def test_filesystem_type_is_read_from_the_longest_matching_mount(tmp_path):
    from uploader.local.hash_cache import filesystem_type

    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "40 22 0:50 / /home rw,relatime shared:20 - nfs4 server:/export/home rw,vers=4.2\n"
        "41 22 0:51 / /scratch\\040space rw - lustre 10.0.0.1@o2ib:/fs rw,flock\n"
        "42 40 0:52 / /home/local rw - tmpfs tmpfs rw\n")
    assert filesystem_type(Path("/home/jane/.cache"), mountinfo) == "nfs4"
    assert filesystem_type(Path("/homeless"), mountinfo) == "ext4"
    assert filesystem_type(Path("/home/local/x"), mountinfo) == "tmpfs"
    assert filesystem_type(Path("/scratch space/u/cache"), mountinfo) == "lustre"
    assert filesystem_type(Path("/x"), tmp_path / "no-such-file") == ""


@pytest.mark.lock_faults
def test_a_cache_where_file_locks_fail_is_off_with_one_notice_at_once(tmp_path, no_locks_library):
    import subprocess
    import sys

    (tmp_path / "f").write_bytes(b"x")
    code = (
        "import sys, time; from pathlib import Path; from tests.local.test_hashing import local;"
        "from uploader.local.hash_cache import HashCache; from uploader.local.digests import digests;"
        "started = time.monotonic(); c = HashCache(Path(sys.argv[1])); took = time.monotonic() - started;"
        "d = digests(local(Path(sys.argv[2])), ['md5'], c); c.close();"
        "print(repr(c.notice)); print(d['md5']); print(took)"
    )
    env = {"LD_PRELOAD": str(no_locks_library), "NO_LOCKS_UNDER": str(tmp_path / "nfs"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "nfs" / "cache"), str(tmp_path / "f")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    notice, md5, took = done.stdout.splitlines()
    assert "hash cache off" in notice and "file locks do not work" in notice and "No locks available" in notice
    assert md5 == hashlib.md5(b"x").hexdigest()
    assert float(took) < 5  # SQLite alone would wait its whole busy timeout (30 s) on a refused lock
    assert not (tmp_path / "nfs" / "cache" / "hashes.sqlite3").exists()


def test_hashing_stops_when_asked(tmp_path):
    (tmp_path / "f").write_bytes(os.urandom(4 * 1024 * 1024))
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        digests(local(tmp_path / "f"), ["sha256"], HashCache(None), stop)


@pytest.mark.parametrize("side_by_side", [False, True])
def test_every_digest_of_one_read_is_right_whether_or_not_hashed_side_by_side(tmp_path, monkeypatch, side_by_side):
    import uploader.local.digests as hashing

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

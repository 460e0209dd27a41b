"""PMTiles v3 headers: what the viewer can read is let through, everything else is refused by name."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.pmtiles_files import pmtiles_bytes
from uploader.errors import InputError
from uploader.local.plan import plan_from_catalog
from uploader.local.pmtiles import HEADER_SIZE, archive_problem

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "humanlung-demo"
VALID = pmtiles_bytes(b"tile data " * 50)
HTML_PAGE = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Not Found</body></html>\n"
# A PMTiles v2 archive starts with "PM", then the version as a little-endian uint16, then its own layout.
V2_ARCHIVE = b"PM" + struct.pack("<HIH", 2, 20, 1) + b'{"name": "old"}' + bytes(600)


def problem_of(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "layer.pmtiles"
    path.write_bytes(data)
    return archive_problem(path, len(data))


def test_every_example_archive_is_a_valid_v3_archive():
    archives = sorted(EXAMPLE.glob("*.pmtiles"))
    assert len(archives) == 9
    for path in archives:
        assert archive_problem(path, path.stat().st_size) == "", path.name


def test_a_valid_archive_passes(tmp_path):
    assert problem_of(tmp_path, VALID) == ""


@pytest.mark.parametrize(
    ("data", "phrases"),
    [
        (b"", ["is empty (0 bytes)"]),
        (VALID[:60], ["truncated", "60 bytes", "127-byte"]),
        (VALID[:-10], ["truncated", "tile data", f"{len(VALID) - 10:,d} bytes"]),
        (HTML_PAGE, ["HTML", "error page"]),
        (b"  \r\n<html><body>Access Denied</body></html>" + bytes(200), ["HTML"]),
        (V2_ARCHIVE, ["version 2", "version 3 only", "pmtiles convert"]),
        (VALID[:7] + b"\x04" + VALID[8:], ["version 4"]),
        (b"\x1f\x8b\x08" + bytes(300), ["magic"]),  # e.g. gzip-compressed by mistake
    ],
    ids=["empty", "shorter-than-header", "tile-data-cut", "html", "html-after-blank-lines", "v2", "v4", "not-pmtiles"],
)
def test_files_the_viewer_cannot_read_are_refused_with_the_reason(tmp_path, data, phrases):
    problem = problem_of(tmp_path, data)
    for phrase in phrases:
        assert phrase in problem
    assert "; " in problem  # and what to do about it


def test_a_header_whose_offsets_point_outside_the_file_is_refused(tmp_path):
    fields = list(struct.unpack_from("<8Q", VALID, 8))
    fields[2] = len(VALID) + 1000  # metadata offset beyond the end
    corrupt = VALID[:8] + struct.pack("<8Q", *fields) + VALID[8 + 64:]
    assert "metadata" in problem_of(tmp_path, corrupt)


def test_a_root_directory_beyond_the_first_16_kib_is_refused(tmp_path):
    fields = list(struct.unpack_from("<8Q", VALID, 8))
    padding = bytes(20_000)
    fields[0] = HEADER_SIZE + len(padding)
    data = VALID[:8] + struct.pack("<8Q", *fields) + VALID[8 + 64:HEADER_SIZE] + padding + VALID[HEADER_SIZE:]
    assert "first 16,384 bytes" in problem_of(tmp_path, data)


def test_the_plan_refuses_every_bad_archive_by_name_and_catalog_position(tmp_path):
    (tmp_path / "catalog.yaml").write_text("assets:\n  sge:\n    all: a.pmtiles\n    bins: [b.pmtiles, c.pmtiles]\n"
                                           "  note: n.tsv\n")
    (tmp_path / "a.pmtiles").write_bytes(b"")
    (tmp_path / "b.pmtiles").write_bytes(HTML_PAGE)
    (tmp_path / "c.pmtiles").write_bytes(VALID)
    (tmp_path / "n.tsv").write_bytes(b"not checked: only .pmtiles files are archives\n")

    with pytest.raises(InputError) as refused:
        plan_from_catalog(tmp_path, tmp_path / "catalog.yaml")

    assert len(refused.value.problems) == 2
    assert "(assets.sge.all): 'a.pmtiles' is empty" in refused.value.problems[0]
    assert "(assets.sge.bins[0]): 'b.pmtiles' is an HTML" in refused.value.problems[1]

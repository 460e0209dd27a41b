"""The catalog model: which values are files, and in which upload group."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from uploader.errors import InputError
from uploader.local.catalog import MAX_CATALOG_BYTES, Group, Mention, load_catalog

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "humanlung-demo" / "catalog.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    return path


def groups(catalog_path: Path) -> dict[str, Group]:
    """The values that must name files, and their groups."""
    return {ref.name: ref.group for ref in load_catalog(catalog_path).files if ref.mention is Mention.FILE}


def mentions(catalog_path: Path) -> dict[str, Mention]:
    return {ref.name: ref.mention for ref in load_catalog(catalog_path).files}


def test_example_catalog_groups_match_cartloader():
    found = groups(EXAMPLE)
    assert found["genes_all.pmtiles"] is Group.BASICS
    assert found["sge-mono-dark.pmtiles"] is Group.BASICS  # overview and sge basemap
    assert found["sge-mono-light.pmtiles"] is Group.BASICS
    assert found["histology.pmtiles"] is Group.BASEMAP
    assert found["t18-f24-p18-a6-pseudobulk.tsv.gz"] is Group.BASICS
    for optional in ("t18-f24-umap.tsv.gz", "t18-f24.umap.png", "t18-f24.umap.single.prob.png",
                     "t18-f24-umap.pmtiles", "t18-f24-alias.tsv"):
        assert found[optional] is Group.OPTIONAL
    assert len(found) == 20
    assert load_catalog(EXAMPLE).id == "humanlung-demo"


def test_identifiers_free_text_and_defaults_are_not_files(tmp_path):
    path = write(tmp_path, """
id: ds-1
title: A title.pmtiles lookalike
description: Xenium v1 data.tsv with spaces
assets:
  basemap:
    sge: {default: dark, dark: dark.pmtiles}
    he: {default: lowres, lowres: he-low.pmtiles, highres: he-high.pmtiles}
  factors:
    - {id: f1.x, name: F1.y, model_id: m.tsv, decode_id: d.tsv, cells_id: c.x, raw_pixel_col: p.q, de: de.tsv}
""")
    assert groups(path) == {"dark.pmtiles": Group.BASICS, "he-low.pmtiles": Group.BASEMAP,
                            "he-high.pmtiles": Group.BASEMAP, "de.tsv": Group.BASICS}


def test_unknown_keys_and_values_do_not_break_it(tmp_path):
    path = write(tmp_path, """
assets:
  future_layer:
    nested: [{deep: {file: new.pmtiles}}, 42, true, null]
    colour: red
    note: a sentence, not a file
    link: https://example.org/data.pmtiles
  counts: 3
schema_version: 4
""")
    assert groups(path) == {"new.pmtiles": Group.BASICS}


def test_values_with_spaces_under_assets_may_name_files(tmp_path):
    path = write(tmp_path, """
title: Lung data.tsv with spaces
description: "see genes all.pmtiles"
assets:
  sge: {all: "sp ace.pmtiles", bins: ["no such file.pmtiles", "tab\\there.tsv"]}
  note: a sentence, not a file
  version_note: Version 2.0 of the data
  colour: red
extra: "notes file.txt"
comment: just text
""")
    assert mentions(path) == {
        "sp ace.pmtiles": Mention.FILE, "no such file.pmtiles": Mention.FILE, "tab\there.tsv": Mention.FILE,
        "a sentence, not a file": Mention.IF_PRESENT, "Version 2.0 of the data": Mention.IF_PRESENT,
        "red": Mention.IF_PRESENT, "notes file.txt": Mention.WARN_IF_MISSING,
    }


def test_the_surest_mention_of_a_name_wins(tmp_path):
    path = write(tmp_path, "notes: shared.tsv\nassets:\n  a: shared.tsv\n  b: plain\nalso: plain\n")
    assert mentions(path) == {"shared.tsv": Mention.FILE, "plain": Mention.IF_PRESENT}
    assert [ref.where for ref in load_catalog(path).files] == ["assets.a", "assets.b"]


def test_a_path_without_extension_is_still_checked(tmp_path):
    path = write(tmp_path, "assets:\n  x: /etc/passwd\n  y: sub/dir/file\n")
    assert set(groups(path)) == {"/etc/passwd", "sub/dir/file"}


def test_a_file_named_twice_is_listed_once_in_the_stronger_group(tmp_path):
    path = write(tmp_path, """
assets:
  factors:
    - {umap: {pmtiles: shared.pmtiles}}
  overview: shared.pmtiles
""")
    assert groups(path) == {"shared.pmtiles": Group.BASICS}


def test_where_names_the_catalog_position(tmp_path):
    path = write(tmp_path, "assets:\n  sge:\n    bins: [a.pmtiles, b.pmtiles]\n")
    assert [ref.where for ref in load_catalog(path).files] == ["assets.sge.bins[0]", "assets.sge.bins[1]"]


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        ("assets: [unclosed\n", "not valid YAML at line"),
        ("- a\n- b\n", "YAML mapping"),
        ("id: x\n", "no 'assets' section"),
        ("", "YAML mapping"),
    ],
)
def test_unusable_catalogs_are_input_errors(tmp_path, content, phrase):
    with pytest.raises(InputError) as error:
        load_catalog(write(tmp_path, content))
    assert phrase in str(error.value)
    assert str(tmp_path / "catalog.yaml") in str(error.value)


def test_missing_catalog(tmp_path):
    with pytest.raises(InputError, match="catalog not found"):
        load_catalog(tmp_path / "catalog.yaml")


# -- hostile or mistaken catalogs are refused quickly ------------------------------------------------


def billion_laughs(levels: int = 10) -> str:
    """9**levels leaves in a few hundred bytes: each level lists the previous one nine times."""
    lines = ["assets:", '  l0: &l0 ["a.tsv", "a.tsv", "a.tsv", "a.tsv", "a.tsv", "a.tsv", "a.tsv", "a.tsv", "a.tsv"]']
    for level in range(1, levels):
        lines.append(f"  l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_at_once(tmp_path):
    path = write(tmp_path, billion_laughs())
    assert path.stat().st_size < 700
    started = time.monotonic()
    with pytest.raises(InputError, match="more than 1,000,000 values once its aliases are expanded"):
        load_catalog(path)
    assert time.monotonic() - started < 0.5


def test_ordinary_aliases_still_work(tmp_path):
    shared = {"default": "dark", "dark": "sge-mono-dark.pmtiles"}
    document = {"id": "x", "assets": {"basemap": {"sge": shared}, "overview": shared,
                                      "factors": [{"de": "de.tsv", "pmtiles": shared}]}}
    text = yaml.safe_dump(document)
    assert "&id001" in text and "*id001" in text  # what PyYAML writes for an object referenced twice
    assert groups(write(tmp_path, text)) == {"sge-mono-dark.pmtiles": Group.BASICS, "de.tsv": Group.BASICS}


def test_a_recursive_alias_is_refused(tmp_path):
    with pytest.raises(InputError, match="recursive alias"):
        load_catalog(write(tmp_path, "assets: &a\n  loop: *a\n"))


def test_nesting_deeper_than_any_catalog_is_refused_without_crashing(tmp_path):
    # 100,000 levels crash libyaml's recursive composer (a segmentation fault); the check comes first.
    with pytest.raises(InputError, match="more than 100 levels deep"):
        load_catalog(write(tmp_path, "assets: " + "[" * 100_000 + "]" * 100_000 + "\n"))


def test_a_catalog_over_the_size_limit_is_refused_without_reading_it_all(tmp_path):
    path = tmp_path / "catalog.yaml"
    with open(path, "wb") as handle:
        handle.write(b"assets:\n  t: [")
        handle.truncate(MAX_CATALOG_BYTES + 1)
    with pytest.raises(InputError, match="larger than 8 MiB"):
        load_catalog(path)


def test_a_fifo_is_refused_instead_of_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "catalog.yaml"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        load_catalog(fifo)


def test_a_device_is_refused_instead_of_read_forever():
    with pytest.raises(InputError, match="not a regular file"):
        load_catalog(Path("/dev/zero"))


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        load_catalog(tmp_path)

"""The uploader's model of Zenodo's normal forms and of what the deposit API's view loses, checked against the
real libraries Zenodo uses (ftfy, bleach, through the mock's marshmallow-utils functions) and the mock's view."""

from __future__ import annotations

import pytest

from tests.mock_zenodo import legacy_of, person_name, rdm_of, sanitize_html, sanitize_unicode
from tests.zenodo.test_mock_zenodo import CURATED
from uploader.zenodo import metadata, normal, rdm
from uploader.zenodo.creators import creator_name_problems

TEXTS = ["Genes & cells", "a < b > c", "5 > 3 & 2 < 4", "A &amp; B", "x &copy; y", "&nosuch; x", "&#169; and &#x41;",
         "line1\r\nline2\rline3", "\u201cquoted\u201d \u2018s\u2019 \u201bx\u201f", "Cafe\u0301", " spaced \n",
         "zero\u200bwidth", "bell\x07char", "Doe, Jane", "Human lung demo", "Lung atlas (v2) \u2013 cells", ""]
HTML = ["<p>Hello <b>world</b></p>", "<script>x()</script> ok", "<a href='http://x?a=1&b=2' onclick='e'>l</a>",
        "<p>a<br>b</p>", "<unknown>t</unknown>", "<br/>", "<P>Upper</P>", "<p dir=\"rtl\" class=\"c\">p</p>",
        "<ul><li>one</li><li>two &amp; three</li></ul>", "<em>x</em> &lt;kept&gt;"]


@pytest.mark.parametrize("value", TEXTS)
def test_text_is_fixed_as_ftfy_does(value):
    assert normal.text(value) == sanitize_unicode(value)


@pytest.mark.parametrize("value", TEXTS + HTML)
def test_descriptions_are_cleaned_as_bleach_does(value):
    assert normal.description(value) == sanitize_html(value)


@pytest.mark.parametrize("name", ["Doe,Jane", "Doe , Jane ", "Jane Doe", "A, B, C", "Doe,", "\u201cDoe\u201d, J"])
def test_creator_names_are_read_back_as_zenodo_does(name):
    assert normal.creator_name(name) == person_name(name)


def test_a_difference_that_is_only_normalisation_is_no_change():
    stored = {"title": '"Lung"', "description": "Genes &amp; cells", "creators": [{"name": "Doe, Jane",
                                                                                   "orcid": "0000-0002-1825-0097"}]}
    wanted = {"title": "\u201cLung\u201d", "description": "Genes & cells", "creators": [{"name": "Doe,Jane"}]}
    assert metadata.changes(stored, wanted) == {}
    assert metadata.changes(stored, {**wanted, "description": "Genes & more"}) == {"description": "Genes & more"}


def test_what_the_deposit_api_view_loses_is_named():
    assert rdm.legacy_losses(CURATED) == [
        "organisations among the creators (they would come back as persons)",
        "creators' second and later affiliations", "creators' affiliation ids (ROR)", "subjects from a vocabulary",
        "1 license(s) after the first", "languages after the first", "funding without an award",
        "additional titles"]


def test_a_record_only_ever_written_through_the_deposit_api_loses_nothing():
    legacy = legacy_of(CURATED)
    assert rdm.legacy_losses(rdm_of(legacy)) == []
    assert legacy_of(rdm_of(legacy)) == legacy


def test_each_loss_named_is_one_the_view_makes():
    for key in ("subjects", "rights", "languages", "funding", "additional_titles"):
        alone = {"title": "T", "creators": [], key: CURATED[key]}
        assert rdm.legacy_losses(alone), key
        assert rdm.legacy_losses(rdm_of(legacy_of(alone))) == [], key


@pytest.mark.parametrize(("name", "problem"), [
    ("Jane Doe", 'write it as "Doe, Jane"'), ("Cher", 'write it as "Family, Given"'),
    ("A, B, C", "only at a single comma"), ("Doe,", "both sides of the comma")])
def test_creator_names_zenodo_would_misread_are_named(name, problem):
    assert problem in creator_name_problems([name])[0]


def test_creator_names_with_one_comma_pass():
    assert creator_name_problems(["Doe, Jane", "Doe,Jane", "van der Berg, Anna Maria"]) == []

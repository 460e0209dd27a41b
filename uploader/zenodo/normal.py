"""Zenodo's normal forms: what it stores for what it was sent, to compare like with like.

Zenodo rewrites some metadata as it stores it, so a value read back differs
from the value sent although nothing changed:
- titles, names, versions (marshmallow-utils `SanitizedUnicode`, html.py
  `sanitize_unicode`): trimmed, then `ftfy.fix_text` (curly quotes
  straightened, NFC, CRLF and CR -> LF, HTML entities decoded on a line
  without '<'), then characters XML does not allow and zero-width spaces
  dropped;
- creators (zenodo-rdm legacy/deserializers/metadata.py
  `PersonSchema.load_names`): a name with exactly one comma is split into
  family and given names, each trimmed, and read back as "Family, Given";
- descriptions (marshmallow-utils `SanitizedHTML`, html.py `sanitize_html`):
  the above, then `bleach.clean` with Zenodo's allowed tags and attributes,
  `strip=True`: bare `&`, `<`, `>` escaped, disallowed tags dropped (their
  text kept).

This is a faithful subset, not ftfy or bleach (a runtime dependency for one
comparison would be a poor trade): it covers what the options send (plain
text, and HTML of the allowed tags); ftfy's mojibake repairs and bleach's CSS
filtering are not modelled. The tests check it against the real libraries.
A value compares equal when its normal form equals the stored value's.
"""

from __future__ import annotations

import html
import re
import unicodedata
from html.parser import HTMLParser
from typing import Any

SINGLE_QUOTES = re.compile("[\u02bc\u2018-\u201b]")  # ftfy chardata.py SINGLE_QUOTE_RE
DOUBLE_QUOTES = re.compile("[\u201c-\u201f]")  # ftfy chardata.py DOUBLE_QUOTE_RE
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|\u200b")
ALLOWED_TAGS = {"a", "abbr", "acronym", "b", "blockquote", "br", "code", "col", "colgroup", "div", "table", "tbody",
                "tfoot", "thead", "td", "th", "tr", "em", "h1", "h2", "h3", "h4", "h5", "i", "li", "ol", "p", "pre",
                "s", "span", "strike", "strong", "sub", "sup", "u", "ul"}  # marshmallow-utils html.py
ALLOWED_ATTRS = {"a": {"href", "title", "name", "target", "rel", "rev", "alt"}, "div": {"dir", "lang"},
                 "span": {"dir", "lang"}, "p": {"dir", "lang"}, "abbr": {"title", "lang", "dir"},
                 "acronym": {"title", "lang", "dir"}, "td": {"colspan", "rowspan", "nowrap"},
                 "th": {"colspan", "rowspan", "nowrap"}, "col": {"span"}, "colgroup": {"span"}}
VOID_TAGS = {"br", "col"}


def text(value: str) -> str:
    """A title, name or version as Zenodo stores it (sanitize_unicode: strip, then ftfy's fixes we model)."""
    lines = value.strip().replace("\r\n", "\n").replace("\r", "\n").split("\n")
    fixed = "\n".join(line if "<" in line else html.unescape(line) for line in lines)
    fixed = DOUBLE_QUOTES.sub('"', SINGLE_QUOTES.sub("'", fixed))
    return NOT_XML.sub("", unicodedata.normalize("NFC", fixed))


def creator_name(name: str) -> str:
    """A creator's name as read back: "Family, Given" when it has exactly one comma (load_names)."""
    if name.count(",") == 1:
        family, given = (text(part) for part in name.split(","))
        return f"{family}, {given}" if given else family
    return text(name)


def description(value: str) -> str:
    """A description as Zenodo stores it: the text fixes, then bleach.clean(strip=True) with the allowed tags."""
    cleaner = _Cleaner()
    cleaner.feed(text(value))
    cleaner.close()
    return "".join(cleaner.out).strip()


def field(key: str, value: Any) -> Any:
    """One metadata field in Zenodo's normal form (fields it does not rewrite are only trimmed)."""
    if key == "description" and isinstance(value, str):
        return description(value)
    if key == "creators" and isinstance(value, list):
        return [creator_name(str(c.get("name", ""))) if isinstance(c, dict) else c for c in value]
    if isinstance(value, str):
        return text(value)
    return value


class _Cleaner(HTMLParser):
    """Re-serialises HTML the way bleach does for the allowed tags: the rest dropped, text escaped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.out: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ALLOWED_TAGS:
            kept = [(name, value) for name, value in attrs if name in ALLOWED_ATTRS.get(tag, set())]
            shown = "".join(f' {name}="{html.escape(value or "", quote=True)}"' for name, value in kept)
            self.out.append(f"<{tag}{shown}>")

    def handle_endtag(self, tag: str) -> None:
        if tag in ALLOWED_TAGS and tag not in VOID_TAGS:
            self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self.out.append(html.escape(data, quote=False))

    def handle_entityref(self, name: str) -> None:
        self.out.append(f"&{name};" if f"&{name};" != html.unescape(f"&{name};") else f"&amp;{name};")

    def handle_charref(self, name: str) -> None:
        self.out.append(f"&#{name};")

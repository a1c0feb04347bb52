"""Model descriptions: Markdown written by any owner, shown to anyone, so the HTML it makes goes
through an allow-list (nh3, i.e. ammonia) before it reaches a page. Raw HTML in the Markdown is
allowed by python-markdown and then cut down to the same list: no scripts, styles, frames, event
handlers or javascript: links survive.

Images come only from this site: an image anywhere else would be fetched by every visitor's browser,
telling its owner who read the page and when (a tracking pixel). Such an <img> loses its src and keeps
its alt, which browsers show as text in its place; nothing is fetched. Links may go anywhere (a click
is the reader's choice)."""

from __future__ import annotations

from functools import lru_cache
from html.parser import HTMLParser

import markdown as python_markdown
import nh3
from django.utils.safestring import SafeString, mark_safe

EXTENSIONS = ["fenced_code", "tables", "sane_lists"]
# Table columns aligned with align="right", not style="text-align: right": the CSP refuses style attributes.
EXTENSION_CONFIGS = {"tables": {"use_align_attribute": True}}
ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "del", "s", "sub", "sup",
    "code", "pre", "kbd", "blockquote", "ul", "ol", "li", "dl", "dt", "dd", "a", "img",
    "table", "thead", "tbody", "tr", "th", "td",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "th": {"align"},
    "td": {"align"},
}
# How a browser's URL parser (WHATWG) reads a src: C0 controls and spaces at either end are cut, tabs and
# newlines anywhere are dropped, and "\\" counts as "/". So " /\t/evil" and "/\\evil" are both //evil.
_C0_AND_SPACE = "".join(chr(code) for code in range(0x21))
_TABS_AND_NEWLINES = str.maketrans("", "", "\t\n\r")


def _on_this_site(src: str) -> bool:
    """A path on this site: one "/" and then not a second (//host/... is another site)."""
    path = src.strip(_C0_AND_SPACE).translate(_TABS_AND_NEWLINES).replace("\\", "/")
    return path.startswith("/") and not path.startswith("//")


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    """nh3 asks this for every attribute it would keep, its entities already decoded."""
    if tag == "img" and attribute == "src" and not _on_this_site(value):
        return None
    return value


_cleaner = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    clean_content_tags={"script", "style"},
    attributes=ALLOWED_ATTRIBUTES,
    attribute_filter=_keep_attribute,
    url_schemes={"http", "https", "mailto"},
    # Links written by strangers: search engines should not reward them, and the target page
    # must not get a handle on ours.
    link_rel="nofollow noopener",
)


def render_markdown(text: str) -> SafeString:
    """Markdown to HTML that is safe to put in a page as it is."""
    return mark_safe(_render(text or ""))  # sanitised by the allow-list just above


@lru_cache(maxsize=512)
def _render(text: str) -> str:
    # A page view renders the same description again and again: cached by its text.
    html = python_markdown.markdown(text, extensions=EXTENSIONS, extension_configs=EXTENSION_CONFIGS,
                                    output_format="html")
    return _cleaner.clean(html)


# ---------------------------------------------------------------- plain text (search cards)

# Elements whose end separates words: "<h1>Iris</h1><p>A model</p>" reads "Iris A model", not "IrisA model".
_BREAKS = {"p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "li", "dt", "dd", "blockquote", "tr", "th", "td",
           "pre", "table", "ul", "ol", "dl"}


class _TextReader(HTMLParser):
    """The words of rendered Markdown: what a reader sees, without the markup. Code blocks are set
    aside (a card's line of prose is no place for code) and used only when there is nothing else."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.prose: list[str] = []
        self.code: list[str] = []
        self._in_code = 0

    def handle_starttag(self, tag, attrs):
        if tag == "pre":
            self._in_code += 1
        elif tag == "img":  # an image reads as its alt text, as browsers show it when it does not load
            self._add(dict(attrs).get("alt") or "")
        if tag in _BREAKS:
            self._add(" ")

    def handle_endtag(self, tag):
        if tag == "pre":
            self._in_code = max(0, self._in_code - 1)
        if tag in _BREAKS:
            self._add(" ")

    def handle_data(self, data):
        self._add(data)

    def _add(self, text: str) -> None:
        (self.code if self._in_code else self.prose).append(text)


def plain_text(text: str) -> str:
    """The description as one line of words: headings, emphasis, lists, tables and links rendered
    away by the same Markdown reader as the page (so nothing it would hide shows up as "|---|" or
    "**"), HTML entities decoded. Not HTML: a template escapes it like any user text."""
    return _plain_text(text or "")


@lru_cache(maxsize=4096)  # a page of cards is mostly the same descriptions as the last one
def _plain_text(text: str) -> str:
    reader = _TextReader()
    reader.feed(_render(text))
    reader.close()
    words = " ".join("".join(reader.prose).split())
    return words or " ".join("".join(reader.code).split())


def excerpt(text: str, limit: int) -> str:
    """plain_text cut to at most `limit` characters at a word's end, with an ellipsis when cut."""
    words = plain_text(text)
    if len(words) <= limit:
        return words
    cut = words[:limit]
    # The ellipsis takes one character: what is kept ends at the last space within the limit (a single
    # word longer than the limit is cut inside it).
    kept = cut.rsplit(" ", 1)[0] if " " in cut else cut[:limit - 1]
    return kept.rstrip(" ,;:.-–—") + "…"

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

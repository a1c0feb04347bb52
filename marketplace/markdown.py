"""Model descriptions: Markdown written by any owner, shown to anyone, so the HTML it makes goes
through an allow-list (nh3, i.e. ammonia) before it reaches a page. Raw HTML in the Markdown is
allowed by python-markdown and then cut down to the same list: no scripts, styles, frames, event
handlers or javascript: links survive."""

from __future__ import annotations

from functools import lru_cache

import markdown as python_markdown
import nh3
from django.utils.safestring import SafeString, mark_safe

EXTENSIONS = ["fenced_code", "tables", "sane_lists"]
ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "del", "s", "sub", "sup",
    "code", "pre", "kbd", "blockquote", "ul", "ol", "li", "dl", "dt", "dd", "a", "img",
    "table", "thead", "tbody", "tr", "th", "td",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    # python-markdown aligns table columns with style="text-align: ..."; only that property stays.
    "th": {"style", "align"},
    "td": {"style", "align"},
}
_cleaner = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    clean_content_tags={"script", "style"},
    attributes=ALLOWED_ATTRIBUTES,
    url_schemes={"http", "https", "mailto"},
    # Links written by strangers: search engines should not reward them, and the target page
    # must not get a handle on ours.
    link_rel="nofollow noopener",
    filter_style_properties={"text-align"},
)


def render_markdown(text: str) -> SafeString:
    """Markdown to HTML that is safe to put in a page as it is."""
    return mark_safe(_render(text or ""))  # sanitised by the allow-list just above


@lru_cache(maxsize=512)
def _render(text: str) -> str:
    # A page view renders the same description again and again: cached by its text.
    html = python_markdown.markdown(text, extensions=EXTENSIONS, output_format="html")
    return _cleaner.clean(html)

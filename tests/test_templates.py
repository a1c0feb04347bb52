"""The templates as files: mistakes the template engine draws on the page instead of refusing."""

import re
from pathlib import Path

from django.conf import settings

TEMPLATE_DIRS = [Path(directory) for directory in settings.TEMPLATES[0]["DIRS"]]


def test_every_short_comment_ends_on_its_own_line():
    """`{# ... #}` is one line only: a comment that goes on is printed into the page."""
    unclosed = [f"{path}:{number}" for directory in TEMPLATE_DIRS for path in directory.rglob("*.html")
                for number, line in enumerate(path.read_text().splitlines(), 1)
                if line.count("{#") > line.count("#}")]
    assert TEMPLATE_DIRS and not unclosed


# What the Content-Security-Policy (script-src, style-src 'self') refuses in a page, and what htmx could
# only do with eval (which it also refuses): inline scripts, style elements and attributes, event handler
# attributes, javascript: addresses, hx-on, js: values, [filter] triggers. The browser test sees the
# pages it visits; this sees every template, the states no test draws too.
INLINE = {
    "an inline <script>": re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.I),
    "a <style> element": re.compile(r"<style\b", re.I),
    "a style attribute": re.compile(r"\sstyle\s*=", re.I),
    "an event handler attribute": re.compile(r"\son[a-z]+\s*=", re.I),
    "a javascript: address": re.compile(r"javascript:", re.I),
    "hx-on": re.compile(r"\shx-on", re.I),
    "a js: value (hx-vals, hx-vars)": re.compile(r"hx-va(?:ls|rs)\s*=\s*[\"']\s*js:|hx-vars", re.I),
    "an hx-trigger [filter]": re.compile(r"hx-trigger\s*=\s*\"[^\"]*\[", re.I),
}
_COMMENTS = re.compile(r"{#.*?#}|{%\s*comment\s*%}.*?{%\s*endcomment\s*%}", re.S)


def test_no_template_has_what_the_content_security_policy_refuses():
    found = [f"{path}:{text[:match.start()].count(chr(10)) + 1}: {what}"
             for directory in TEMPLATE_DIRS for path in directory.rglob("*.html")
             for text in [_COMMENTS.sub(lambda comment: "\n" * comment.group().count("\n"), path.read_text())]
             for what, pattern in INLINE.items() for match in pattern.finditer(text)]
    assert TEMPLATE_DIRS and found == []

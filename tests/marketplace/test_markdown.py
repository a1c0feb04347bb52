"""Model descriptions (marketplace/markdown.py): Markdown that strangers write and anyone reads. What a
reader's browser gets is an allow-list's output: no scripts, handlers, styles or javascript: links; no
style attributes (the CSP would refuse them); and no image from another site (a tracking pixel tells its
owner who read the page): such an image keeps its alt text, shown in its place, and fetches nothing."""

from __future__ import annotations

import pytest

from marketplace.markdown import excerpt, plain_text, render_markdown


def test_markdown_keeps_tables_code_and_lists():
    html = render_markdown("| a | b |\n|---|--:|\n| 1 | 2 |\n\n```python\nprint('hi')\n```\n\n1. one\n2. two\n")
    assert "<table>" in html and "<th>a</th>" in html and '<td align="right">2</td>' in html
    assert "style" not in html  # aligned by attribute: the CSP refuses style attributes
    assert "<pre><code>print('hi')\n</code></pre>" in html
    assert "<ol>\n<li>one</li>" in html


def test_markdown_removes_scripts_handlers_styles_and_javascript_links():
    html = render_markdown(
        "<script>alert(1)</script>\n\n<img src=\"/x.png\" onerror=\"alert(2)\">\n\n[a](javascript:alert(3))\n\n"
        "<iframe src=\"https://evil.example\"></iframe><style>body{}</style>\n\n"
        "<a href=\"https://ok.example\" onclick=\"alert(4)\">ok</a>\n\n<p style=\"color:red\">red</p>\n\n"
        "<table><tr><td style=\"background:url(https://evil.example/t.png)\">cell</td></tr></table>")
    assert "script" not in html and "alert" not in html and "onerror" not in html and "onclick" not in html
    assert "iframe" not in html and "style" not in html and "javascript" not in html and "evil" not in html
    assert '<a href="https://ok.example" rel="nofollow noopener">ok</a>' in html
    assert '<img src="/x.png">' in html and "<p>red</p>" in html and "<td>cell</td>" in html


def test_markdown_links_get_nofollow_noopener():
    assert render_markdown("[x](https://example.org)") == (
        '<p><a href="https://example.org" rel="nofollow noopener">x</a></p>')


@pytest.mark.parametrize("image", [
    "![pixel](https://tracker.example/p.png?u=viewer)",  # the review's tracking pixel
    '<img src="https://tracker.example/p.png?u=viewer" alt="pixel">',
    "![pixel](//tracker.example/p.png)",  # protocol-relative: another host over this page's scheme
    '<img src="HTTP://tracker.example/p.png" alt="pixel">',
    '<img src="http:tracker.example/p.png" alt="pixel">',
    '<img src="  https://tracker.example/p.png" alt="pixel">',  # spaces a browser trims
    '<img src="&#104;ttps://tracker.example/p.png" alt="pixel">',  # an entity for the "h"
    '<img src="&#x2F;&#x2F;tracker.example/p.png" alt="pixel">',  # "//" as entities
    '<img src="/&#9;/tracker.example/p.png" alt="pixel">',  # a tab the URL parser drops: "//"
    '<img src="/\n/tracker.example/p.png" alt="pixel">',  # a newline, dropped too: "//"
    '<img src="/\\tracker.example/p.png" alt="pixel">',  # a backslash is a slash: "//"
    '<img src="\\\\tracker.example/p.png" alt="pixel">',
    "![pixel](p.png)",  # relative to the model page's address; nothing a description needs
    '<img src="data:image/png;base64,iVBORw0KGgo=" alt="pixel">',
])
def test_an_image_from_anywhere_but_this_site_keeps_only_its_alt_text(image):
    html = render_markdown(f"Before {image} after")
    assert html == '<p>Before <img alt="pixel"> after</p>'  # a browser shows the alt text; nothing is fetched


@pytest.mark.parametrize("src", ["/static/img/favicon.svg", "/site/logo/?v=1"])
def test_an_image_on_this_site_stays(src):
    assert f'src="{src.replace("&", "&amp;")}"' in render_markdown(f"![ours]({src})")


# ---------------------------------------------------------------- plain text (search cards)

def test_plain_text_is_what_a_reader_sees_without_the_markup():
    text = ("# Iris\n\nA **bold** and _quiet_ model, see [the docs](https://example.org).\n\n"
            "| field | unit |\n|---|---|\n| sepal_length | cm |\n\n1. first\n2. second\n\n<b>R&amp;D</b> &lt;3")
    assert plain_text(text) == ("Iris A bold and quiet model, see the docs. field unit sepal_length cm "
                                "first second R&D <3")


def test_plain_text_sets_code_blocks_aside_unless_they_are_all_there_is():
    assert plain_text("Calls it.\n\n```python\nimport requests\n```\n") == "Calls it."
    assert plain_text("```\npredict(x)\n```") == "predict(x)"


def test_plain_text_drops_what_the_page_would_drop():
    assert plain_text("Safe<script>alert(1)</script> words") == "Safe words"


def test_excerpt_ends_at_a_word_with_an_ellipsis_within_the_limit():
    assert excerpt("one two three", 20) == "one two three"
    assert excerpt("one two three", 12) == "one two…"
    assert excerpt("one two three", 8) == "one two…"  # the ellipsis counts: exactly 8
    assert excerpt("one, two three", 7) == "one…"  # no comma left dangling
    assert excerpt("abcdefghij", 5) == "abcd…"

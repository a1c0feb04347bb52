"""The templates as files: mistakes the template engine draws on the page instead of refusing."""

from pathlib import Path

from django.conf import settings

TEMPLATE_DIRS = [Path(directory) for directory in settings.TEMPLATES[0]["DIRS"]]


def test_every_short_comment_ends_on_its_own_line():
    """`{# ... #}` is one line only: a comment that goes on is printed into the page."""
    unclosed = [f"{path}:{number}" for directory in TEMPLATE_DIRS for path in directory.rglob("*.html")
                for number, line in enumerate(path.read_text().splitlines(), 1)
                if line.count("{#") > line.count("#}")]
    assert TEMPLATE_DIRS and not unclosed

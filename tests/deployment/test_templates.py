"""Phones: every table of the deployment pages scrolls inside its card (a `table-scroll` wrapper, whose
style is in portal.css) instead of being clipped by it."""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "deployment"


def test_every_table_sits_directly_in_a_table_scroll_wrapper():
    tables = 0
    for template in sorted(TEMPLATES.glob("*.html")):
        text = template.read_text()
        for found in re.finditer(r"<table\b", text):
            tables += 1
            before = text[:found.start()].rstrip()
            opened = before[before.rfind("<"):]
            assert re.fullmatch(r'<div class="table-scroll(?: [^"]*)?">', opened), (template.name, opened)
    assert tables >= 3  # the list, the history, the targets

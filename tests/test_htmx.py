"""acumos_portal.htmx.is_htmx: the one test of "does htmx want a part of the page"."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from acumos_portal.htmx import is_htmx


@pytest.mark.parametrize(("headers", "expected"), [
    ({}, False),
    ({"HX-Request": "true"}, True),
    ({"HX-Request": "false"}, False),
    ({"HX-Request": "true", "HX-History-Restore-Request": "true"}, False),  # wants the whole page
    ({"HX-Request": "true", "HX-History-Restore-Request": "false"}, True),
])
def test_an_htmx_request_wants_a_part_unless_it_restores_history(headers, expected):
    assert is_htmx(RequestFactory().get("/", headers=headers)) is expected

"""Whether a request came from htmx (https://htmx.org/reference/#request_headers): the one test every
view that answers htmx with a part of a page uses."""

from __future__ import annotations


def is_htmx(request) -> bool:
    """True for an htmx request, which wants only the part it swaps in. A history restore (the browser
    went back and htmx's cache had no copy) is an htmx request too, but it wants the whole page."""
    headers = request.headers
    return headers.get("HX-Request") == "true" and headers.get("HX-History-Restore-Request") != "true"

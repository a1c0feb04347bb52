"""htmx helpers (https://htmx.org/reference/): whether a request came from htmx, the one test every view that
answers htmx with a part of a page uses; and events an answer asks the page to fire (the HX-Trigger header),
such as a toast.

A toast is how an htmx answer says what happened where the eye is, as a full page's Django messages do
(base.html draws those as toasts): the view adds it to the response it returns, and portal.js shows it
near the top of the window, whatever the part swapped in::

    response = render(request, "marketplace/_model_favorite.html", context)
    return add_toast(response, "Added to your favorites.")

    # or, for a view that already said it with django.contrib.messages:
    messages.success(request, "The details are saved.")
    return messages_as_toasts(request, render(request, "marketplace/_model_manage.html", context))

The header is JSON (`{"toast": {"level": "success", "text": "..."}}`; a second toast makes the value a list)
and keeps any event already in it, plain names included (`HX-Trigger: notifications-read`). It is ASCII
(json escapes the rest): a header's value must be, and htmx parses it as it comes.
"""

from __future__ import annotations

import json

from django.contrib import messages

TOAST = "toast"  # the event's name: portal.js listens for it
TOAST_LEVELS = ("success", "info", "warning", "error")


def is_htmx(request) -> bool:
    """True for an htmx request, which wants only the part it swaps in. A history restore (the browser
    went back and htmx's cache had no copy) is an htmx request too, but it wants the whole page."""
    headers = request.headers
    return headers.get("HX-Request") == "true" and headers.get("HX-History-Restore-Request") != "true"


def add_trigger(response, event: str, detail=None):
    """Asks the page to fire `event` (with `detail`) when this answer arrives: HX-Trigger, merged with the
    events already asked for. Returns the response."""
    events = _triggers(response.get("HX-Trigger", ""))
    events[event] = detail
    response["HX-Trigger"] = json.dumps(events)
    return response


def add_toast(response, text: str, level: str = "success"):
    """Adds a toast that portal.js shows when this htmx answer arrives: `level` is success, info (both fade
    after a while), warning or error (they stay until closed). Returns the response."""
    if level not in TOAST_LEVELS:
        raise ValueError(f"a toast's level is one of {', '.join(TOAST_LEVELS)}, not {level!r}")
    toast = {"level": level, "text": str(text)}
    earlier = _triggers(response.get("HX-Trigger", "")).get(TOAST)
    if earlier is None:
        return add_trigger(response, TOAST, toast)
    return add_trigger(response, TOAST, [*(earlier if isinstance(earlier, list) else [earlier]), toast])


def messages_as_toasts(request, response):
    """Moves the messages waiting for the request's user (django.contrib.messages) into toasts on this htmx
    answer, so that they are shown now rather than on the next full page. Returns the response."""
    for message in messages.get_messages(request):
        level = message.level_tag if message.level_tag in TOAST_LEVELS else "info"
        add_toast(response, str(message), level)
    return response


def _triggers(header: str) -> dict:
    """The events an HX-Trigger header asks for, as htmx reads it: a JSON object, or names and commas."""
    if header.startswith("{"):
        return json.loads(header)
    return {name.strip(): None for name in header.split(",") if name.strip()}

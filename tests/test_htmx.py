"""acumos_portal.htmx: the one test of "does htmx want a part of the page", and the HX-Trigger events an
answer asks the page to fire (a toast, which portal.js shows)."""

from __future__ import annotations

import json

import pytest
from django.contrib.messages import constants
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.signed_cookies import SessionStore
from django.http import HttpResponse
from django.test import RequestFactory

from acumos_portal.htmx import add_toast, add_trigger, is_htmx, messages_as_toasts


@pytest.mark.parametrize(("headers", "expected"), [
    ({}, False),
    ({"HX-Request": "true"}, True),
    ({"HX-Request": "false"}, False),
    ({"HX-Request": "true", "HX-History-Restore-Request": "true"}, False),  # wants the whole page
    ({"HX-Request": "true", "HX-History-Restore-Request": "false"}, True),
])
def test_an_htmx_request_wants_a_part_unless_it_restores_history(headers, expected):
    assert is_htmx(RequestFactory().get("/", headers=headers)) is expected


def triggers(response) -> dict:
    return json.loads(response["HX-Trigger"])


def test_a_toast_is_an_hx_trigger_event_in_json():
    response = add_toast(HttpResponse(), "The details are saved.")
    assert triggers(response) == {"toast": {"level": "success", "text": "The details are saved."}}


def test_a_toast_keeps_the_events_already_asked_for_plain_names_too():
    response = HttpResponse(headers={"HX-Trigger": "notifications-read, bell-changed"})
    add_toast(response, "Marked 3 notifications as read.", level="info")
    assert triggers(response) == {"notifications-read": None, "bell-changed": None,
                                  "toast": {"level": "info", "text": "Marked 3 notifications as read."}}


def test_a_second_toast_makes_a_list_in_the_order_they_were_added():
    response = add_trigger(HttpResponse(), "deployment-changed", {"id": 7})
    add_toast(add_toast(response, "Saved."), "The runner did not answer.", level="error")
    assert triggers(response) == {"deployment-changed": {"id": 7}, "toast": [
        {"level": "success", "text": "Saved."}, {"level": "error", "text": "The runner did not answer."}]}


def test_the_header_is_ascii_whatever_the_text():
    """A header's value must be ASCII (Django would MIME-encode it, which htmx cannot parse): json escapes."""
    response = add_toast(HttpResponse(), "Token “laptop” is revoked → it no longer works.")
    assert response["HX-Trigger"].isascii()
    assert triggers(response)["toast"]["text"] == "Token “laptop” is revoked → it no longer works."


def test_a_toast_of_an_unknown_level_is_refused_with_the_levels_allowed():
    with pytest.raises(ValueError, match="one of success, info, warning, error, not 'fatal'"):
        add_toast(HttpResponse(), "Boom.", level="fatal")


def test_waiting_messages_become_toasts_and_are_used_up():
    request = RequestFactory().post("/")
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    request._messages.level = constants.DEBUG  # a debug message too (Django drops those by default)
    for level, text in ((constants.SUCCESS, "Saved."), (constants.WARNING, "Nearly full."),
                        (constants.DEBUG, "Took 3 ms."), (constants.ERROR, "Refused.")):
        request._messages.add(level, text)
    response = messages_as_toasts(request, HttpResponse())
    assert triggers(response) == {"toast": [
        {"level": "success", "text": "Saved."}, {"level": "warning", "text": "Nearly full."},
        {"level": "info", "text": "Took 3 ms."}, {"level": "error", "text": "Refused."}]}
    # Used up: what the messages middleware does at the end of the request keeps none for the next page.
    request._messages.update(response)
    assert response.cookies.get("messages") is None and request.session.get("_messages") is None


def test_no_waiting_message_no_header():
    request = RequestFactory().get("/")
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    assert "HX-Trigger" not in messages_as_toasts(request, HttpResponse())

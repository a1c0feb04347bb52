"""base.html: the page's Django messages are toasts (includes/toast.html) that portal.js pins near the top
of the window: an error or a warning interrupts (role=alert), anything else waits its turn (role=status);
the close button is there for portal.js to show (hidden without JavaScript, where the toasts are a block at
the top of the page); an empty copy waits in a <template> for the toasts htmx answers carry."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.contrib import messages
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.signed_cookies import SessionStore
from django.shortcuts import render
from django.test import RequestFactory
from django.urls import reverse

pytestmark = pytest.mark.django_db


class Toasts(HTMLParser):
    """The toasts of a page: each one's attributes, text and whether its close button is hidden; those in
    a <template> apart."""

    def __init__(self, html: str):
        super().__init__()
        self.found: list[dict] = []
        self.in_template: list[dict] = []
        self._template_depth = 0
        self._current: dict | None = None
        self._depth = 0
        self._text = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "template":
            self._template_depth += 1
        if "toast" in (attrs.get("class") or "").split():
            self._current = {**attrs, "text": "", "close_hidden": None}
            (self.in_template if self._template_depth else self.found).append(self._current)
            self._depth = 0
        if self._current is not None:
            self._depth += tag not in ("path",)
            self._text = "toast__text" in (attrs.get("class") or "")
            if "data-toast-close" in attrs:
                self._current["close_hidden"] = "hidden" in attrs

    def handle_endtag(self, tag):
        if tag == "template":
            self._template_depth -= 1
        if self._current is not None and tag not in ("path",):
            self._text = False
            self._depth -= 1
            if self._depth == 0:
                self._current = None

    def handle_data(self, data):
        if self._current is not None and self._text:
            self._current["text"] += data.strip()


def page_with(*said: tuple[int, str]) -> str:
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    for level, text in said:
        messages.add_message(request, level, text)
    return render(request, "base.html").content.decode()


@pytest.mark.parametrize(("level", "kind", "role", "live"), [
    (messages.SUCCESS, "success", "status", "polite"),
    (messages.INFO, "info", "status", "polite"),
    (messages.WARNING, "warning", "alert", "assertive"),
    (messages.ERROR, "error", "alert", "assertive"),
])
def test_a_message_is_a_toast_with_the_role_its_level_asks_for(level, kind, role, live):
    toasts = Toasts(page_with((level, "Something happened.")))
    assert [(t["class"], t["role"], t["aria-live"], t["aria-atomic"], t["text"]) for t in toasts.found] == [
        (f"toast toast--{kind}", role, live, "true", "Something happened.")]
    assert toasts.found[0]["close_hidden"] is True  # portal.js shows it; without JavaScript it would do nothing


def test_every_message_is_a_toast_in_the_order_said_inside_the_toasts_box():
    html = page_with((messages.SUCCESS, "Saved."), (messages.ERROR, "But the runner did not answer."))
    assert [(t["class"], t["text"]) for t in Toasts(html).found] == [
        ("toast toast--success", "Saved."), ("toast toast--error", "But the runner did not answer.")]
    box = html[html.index('id="toasts"'):html.index('<template id="toast-template">')]
    assert "Saved." in box and "But the runner did not answer." in box


def test_a_page_without_messages_has_an_empty_box_and_the_template_portal_js_fills():
    html = page_with()
    assert '<div class="toasts" id="toasts"></div>' in html  # empty: :empty hides it, nothing takes room
    toasts = Toasts(html)
    assert toasts.found == []
    assert [(t["class"], t["role"], t["text"]) for t in toasts.in_template] == [("toast toast--info", "status", "")]


def test_a_message_after_a_redirect_is_a_toast_on_the_next_page(client_for, owner):
    client = client_for(owner)
    response = client.post(reverse("accounts:logout"), follow=True)
    assert response.status_code == 200
    toasts = Toasts(response.content.decode()).found
    said = [(t["class"], t["role"], t["text"]) for t in toasts]
    assert said == [("toast toast--info", "status", "You are signed out.")]
    again = client.get(response.request["PATH_INFO"])
    assert Toasts(again.content.decode()).found == []  # said once

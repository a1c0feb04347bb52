"""The notification settings page (/notifications/settings/): every kind a user may be told of, grouped,
a checkbox each (the always-on one ticked and fixed), saved at once with htmx or with Save without it;
linked from the notifications list and the profile."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from marketplace import services
from marketplace.choices import NotificationKind as Kind
from marketplace.models import Notification, NotificationPreference

pytestmark = pytest.mark.django_db
SETTINGS = reverse("marketplace:notification-settings")
HTMX = {"HX-Request": "true"}
# What a browser sends with every box ticked but comments (the always-on box is disabled: never sent).
ALL_BUT_COMMENTS = {"onboarding_succeeded": "on", "publish_approved": "on", "publish_declined": "on",
                    "shared": "on", "review": "on", "deployment": "on", "federation": "on", "licensing": "on"}


def checkbox(html: str, kind: str) -> str:
    """The <input> of one kind's checkbox."""
    return re.search(rf'<input type="checkbox" name="{kind}"[^>]*>', html).group(0)


def test_it_lists_the_kinds_grouped_each_ticked_until_turned_off(client_for, owner):
    html = client_for(owner).get(SETTINGS).content.decode()
    for group in ("Your models", "What people say", "Deployments"):
        assert f"<legend>{group}</legend>" in html
    assert " checked" in checkbox(html, "comment") and 'aria-describedby="id_comment_helptext"' in checkbox(
        html, "comment")
    assert '<span class="field__help" id="id_comment_helptext">Someone commented on your model, or replied' in html
    assert " disabled" in checkbox(html, "onboarding_failed") and " checked" in checkbox(html, "onboarding_failed")
    assert "(always on)" in html and "It cannot be turned off" in html
    assert "Reviewing" not in html  # publish requests go to publishers only


def test_publishers_also_choose_about_review_requests(client_for, publisher):
    html = client_for(publisher).get(SETTINGS).content.decode()
    assert "<legend>Reviewing</legend>" in html and 'name="publish_requested"' in html


def test_a_change_is_saved_without_a_reload(client_for, owner):
    response = client_for(owner).post(SETTINGS, ALL_BUT_COMMENTS, headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html and 'id="notification-settings"' in html
    assert " checked" not in checkbox(html, "comment") and " checked" in checkbox(html, "review")
    toast = json.loads(response["HX-Trigger"])["toast"]
    assert toast == {"level": "success", "text": "Saved: New comment off; you are told of 9 of the 10 kinds of events."}
    assert toast["text"] in html  # said beside the form too
    assert NotificationPreference.objects.get(user=owner, kind=Kind.COMMENT).enabled is False
    assert services.notify(owner, Kind.COMMENT, "theo commented on Iris") is None
    assert not Notification.objects.filter(user=owner).exists()


def test_without_javascript_save_comes_back_with_a_confirmation(client_for, owner):
    client = client_for(owner)
    all_but_deployments = {**ALL_BUT_COMMENTS, "comment": "on", "deployment": ""}
    response = client.post(SETTINGS, all_but_deployments, follow=True)
    assert response.redirect_chain == [(SETTINGS, 302)]
    html = response.content.decode()
    assert "Saved: Deployment status off; you are told of 9 of the 10 kinds of events." in html
    assert NotificationPreference.objects.get(user=owner, kind=Kind.DEPLOYMENT).enabled is False
    again = client.post(SETTINGS, all_but_deployments, follow=True)
    assert "Saved: nothing changed" in again.content.decode()


def test_the_always_on_box_cannot_be_turned_off_by_a_forged_post(client_for, owner):
    client_for(owner).post(SETTINGS, {**ALL_BUT_COMMENTS, "onboarding_failed": ""}, headers=HTMX)
    assert not NotificationPreference.objects.filter(kind=Kind.ONBOARDING_FAILED).exists()


def test_anonymous_visitors_are_asked_to_sign_in(client):
    for response in (client.get(SETTINGS), client.post(SETTINGS, ALL_BUT_COMMENTS)):
        assert response.status_code == 302 and response.url.startswith(reverse("accounts:login"))


def test_the_notifications_list_and_the_profile_link_to_it(client_for, owner):
    client = client_for(owner)
    for page in (reverse("marketplace:notifications"), reverse("accounts:profile")):
        assert f'href="{SETTINGS}"' in client.get(page).content.decode(), page

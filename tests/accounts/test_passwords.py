"""Password reset and change, and signing out everywhere, as a person does them through the pages:
each ends every JWT from /onboarding-app/v2/auth and the user's other sessions (deleted from the
database and the cache), and keeps API tokens."""

from __future__ import annotations

import re

import pytest
from django.contrib.sessions.models import Session
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from acumos_portal.accounts.models import User, UserSession

from ..conftest import PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a brand new passphrase"
AUTH = "/onboarding-app/v2/auth"


def signed_in(username: str = "owner", password: str = PASSWORD) -> Client:
    """A browser signed in through the real form."""
    client = Client()
    response = client.post(reverse("accounts:login"), {"username": username, "password": password})
    assert response.status_code == 302, response.content
    return client


def jwt_of(username: str = "owner", password: str = PASSWORD) -> str:
    response = Client().post(AUTH, {"request_body": {"username": username, "password": password}},
                             content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()["jwtToken"]


def works(authorization: str) -> bool:
    return Client().get("/api/v1/tokens", HTTP_AUTHORIZATION=authorization).status_code == 200


def is_signed_in(client: Client) -> bool:
    return client.get(reverse("accounts:profile")).status_code == 200


def session_stored(key: str) -> bool:
    """In the database or in the cache (cached_db sessions are read from the cache first)."""
    return Session.objects.filter(session_key=key).exists() or cache.get(f"django.contrib.sessions.cached_db{key}") \
        is not None


# ---------------------------------------------------------------- reset

def test_the_reset_flow_end_to_end_ends_every_sign_in(owner, api_token):
    laptop = signed_in()
    laptop_key = laptop.session.session_key
    jwt = jwt_of()
    key = api_token(owner)
    assert works(f"Bearer {jwt}") and session_stored(laptop_key)

    browser = Client()
    assert "Forgot your password?" in browser.get(reverse("accounts:login")).content.decode()
    response = browser.post(reverse("accounts:password-reset"), {"email": "OWNER@example.com"})
    assert response.status_code == 302 and response.url == reverse("accounts:password-reset-done")
    assert "If an account has that address" in browser.get(response.url).content.decode()
    [message] = mail.outbox
    assert message.to == [owner.email] and "owner" in message.body
    link = re.search(r"http://testserver(/accounts/password/reset/\S+/)", message.body).group(1)

    form_page = browser.get(link, follow=True)  # Django moves the token out of the address first
    assert form_page.status_code == 200 and "Set a new password" in form_page.content.decode()
    done = browser.post(form_page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD,
                                                          "new_password2": NEW_PASSWORD})
    assert done.status_code == 302 and done.url == reverse("accounts:password-reset-complete")
    assert "Password set" in browser.get(done.url).content.decode()

    assert not works(f"Bearer {jwt}")  # minted before the reset
    assert not session_stored(laptop_key) and not is_signed_in(laptop)
    assert works(f"owner:{key}")  # API tokens are revoked one by one, not by a reset
    assert Client().post(reverse("accounts:login"), {"username": "owner", "password": PASSWORD}).status_code == 200
    assert signed_in(password=NEW_PASSWORD)
    assert works(f"Bearer {jwt_of(password=NEW_PASSWORD)}")
    assert browser.get(link, follow=True).context["validlink"] is False  # a link works once


def test_a_reset_for_an_unknown_address_looks_the_same_and_sends_nothing(owner):
    known = Client().post(reverse("accounts:password-reset"), {"email": owner.email})
    unknown = Client().post(reverse("accounts:password-reset"), {"email": "nobody@example.com"})
    assert (known.status_code, known.url) == (unknown.status_code, unknown.url)
    assert [m.to for m in mail.outbox] == [[owner.email]]


def test_a_reset_lifts_the_lockout_for_its_account_from_that_address(owner):
    for _ in range(5):
        Client().post(reverse("accounts:login"), {"username": "owner", "password": "wrong"})
    assert Client().post(reverse("accounts:login"), {"username": "owner", "password": PASSWORD}).status_code == 429
    browser = Client()
    browser.post(reverse("accounts:password-reset"), {"email": owner.email})
    link = re.search(r"http://testserver(/accounts/password/reset/\S+/)", mail.outbox[0].body).group(1)
    form_page = browser.get(link, follow=True)
    browser.post(form_page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert signed_in(password=NEW_PASSWORD)


# ---------------------------------------------------------------- change

def test_changing_the_password_keeps_this_session_and_ends_the_others(owner):
    here, elsewhere = signed_in(), signed_in()
    elsewhere_key = elsewhere.session.session_key
    jwt = jwt_of()
    assert is_signed_in(elsewhere) and works(jwt)

    page = here.get(reverse("accounts:password-change"))
    assert page.status_code == 200 and "Change your password" in page.content.decode()
    wrong = here.post(reverse("accounts:password-change"), {"old_password": "nope", "new_password1": NEW_PASSWORD,
                                                           "new_password2": NEW_PASSWORD})
    assert wrong.status_code == 200 and wrong.context["form"].errors["old_password"]
    response = here.post(reverse("accounts:password-change"), {"old_password": PASSWORD,
                                                              "new_password1": NEW_PASSWORD,
                                                              "new_password2": NEW_PASSWORD}, follow=True)

    assert response.redirect_chain[-1][0] == reverse("accounts:profile")
    assert "Your password is changed" in response.content.decode()
    assert is_signed_in(here)
    assert not session_stored(elsewhere_key) and not is_signed_in(elsewhere)
    assert not works(jwt)
    assert list(UserSession.objects.filter(user=owner).values_list("session_key", flat=True)) == [
        here.session.session_key]
    assert signed_in(password=NEW_PASSWORD)


def test_the_account_menu_and_profile_lead_to_the_password_and_sign_out_everywhere(client_for, owner):
    client = client_for(owner)
    page = client.get(reverse("accounts:profile")).content.decode()
    assert f'href="{reverse("accounts:password-change")}"' in page
    assert f'action="{reverse("accounts:logout-everywhere")}"' in page
    assert reverse("accounts:password-change") in client.get(reverse("marketplace:browse")).content.decode()


# ---------------------------------------------------------------- sign out everywhere

def test_signing_out_everywhere_ends_every_session_and_jwt_but_not_api_tokens(owner, other_user, api_token):
    here, elsewhere, someone_else = signed_in(), signed_in(), signed_in("other")
    keys = [here.session.session_key, elsewhere.session.session_key]
    jwt, key = jwt_of(), api_token(owner)

    response = here.post(reverse("accounts:logout-everywhere"), follow=True)

    assert response.redirect_chain[-1][0] == reverse("accounts:login")
    assert "You are signed out everywhere (2 sessions)" in response.content.decode()
    assert not is_signed_in(here) and not is_signed_in(elsewhere)
    assert not any(session_stored(k) for k in keys)
    assert not works(jwt) and not works(f"Bearer {jwt}")
    assert works(f"Bearer {key}")
    assert is_signed_in(someone_else)  # nobody else's
    assert here.get(reverse("accounts:logout-everywhere")).status_code == 405
    assert works(jwt_of())  # a new sign-in works


def test_a_session_nobody_recorded_ends_too(owner):
    """One made before sessions were recorded: its auth hash covers the generation, so Django signs it out."""
    old = signed_in()
    UserSession.objects.all().delete()
    signed_in().post(reverse("accounts:logout-everywhere"))
    assert not is_signed_in(old)


def test_a_password_hash_upgrade_at_sign_in_ends_nothing(owner, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher",
                                 "django.contrib.auth.hashers.MD5PasswordHasher"]
    jwt = jwt_of()  # signing in upgrades the MD5 hash: not a new password
    assert User.objects.get(pk=owner.pk).password.startswith("pbkdf2_sha256$")
    assert works(jwt)
    here = signed_in()
    assert is_signed_in(here) and works(jwt)


def test_an_admin_setting_a_password_ends_the_users_jwts(owner):
    jwt = jwt_of()
    user = User.objects.get(pk=owner.pk)
    user.set_password(NEW_PASSWORD)
    user.save()
    assert not works(jwt)

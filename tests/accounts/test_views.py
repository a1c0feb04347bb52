"""Sign-in, sign-out, the profile page and API tokens through the web pages."""

from __future__ import annotations

import pytest
from django.urls import reverse

from acumos_portal.accounts.models import ApiToken
from acumos_portal.accounts.services import token_create, user_for_credential

from ..conftest import PASSWORD

pytestmark = pytest.mark.django_db


def create_token(client, name: str = "laptop") -> str:
    response = client.post(reverse("accounts:token-create"), {"name": name})
    assert response.status_code == 200
    return response.context["key"]


def test_it_signs_in_with_username_and_password(client, owner):
    response = client.post(reverse("accounts:login"), {"username": "owner", "password": PASSWORD})
    assert response.status_code == 302 and response.url == reverse("marketplace:my-models")
    page = client.get(reverse("marketplace:my-models"))
    assert page.status_code == 200 and "Signed in as" in page.content.decode()


def test_it_refuses_a_wrong_password_with_a_message(client, owner):
    response = client.post(reverse("accounts:login"), {"username": "owner", "password": "wrong"})
    assert response.status_code == 200
    assert "enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_it_follows_next_after_sign_in(client, owner):
    target = reverse("accounts:profile")
    response = client.post(reverse("accounts:login"), {"username": "owner", "password": PASSWORD, "next": target})
    assert response.url == target


def test_it_signs_out_with_post_only(client_for, owner):
    client = client_for(owner)
    assert client.get(reverse("accounts:logout")).status_code == 405
    response = client.post(reverse("accounts:logout"))
    assert response.status_code == 302 and response.url == reverse("accounts:login")
    assert "You are signed out." in client.get(response.url).content.decode()
    assert client.get(reverse("marketplace:my-models")).status_code == 302


def test_it_sends_anonymous_visitors_to_sign_in(client):
    response = client.get(reverse("accounts:profile"))
    assert response.status_code == 302 and response.url.startswith(reverse("accounts:login"))


def test_it_shows_the_roles_on_the_profile(client_for, publisher):
    response = client_for(publisher).get(reverse("accounts:profile"))
    assert response.status_code == 200
    assert '<span class="badge badge--role">Publisher</span>' in response.content.decode()


def test_it_shows_a_new_token_once_and_it_authenticates(client_for, owner):
    client = client_for(owner)
    key = create_token(client, "ci-pipeline")
    assert user_for_credential(key) == owner
    assert user_for_credential(f"owner:{key}") == owner
    token = ApiToken.objects.get(user=owner)
    assert token.name == "ci-pipeline" and key.startswith(token.prefix)
    profile = client.get(reverse("accounts:profile")).content.decode()
    assert "ci-pipeline" in profile and key not in profile


def test_it_does_not_cache_the_page_with_the_key(client_for, owner):
    response = client_for(owner).post(reverse("accounts:token-create"), {"name": "x"})
    assert "no-store" in response["Cache-Control"]


def test_it_needs_a_token_name(client_for, owner):
    response = client_for(owner).post(reverse("accounts:token-create"), {"name": "  "})
    assert response.status_code == 400
    assert response.context["form"].errors["name"]
    assert not ApiToken.objects.exists()


def test_it_rotates_a_token_the_old_key_stops_working(client_for, owner):
    client = client_for(owner)
    old_key = create_token(client)
    token = ApiToken.objects.get(user=owner)
    response = client.post(reverse("accounts:token-rotate", args=[token.pk]))
    assert response.status_code == 200
    new_key = response.context["key"]
    assert new_key != old_key
    assert user_for_credential(old_key) is None
    assert user_for_credential(new_key) == owner
    assert ApiToken.objects.filter(user=owner, revoked__isnull=True).get().name == "laptop"


def test_it_revokes_a_token_the_key_stops_working(client_for, owner):
    client = client_for(owner)
    key = create_token(client)
    token = ApiToken.objects.get(user=owner)
    response = client.post(reverse("accounts:token-revoke", args=[token.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("accounts:profile")
    assert "is revoked" in response.content.decode()
    assert user_for_credential(key) is None
    token.refresh_from_db()
    assert not token.active


def test_it_does_not_let_another_user_revoke_or_rotate_my_token(client_for, owner, other_user):
    token, key = token_create(user=owner, name="mine")
    intruder = client_for(other_user)
    assert intruder.post(reverse("accounts:token-revoke", args=[token.pk])).status_code == 404
    assert intruder.post(reverse("accounts:token-rotate", args=[token.pk])).status_code == 404
    assert user_for_credential(key) == owner
    assert ApiToken.objects.filter(user=owner).count() == 1
    assert "mine" not in intruder.get(reverse("accounts:profile")).content.decode()


def test_it_refuses_token_actions_by_get(client_for, owner):
    token, key = token_create(user=owner, name="mine")
    client = client_for(owner)
    assert client.get(reverse("accounts:token-revoke", args=[token.pk])).status_code == 405
    assert client.get(reverse("accounts:token-create")).status_code == 405
    assert user_for_credential(key) == owner


# ---------------------------------------------------------------- sign-up (more in test_signup.py)

def test_sign_up_can_be_closed(client, db, settings):
    settings.ACUMOS_SIGNUP_OPEN = False
    assert client.get(reverse("accounts:signup")).status_code == 404
    assert "Create an account" not in client.get(reverse("accounts:login")).content.decode()


def test_the_top_bar_offers_sign_up_beside_sign_in_while_it_is_open(client, owner, settings):
    sign_up = f'href="{reverse("accounts:signup")}">Sign up</a>'
    assert sign_up in client.get(reverse("marketplace:browse")).content.decode()
    assert sign_up not in client.get(reverse("accounts:signup")).content.decode()  # there already
    settings.ACUMOS_SIGNUP_OPEN = False
    assert sign_up not in client.get(reverse("marketplace:browse")).content.decode()
    settings.ACUMOS_SIGNUP_OPEN = True
    client.force_login(owner)
    assert sign_up not in client.get(reverse("marketplace:browse")).content.decode()

"""/api/v1/tokens: create (the key shown once), use, rotate, revoke; tokens are personal."""

from __future__ import annotations

import pytest
from django.test import Client

from acumos_portal.accounts.models import ApiToken

TOKENS = "/api/v1/tokens"


def as_token(key: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {key}"})


def works(authorization: str) -> bool:
    status = Client().get("/api/v1/solutions", headers={"Authorization": authorization}).status_code
    assert status in (200, 401)
    return status == 200


@pytest.mark.django_db
def test_it_creates_a_token_and_shows_its_key_once(owner, client_for):
    response = client_for(owner).post(TOKENS, {"name": "laptop"}, content_type="application/json")
    assert response.status_code == 201, response.content
    created = response.json()
    key = created["key"]
    assert key.startswith("acu_") and created["prefix"] == key[:10] and created["active"] is True
    assert created["name"] == "laptop" and created["revoked"] is None
    listed = client_for(owner).get(TOKENS).json()
    assert [t["id"] for t in listed] == [created["id"]]
    assert "key" not in listed[0] and key not in client_for(owner).get(f"{TOKENS}/{created['id']}").content.decode()
    assert ApiToken.objects.get().key_hash != key


@pytest.mark.django_db
def test_it_accepts_the_new_token_in_every_acumos_form(owner, client_for):
    key = client_for(owner).post(TOKENS, {}, content_type="application/json").json()["key"]
    assert works(f"Bearer {key}") and works(key) and works(f"owner:{key}")
    assert not works(f"other:{key}")
    assert ApiToken.objects.get().last_used is not None
    assert ApiToken.objects.get().name == "token"


@pytest.mark.django_db
def test_it_rotates_a_token(owner, api_token):
    old = api_token(owner)
    token = ApiToken.objects.get()
    response = as_token(old).post(f"{TOKENS}/{token.id}/rotate")
    assert response.status_code == 201, response.content
    new = response.json()
    assert new["key"] != old and new["name"] == "tests" and new["id"] != token.id
    assert not works(f"Bearer {old}") and works(f"Bearer {new['key']}")
    rotated_again = as_token(new["key"]).post(f"{TOKENS}/{token.id}/rotate")
    assert rotated_again.status_code == 409 and rotated_again.json()["error"]["code"] == "token_revoked"


@pytest.mark.django_db
def test_it_revokes_a_token_at_once(owner, client_for, api_token):
    key = api_token(owner)
    token = ApiToken.objects.get()
    assert works(key)
    assert client_for(owner).delete(f"{TOKENS}/{token.id}").status_code == 204
    assert not works(key)
    shown = client_for(owner).get(f"{TOKENS}/{token.id}").json()
    assert shown["active"] is False and shown["revoked"] is not None
    assert client_for(owner).delete(f"{TOKENS}/{token.id}").status_code == 204  # revoking twice is fine


@pytest.mark.django_db
def test_it_keeps_tokens_personal(owner, other_user, admin_user, client_for, api_token):
    api_token(owner)
    token = ApiToken.objects.get()
    for user in (other_user, admin_user):
        client = client_for(user)
        assert client.get(TOKENS).json() == []
        for response in (client.get(f"{TOKENS}/{token.id}"), client.post(f"{TOKENS}/{token.id}/rotate"),
                         client.delete(f"{TOKENS}/{token.id}")):
            assert response.status_code == 404, response.content
            assert response.json()["error"]["code"] == "not_found"
    assert ApiToken.objects.get().active


@pytest.mark.django_db
def test_it_validates_the_name_and_wants_credentials(owner, client_for):
    response = client_for(owner).post(TOKENS, {"name": "x" * 101}, content_type="application/json")
    assert response.status_code == 400 and "name" in response.json()["error"]["details"]
    anonymous = client_for(None).post(TOKENS, {"name": "x"}, content_type="application/json")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "not_authenticated"
    assert not ApiToken.objects.exists()

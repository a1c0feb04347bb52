"""Sign-up through the pages, as a stranger meets it: an email link finishes the account; the answer is
the same whether the name or the email has an account; names that read as another are refused, so are
hidden characters; an address may ask a few times an hour."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.urls import reverse

from acumos_portal.accounts.choices import Role
from acumos_portal.accounts.models import SignUpRequest, User

from ..factories import UserFactory

pytestmark = pytest.mark.django_db

PASSPHRASE = "a long enough passphrase"
SIGN_UP = {"username": "newcomer", "email": "New@Example.com", "password1": PASSPHRASE, "password2": PASSPHRASE}


def sign_up(client, **change):
    return client.post(reverse("accounts:signup"), {**SIGN_UP, **change}, REMOTE_ADDR=change.pop("ip", "127.0.0.1"))


def link_in(message) -> str:
    return re.search(r"http://testserver(/accounts/signup/confirm/[^/\s]+/)", message.body).group(1)


def answer(client, **change) -> tuple[int, str, str]:
    """What the person who sent the form sees: status, where it leads, and that page (less the CSRF token)."""
    response = sign_up(client, **change)
    page = client.get(response.url) if response.status_code == 302 else response
    body = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", page.content.decode())
    return response.status_code, response.get("Location", ""), body


def test_sign_up_sends_a_link_that_makes_a_data_scientist_and_signs_in(client):
    assert "Create an account" in client.get(reverse("accounts:login")).content.decode()
    response = sign_up(client)

    assert response.status_code == 302 and response.url == reverse("accounts:signup-sent")
    assert "Check your email" in client.get(response.url).content.decode()
    assert not User.objects.filter(username="newcomer").exists()  # nothing until the mailbox answers
    [message] = mail.outbox
    assert message.to == ["new@example.com"] and "newcomer" in message.body

    link = link_in(message)
    page = client.get(link)
    assert page.status_code == 200 and "Create my account" in page.content.decode()
    assert not User.objects.filter(username="newcomer").exists()  # a mail scanner opening it makes nothing
    made = client.post(link)

    assert made.status_code == 302 and made.url == reverse("marketplace:browse")
    user = User.objects.get(username="newcomer")
    assert user.email == "new@example.com" and user.roles == [Role.DATA_SCIENTIST]
    assert user.check_password(PASSPHRASE)
    assert client.get(reverse("marketplace:my-models")).status_code == 200
    client.logout()
    assert client.post(reverse("accounts:login"), {"username": "newcomer", "password": PASSPHRASE}).status_code == 302
    again = client.post(link)
    assert again.status_code == 404 and "does not work" in again.content.decode()  # a link works once


def test_a_link_that_nobody_sent_or_too_old_does_not_work(client, settings):
    assert client.get(reverse("accounts:signup-confirm", args=["made-up"])).status_code == 404
    sign_up(client)
    link = link_in(mail.outbox[0])
    SignUpRequest.objects.update(created=SignUpRequest.objects.get().created.replace(year=2000))
    assert client.post(link).status_code == 404
    assert not User.objects.filter(username="newcomer").exists()


def test_the_answer_is_the_same_for_a_taken_username_and_a_new_one(client, owner):
    taken = answer(client, username="owner", email="someone@example.com")
    free = answer(client, username="brand-new", email="another@example.com")

    assert taken == free
    assert [m.to for m in mail.outbox] == [["someone@example.com"], ["another@example.com"]]
    assert "not available" in mail.outbox[0].body and "/signup/confirm/" not in mail.outbox[0].body
    assert "/signup/confirm/" in mail.outbox[1].body
    assert User.objects.filter(email="someone@example.com").count() == 0


def test_the_answer_is_the_same_for_an_email_with_an_account_and_a_new_one(client, owner):
    existing = answer(client, username="newname", email=owner.email.upper())
    new = answer(client, username="newname2", email="fresh@example.com")

    assert existing == new
    to_owner = mail.outbox[0]
    assert to_owner.to == [owner.email] and "It has one already: owner" in to_owner.body
    assert "/accounts/password/reset/" in to_owner.body and "/signup/confirm/" not in to_owner.body
    assert not User.objects.filter(username="newname").exists()
    assert owner.__class__.objects.get(pk=owner.pk).password == owner.password  # nothing of theirs changed


def test_a_name_taken_between_the_request_and_the_link_is_refused(client):
    sign_up(client)
    UserFactory(username="NEWCOMER")
    response = client.post(link_in(mail.outbox[0]))
    assert response.status_code == 409 and "Nothing was made" in response.content.decode()
    assert not User.objects.filter(username="newcomer").exists()


@pytest.mark.parametrize("lookalike", [
    pytest.param("\u0430dmin", id="cyrillic-a"),
    pytest.param("ADMIN", id="capitals"),
    pytest.param("\uff41\uff44\uff4d\uff49\uff4e", id="fullwidth"),
    pytest.param("adm\u0456n", id="cyrillic-i"),
])
def test_a_name_that_reads_as_an_existing_one_is_refused(client, lookalike):
    UserFactory(username="admin", email="root@example.com")
    assert answer(client, username=lookalike, email="x@example.com") == answer(client, username="fresh",
                                                                               email="y@example.com")
    assert "not available" in mail.outbox[0].body
    assert list(User.objects.values_list("username", flat=True)) == ["admin"]


def test_the_model_refuses_a_name_that_reads_as_another_whoever_makes_it(db):
    from django.core.exceptions import ValidationError
    from django.db import IntegrityError, transaction

    UserFactory(username="owner")
    with pytest.raises(ValidationError, match="reads the same as an existing one"):
        User(username="0wner", email="x@example.com").full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        UserFactory(username="\u043ewner")  # Cyrillic о


@pytest.mark.parametrize(("username", "named"), [
    pytest.param("bob\u202eexe", "U+202E RIGHT-TO-LEFT OVERRIDE", id="rtl-override"),
    pytest.param("bo\u200bb", "U+200B ZERO WIDTH SPACE", id="zero-width-space"),
    pytest.param("bo\r\nb", "U+000D CARRIAGE RETURN", id="crlf"),
    pytest.param("bo\u2066b", "U+2066 LEFT-TO-RIGHT ISOLATE", id="isolate"),
])
def test_hidden_characters_in_a_username_are_refused_by_name(client, username, named):
    response = sign_up(client, username=username)

    assert response.status_code == 400
    [error] = response.context["form"].errors["username"]
    assert error == f"The username contains {named}; control and direction characters are not allowed."
    assert named in response.content.decode()
    assert not mail.outbox and not SignUpRequest.objects.exists()


def test_a_nul_in_a_username_is_refused(client):
    response = sign_up(client, username="bo\x00b")
    assert response.status_code == 400 and "Null characters are not allowed" in str(response.context["form"].errors)


@pytest.mark.parametrize(("change", "field"), [
    ({"password2": "something else entirely"}, "password2"),
    ({"password1": "short", "password2": "short"}, "password2"),
    ({"password1": "83927461", "password2": "83927461"}, "password2"),  # all digits
    ({"password1": "newcomer123", "password2": "newcomer123"}, "password2"),  # like the username
    ({"password1": "password123", "password2": "password123"}, "password2"),  # a common one
    ({"email": "not an email"}, "email"),
    ({"username": "white space"}, "username"),
])
def test_sign_up_says_which_field_is_wrong(change, field, client):
    response = sign_up(client, **change)

    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert not mail.outbox


def test_an_address_may_ask_a_few_times_an_hour_whatever_it_forwards(client, settings):
    settings.ACUMOS_SIGNUP_PER_ADDRESS_HOUR = 3
    for i in range(3):
        assert sign_up(client, username=f"person{i}", email=f"p{i}@example.com").status_code == 302
    refused = client.post(reverse("accounts:signup"), {**SIGN_UP, "username": "person9"}, REMOTE_ADDR="127.0.0.1",
                          HTTP_X_FORWARDED_FOR="203.0.113.77")  # a header anyone can write changes nothing
    assert refused.status_code == 429
    assert "Too many sign-ups from your address" in refused.content.decode()
    assert len(mail.outbox) == 3
    assert sign_up(client, username="elsewhere", ip="127.0.0.2").status_code == 302  # another address


def test_behind_a_listed_proxy_each_forwarded_client_has_its_own_limit(client, settings):
    settings.ACUMOS_SIGNUP_PER_ADDRESS_HOUR = 1
    settings.ACUMOS_TRUSTED_PROXIES = ["127.0.0.0/8"]

    def through_proxy(client_address: str, name: str):
        return client.post(reverse("accounts:signup"), {**SIGN_UP, "username": name}, REMOTE_ADDR="127.0.0.1",
                           HTTP_X_FORWARDED_FOR=f"198.51.100.9, {client_address}")

    assert through_proxy("192.0.2.1", "first").status_code == 302
    assert through_proxy("192.0.2.1", "second").status_code == 429
    assert through_proxy("192.0.2.2", "third").status_code == 302
    assert sorted(SignUpRequest.objects.values_list("client_ip", flat=True)) == ["192.0.2.1", "192.0.2.2"]


def test_sign_up_can_be_closed(client, settings):
    settings.ACUMOS_SIGNUP_OPEN = False
    assert client.get(reverse("accounts:signup")).status_code == 404
    assert sign_up(client).status_code == 404
    assert "Create an account" not in client.get(reverse("accounts:login")).content.decode()

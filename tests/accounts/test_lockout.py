"""The sign-in lockout, as an attacker meets it on every way to sign in: the form, the admin,
/onboarding-app/v2/auth, API tokens, `<login>:<token>` and JWTs. Counted per account and address
(and per address), in the database; a forged X-Forwarded-For changes nothing unless it comes from a
proxy the operator listed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.utils import timezone

from acumos_portal.api.throttling import ClientScopedRateThrottle

from ..conftest import PASSWORD
from ..factories import UserFactory

pytestmark = pytest.mark.django_db

LOCAL = "127.0.0.1"
AUTH = "/onboarding-app/v2/auth"
TOKENS = "/api/v1/tokens"


@pytest.fixture(autouse=True)
def lockout_settings(settings):
    """The documented defaults, whatever the environment says."""
    settings.AXES_FAILURE_LIMIT = 5
    settings.ACUMOS_SIGNIN_FAILURES_PER_ADDRESS = 50
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    settings.ACUMOS_TRUSTED_PROXIES = []


def sent_from(ip: str = LOCAL, forwarded: str | None = None) -> dict:
    return {"REMOTE_ADDR": ip, **({"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {})}


def sign_in(username: str, password: str, *, path: str = "/accounts/login/", client=None, **where):
    return (client or Client()).post(path, {"username": username, "password": password}, **sent_from(**where))


def v2_auth(username: str, password: str, **where):
    return Client().post(AUTH, {"request_body": {"username": username, "password": password}},
                         content_type="application/json", **sent_from(**where))


def api_call(authorization: str, path: str = TOKENS, **where):
    return Client().get(path, HTTP_AUTHORIZATION=authorization, **sent_from(**where))


def forged(i: int) -> str:
    return f"10.{i}.{i}.1"


def wait_out_the_lockout() -> None:
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))


def assert_locked_page(response) -> None:
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    page = response.content.decode()
    assert "signing in is paused until" in page and "15 minutes from now" in page
    assert "/accounts/password/reset/" in page


# ---------------------------------------------------------------- the sign-in form

def test_the_form_locks_an_account_out_from_an_address_after_5_failures_whatever_it_forwards(owner, other_user):
    for i in range(4):
        response = sign_in("owner", "wrong", forwarded=forged(i))
        assert response.status_code == 200 and "enter a correct username and password" in response.content.decode()
    assert_locked_page(sign_in("owner", "wrong", forwarded=forged(4)))

    client = Client()
    for i in range(5, 8):  # the right password, a new X-Forwarded-For each time: still locked
        assert_locked_page(sign_in("owner", PASSWORD, client=client, forwarded=forged(i)))
    assert "_auth_user_id" not in client.session
    assert sign_in("OWNER", PASSWORD).status_code == 429  # one account, however it is typed

    assert sign_in("owner", PASSWORD, ip="127.0.0.2").status_code == 302  # not locked out elsewhere
    assert sign_in("other", PASSWORD).status_code == 302  # other accounts from here are not locked
    wait_out_the_lockout()
    assert sign_in("owner", PASSWORD).status_code == 302


def test_an_address_guessing_many_accounts_is_locked_out_for_all(owner, other_user, publisher, settings):
    settings.ACUMOS_SIGNIN_FAILURES_PER_ADDRESS = 8
    for i in range(4):
        assert sign_in("owner", "wrong", forwarded=forged(i)).status_code == 200
    for i in range(3):
        assert sign_in("other", "wrong", forwarded=forged(i)).status_code == 200
    assert_locked_page(sign_in("other", "wrong"))  # 8 from this address, 4 per account

    assert sign_in("publisher", PASSWORD).status_code == 429
    assert sign_in("publisher", PASSWORD, ip="127.0.0.2").status_code == 302


def test_signing_in_clears_the_accounts_own_failures_but_not_the_addresss(owner, other_user, publisher, settings):
    for _ in range(4):
        sign_in("owner", "wrong")
    assert sign_in("owner", PASSWORD).status_code == 302
    for _ in range(4):  # a person's typos before they got it right no longer count
        assert sign_in("owner", "wrong").status_code == 200

    settings.ACUMOS_SIGNIN_FAILURES_PER_ADDRESS = 6  # 4 failures count from this address (the first 4 went)
    assert sign_in("other", PASSWORD).status_code == 302  # an account of the attacker's own clears nothing
    assert sign_in("publisher", "wrong").status_code == 200
    assert sign_in("publisher", "wrong").status_code == 429


# ---------------------------------------------------------------- the admin

def test_the_admin_sign_in_locks_out_too_and_shares_the_count(db):
    UserFactory(username="root", is_staff=True, is_superuser=True)
    for i in range(4):
        assert sign_in("root", "wrong", path="/admin/login/", forwarded=forged(i)).status_code == 200
    assert_locked_page(sign_in("root", "wrong", path="/admin/login/", forwarded=forged(4)))

    assert_locked_page(sign_in("root", PASSWORD, path="/admin/login/", forwarded=forged(5)))
    assert sign_in("root", PASSWORD).status_code == 429  # the form counts the same failures
    client = Client()
    assert sign_in("root", PASSWORD, path="/admin/login/", client=client, ip="127.0.0.2").status_code == 302
    assert client.get("/admin/").status_code == 200


# ---------------------------------------------------------------- /onboarding-app/v2/auth

def test_v2_auth_locks_out_in_the_acumos_envelope_whatever_it_forwards(owner):
    for i in range(4):
        assert v2_auth("owner", "wrong", forwarded=forged(i)).status_code == 401
    locked = v2_auth("owner", "wrong", forwarded=forged(4))
    assert locked.status_code == 429 and locked["Retry-After"] == "900"
    body = locked.json()
    assert body["status"] == "ERROR" and body["errorCode"] == "TOO_MANY_REQUESTS"
    assert "signing in is paused until" in body["errorMessage"]

    right = v2_auth("owner", PASSWORD, forwarded=forged(5))
    assert right.status_code == 429 and "jwtToken" not in right.json()
    assert v2_auth("owner", PASSWORD, ip="127.0.0.2").status_code == 200
    assert sign_in("owner", PASSWORD).status_code == 429  # one lockout for every way in


def test_v2_auth_is_throttled_per_client_whatever_it_forwards(owner, monkeypatch):
    monkeypatch.setattr(ClientScopedRateThrottle, "THROTTLE_RATES", {"password": "3/minute"})
    for i in range(3):
        assert v2_auth("owner", PASSWORD, forwarded=forged(i)).status_code == 200
    throttled = v2_auth("owner", PASSWORD, forwarded=forged(3))
    assert throttled.status_code == 429 and throttled.json()["errorCode"] == "TOO_MANY_REQUESTS"
    assert int(throttled["Retry-After"]) > 0
    assert v2_auth("owner", PASSWORD, ip="127.0.0.2").status_code == 200


# ---------------------------------------------------------------- API tokens and JWTs

def test_wrong_login_tokens_lock_the_account_out_from_the_address(owner, api_token):
    key = api_token(owner)
    for i in range(4):
        response = api_call(f"owner:acu_wrong-{i}", forwarded=forged(i))
        assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"
    locked = api_call("owner:acu_wrong-4", forwarded=forged(4))
    assert locked.status_code == 429 and locked["Retry-After"] == "900"
    assert locked.json()["error"]["code"] == "locked_out"
    assert "signing in is paused until" in locked.json()["error"]["message"]

    assert api_call(f"owner:{key}", forwarded=forged(5)).status_code == 429  # the right token too
    push = Client().post("/onboarding-app/v2/models", HTTP_AUTHORIZATION=f"owner:{key}", **sent_from())
    assert push.status_code == 429 and push.json()["errorCode"] == "TOO_MANY_REQUESTS"
    assert push["Retry-After"] == "900"
    assert sign_in("owner", PASSWORD).status_code == 429
    assert api_call(f"owner:{key}", ip="127.0.0.2").status_code == 200
    # A bare token names no account: it answers to the address's own count (5 of 50 here).
    assert api_call(f"Bearer {key}").status_code == 200


def test_wrong_bare_tokens_and_jwts_lock_bare_credentials_out_from_the_address(owner, api_token):
    key = api_token(owner)
    wrong = ["Bearer acu_wrong", "acu_wrong-too", "Bearer not.a.jwt", "x.y.z", "Bearer acu_another"]
    for i, authorization in enumerate(wrong[:4]):
        assert api_call(authorization, forwarded=forged(i)).status_code == 401
    assert api_call(wrong[4], forwarded=forged(4)).status_code == 429
    assert api_call(f"Bearer {key}", forwarded=forged(5)).status_code == 429
    assert api_call(f"Bearer {key}", ip="127.0.0.2").status_code == 200


def test_a_failed_upload_is_refused_without_its_body_being_read(owner):
    """axes records a failure's form fields: for an upload that would read all of it before the 401."""
    body = (b"--b\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nread me\r\n"
            b"--b\r\nContent-Disposition: form-data; name=\"model\"; filename=\"m.zip\"\r\n\r\n" + bytes(1 << 20)
            + b"\r\n--b--\r\n")
    response = Client().generic("POST", "/onboarding-app/v2/models", body, HTTP_AUTHORIZATION="owner:acu_wrong",
                                content_type="multipart/form-data; boundary=b")
    assert response.status_code == 401 and response.json()["errorCode"] == "UNAUTHORIZED"
    attempt = AccessAttempt.objects.get()
    assert attempt.failures_since_start == 1 and "read me" not in attempt.post_data


# ---------------------------------------------------------------- behind a proxy

def test_x_forwarded_for_counts_only_from_a_listed_proxy(owner, settings):
    settings.ACUMOS_TRUSTED_PROXIES = [LOCAL]
    for _ in range(5):
        last = sign_in("owner", "wrong", forwarded="203.0.113.1")
    assert last.status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.1"}

    assert sign_in("owner", PASSWORD, forwarded="203.0.113.1").status_code == 429
    assert sign_in("owner", PASSWORD, forwarded="198.51.100.3, 203.0.113.1").status_code == 429  # it wrote the left
    assert sign_in("owner", PASSWORD, forwarded="203.0.113.2").status_code == 302  # another client behind the proxy
    assert v2_auth("owner", PASSWORD, forwarded="203.0.113.1").status_code == 429
    assert v2_auth("owner", PASSWORD, forwarded="203.0.113.2").status_code == 200
    # The same header from an address that is not the proxy is the client's own writing.
    assert sign_in("owner", PASSWORD, ip="127.0.0.9", forwarded="203.0.113.1").status_code == 302
